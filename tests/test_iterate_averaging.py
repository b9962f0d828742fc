"""companion.experiments.iterate_averaging: the noisy-quadratic SGD and its average against closed forms (no noise),
the recorded steps, the predicted error, reproducibility from the seed, and the testbed run's averages in their
limiting cases (a one-snapshot SWA and an EMA of decay 0 are the last iterate)."""

import math
from dataclasses import astuple

import pytest
import torch

from companion.experiments import iterate_averaging as ia
from companion.experiments import (
    testbed,
)  # a module: its testbed_* functions are not tests
from companion.testing.devices import second_device
from companion.testing.tolerances import assert_close


@pytest.mark.parametrize(
    "steps, points, first", [(10_000, 40, 10), (500, 12, 1), (50, 80, 1)]
)
def test_record_steps(steps, points, first):
    t = ia.record_steps(steps, points, first)
    assert (
        t == sorted(set(t))
        and t[0] == first
        and t[-1] == steps
        and len(t) <= points + 1
    )


@pytest.mark.parametrize("lr, alpha", [(0.5, 0.0), (1.0, 0.6)])
def test_noiseless_run_is_gradient_descent_and_its_mean(lr, alpha):
    """σ = 0: x_t = Π_s (1 − η s^{−α} λ) x_0, and x̄_t is the plain mean of x_1 … x_t."""
    lam = torch.tensor([1.0, 0.3, 0.1], dtype=torch.float64)
    steps = 200
    run = ia.polyak_ruppert(
        lam, steps, lr, alpha, noise_std=0.0, runs=2, start=1.0, chunk=64
    )
    x, path = torch.ones(3, dtype=torch.float64), []
    for t in range(1, steps + 1):
        x = x * (1 - lr * t**-alpha * lam)
        path.append(x)
    path = torch.stack(path)
    means = path.cumsum(0) / torch.arange(1, steps + 1, dtype=torch.float64)[:, None]
    idx = run.t - 1
    # 200 products and a running mean against a cumulative sum: a few hundred roundings
    assert_close(run.last, (path[idx] ** 2).sum(1), ulps=1000)
    assert_close(run.average, (means[idx] ** 2).sum(1), ulps=1000)


def test_noisy_run_is_a_function_of_its_seed():
    lam = torch.tensor([1.0, 0.5], dtype=torch.float64)
    a, b = (
        ia.polyak_ruppert(lam, 300, 0.5, runs=4, seed=3, chunk=100) for _ in range(2)
    )
    c = ia.polyak_ruppert(lam, 300, 0.5, runs=4, seed=4, chunk=100)
    assert torch.equal(a.average, b.average) and torch.equal(a.last, b.last)
    assert not torch.equal(a.average, c.average)


def test_average_beats_the_constant_step_noise_floor():
    """Constant step: the last iterate stalls at its noise floor, the average approaches σ² tr(H⁻²)/t."""
    lam = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    run = ia.polyak_ruppert(lam, 4000, 0.5, runs=200, seed=0, start=0.0)
    predicted = ia.predicted_average_error(lam, 1.0, run.t)
    floor = (
        0.5 / (lam * (2 - 0.5 * lam))
    ).sum()  # stationary E‖x‖² = Σᵢ ησ² / (λᵢ (2 − ηλᵢ))
    assert 0.5 * floor.item() < run.last[-1] < 2 * floor.item()
    assert 0.7 < (run.average[-1] / predicted[-1]).item() < 1.4


def test_predicted_average_error():
    lam = torch.tensor([1.0, 0.5])
    assert_close(
        ia.predicted_average_error(lam, 2.0, [1, 10]),
        torch.tensor([20.0, 2.0], dtype=torch.float64),
        ulps=4,
    )


@pytest.fixture(scope="module")
def data():
    return testbed.testbed_data(label_noise=testbed.LABEL_NOISE)


def test_limiting_averages_are_the_last_iterate(data):
    """SWA of the last epoch only, and an EMA with decay 0, both hold the last weights."""
    out = ia.train_with_averages(
        data, seed=0, swa_start=2, ema_decays=(0.0, 0.9), epochs=3
    )
    assert set(out) == {"last", "SWA", "EMA 0", "EMA 0.9"}
    assert out["SWA"] == out["last"]  # one snapshot: a copy of the last weights
    # θ̄ + 1·(θ − θ̄) is θ up to a rounding per weight: the scores agree to float32 precision
    assert astuple(out["EMA 0"]) == pytest.approx(
        astuple(out["last"]), rel=1e-5, abs=1e-6
    )
    assert out["EMA 0.9"] != out["last"]


def test_swalr_changes_the_run_after_swa_start(data):
    plain = ia.train_with_averages(data, seed=1, swa_start=1, ema_decays=(), epochs=3)
    annealed = ia.train_with_averages(
        data, seed=1, swa_start=1, ema_decays=(), epochs=3, swa_lr=0.2, anneal_epochs=1
    )
    assert plain["last"] != annealed["last"]
    again = ia.train_with_averages(data, seed=1, swa_start=1, ema_decays=(), epochs=3)
    assert again == plain


def test_swa_start_is_checked(data):
    with pytest.raises(ValueError, match="swa_start"):
        ia.train_with_averages(data, swa_start=3, epochs=3)


def test_on_the_second_device():
    with second_device() as device:
        lam = torch.tensor([1.0, 0.5], dtype=torch.float64).to(device)
        run = ia.polyak_ruppert(lam, 30, 0.5, runs=3, chunk=7)
        assert not math.isnan(run.average[-1].item())
        assert (
            ia.predicted_average_error(lam, 1.0, run.t).device.type == "cpu"
        )  # a curve to plot
