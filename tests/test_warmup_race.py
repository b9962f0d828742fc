"""companion.experiments.warmup_race: the adaptive rate's variance, warmup factors and the step-counted loop."""

import math

import pytest
import torch

from companion.core.data import make_classification
from companion.core.device import make_generator
from companion.core.models import mlp
from companion.experiments.warmup_race import (
    adaptive_rate_variance,
    exponential_warmup,
    exponential_warmup_factor,
    first_order_variance,
    linear_warmup,
    linear_warmup_factor,
    radam_factor,
    sma_lengths,
    steps_given_up,
    train_steps,
)
from companion.optim.adam import Adam
from companion.optim.radam import RAdam, rectifier

TOL = 1e-12


def test_adaptive_rate_variance_matches_a_direct_simulation():
    """The same draws, written out: Var over runs of √((1 − β₂ᵗ)/v_t) (float64, a few ε)."""
    var = adaptive_rate_variance(0.9, steps=4, runs=1000, mean=0.5, seed=3)
    gen = make_generator(
        3
    )  # the harness's generator (with COMPANION_SEED_OFFSET, as the harness draws)
    v = torch.zeros(1000, dtype=torch.float64)
    for t in range(1, 5):
        g = 0.5 + torch.randn(1000, generator=gen, dtype=torch.float64)
        v = 0.9 * v + 0.1 * g**2
        assert math.isclose(
            var[t - 1].item(), ((1 - 0.9**t) / v).sqrt().var().item(), rel_tol=1e-12
        )


def test_adaptive_rate_variance_falls_to_the_first_order_value():
    """After a few dozen steps the simulated variance is Liu et al.'s ρ/(2(ρ−2)(ρ−4)) within 15 %."""
    var = adaptive_rate_variance(0.99, steps=60, runs=20_000, seed=0)
    _, rho = sma_lengths(0.99, 60)
    assert var[0] > 100 * var[9] > var[19] > var[59]
    assert abs(var[59] / first_order_variance(rho[59]) - 1) < 0.15


def test_sma_lengths_and_radam_factor():
    rho_inf, rho = sma_lengths(0.999, 6)
    assert math.isclose(rho_inf, 1999, rel_tol=1e-12) and math.isclose(
        rho[0].item(), 1.0, rel_tol=1e-12
    )
    factor = radam_factor(0.999, 6)
    assert factor[:5].tolist() == [0.0] * 5  # ρ_t ≤ 5 for t ≤ 5: no adaptive step
    assert math.isclose(
        factor[5].item(), rectifier(rho[5].item(), rho_inf), rel_tol=1e-12
    )
    assert (
        radam_factor(0.999, 6, threshold=4.0)[4] > 0
    )  # the paper's threshold ρ_t > 4 starts one step earlier


def test_warmup_factors_and_steps_given_up():
    assert torch.allclose(
        linear_warmup_factor(4, 6),
        torch.tensor([0.25, 0.5, 0.75, 1, 1, 1], dtype=torch.float64),
        rtol=0,
        atol=TOL,
    )
    assert math.isclose(
        exponential_warmup_factor(0.5, 2)[1].item(), 1 - math.exp(-1), rel_tol=1e-12
    )
    assert math.isclose(
        steps_given_up(linear_warmup_factor(200, 1000)), 99.5, rel_tol=1e-12
    )  # (τ − 1)/2


@pytest.mark.parametrize("period", [1, 2, 5])
def test_linear_warmup_scheduler_gives_the_factor(period):
    """The scheduler's rate at step t (1-based) is lr · min(1, t/τ), as linear_warmup_factor says."""
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.3)
    sched = linear_warmup(opt, period) if period > 1 else None
    rates = []
    for _ in range(8):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: nothing moves, but the scheduler sees a step first
        if sched is not None:
            sched.step()
    expected = (0.3 * linear_warmup_factor(period, 8)).tolist()
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(rates, expected))


def test_exponential_warmup_scheduler_gives_the_factor():
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=2.0)
    sched = exponential_warmup(opt, 0.9)
    rates = []
    for _ in range(5):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = (2.0 * exponential_warmup_factor(0.9, 5)).tolist()
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(rates, expected))


def test_train_steps_counts_steps_and_records_updates():
    """Exactly `steps` steps across epoch boundaries; Adam's first update is ±lr in every coordinate (tanh units:
    no gradient is exactly zero, as a dead ReLU's would be)."""
    data = make_classification(n=100, d=4, classes=3, seed=0)
    torch.manual_seed(0)
    model = mlp(in_features=4, hidden=(8,), out_features=3, activation=torch.nn.Tanh)
    run = train_steps(
        model,
        Adam(model.parameters(), lr=0.01, eps=1e-12),
        data,
        data,
        steps=9,
        batch_size=40,
        generator=torch.Generator().manual_seed(0),
        record_updates=3,
    )
    assert (
        len(run.batch_loss) == 9 and len(run.update_rms) == 3
    )  # 3 batches per epoch: 3 epochs
    assert math.isclose(run.update_rms[0], 0.01, rel_tol=1e-4)  # m̂₁/√v̂₁ = sign(g₁)
    assert 0 <= run.val_acc <= 1 and run.train_loss < run.batch_loss[0]


def test_train_steps_with_radam_takes_sgd_steps_first():
    """RAdam's first update is lr · g₁ (an SGD step), far below Adam's ±lr for a small lr · gradient."""
    data = make_classification(n=64, d=4, classes=3, seed=1)
    torch.manual_seed(0)
    model = mlp(in_features=4, hidden=(8,), out_features=3)
    X, y = data
    loss = torch.nn.functional.cross_entropy(model(X), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    grad_rms = torch.cat([g.reshape(-1) for g in grads]).pow(2).mean().sqrt().item()
    run = train_steps(
        model,
        RAdam(model.parameters(), lr=0.1),
        data,
        data,
        steps=1,
        batch_size=64,
        generator=torch.Generator().manual_seed(0),
        record_updates=1,
    )
    assert math.isclose(run.update_rms[0], 0.1 * grad_rms, rel_tol=1e-5)
