"""companion.experiments.batch_size: timing, the cost model, gradient noise against its formula, seeds, sharpness."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.core.data import Split, make_classification, make_regression
from companion.core.device import num_threads
from companion.core.models import mlp
from companion.core.train import fit
from companion.core.stats import loglog_slope
from companion.experiments.batch_size import (
    EpochTimes,
    gradient_noise,
    per_example_gradients,
    predicted_noise,
    step_costs,
    time_epochs,
    top_hessian_eigenvalue,
    train_epoch,
    train_over_seeds,
)
from companion.optim import SGD
from companion.testing.tolerances import assert_close


@pytest.fixture(scope="module")
def blobs():
    return make_classification(n=96, d=6, classes=3, seed=0, dtype=torch.float64)


def _model():
    return mlp(in_features=6, hidden=(8,), out_features=3).double()


def test_time_epochs_records_every_repeat_and_small_batches_cost_more(blobs):
    with num_threads(
        1
    ):  # CPU seconds at a fixed thread count; time_epochs runs on the CPU whatever the data's device
        times = time_epochs(
            _model, blobs, [1, 96], optimizer=SGD, options=dict(lr=0.1), repeats=3
        )
    assert times.cpu.shape == times.wall.shape == (2, 3) and times.n == 96
    assert (times.cpu >= 0).all() and (times.wall > 0).all()
    assert_close(
        times.per_example(), times.median() / 96, ulps=0, what="per example"
    )  # the same division
    # 96 steps against one step of the same 96 examples: the fixed cost per step dominates, by far
    assert times.median()[0] > 5 * times.median()[1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_sizes=[4], repeats=0), "repeats must be at least 1, got 0"),
        (
            dict(batch_sizes=[0, 4]),
            r"batch sizes must be positive integers, got \[0, 4\]",
        ),
        (dict(batch_sizes=[]), r"batch sizes must be positive integers, got \[\]"),
    ],
)
def test_time_epochs_invalid(blobs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_epochs(_model, blobs, optimizer=SGD, options=dict(lr=0.1), **kwargs)


def test_train_epoch_is_one_epoch_of_fit(blobs):
    torch.manual_seed(0)
    a = _model()
    b = _model()
    b.load_state_dict(a.state_dict())
    train_epoch(
        a, SGD(a.parameters(), lr=0.1), blobs, 10, torch.Generator().manual_seed(1)
    )
    fit(
        b,
        SGD(b.parameters(), lr=0.1),
        blobs,
        epochs=1,
        batch_size=10,
        generator=torch.Generator().manual_seed(1),
        progress=False,
    )
    for p, q in zip(a.parameters(), b.parameters()):
        assert_close(p, q, ulps=0, what="same operations in the same order")


def test_step_costs_recovers_the_cost_model():
    n, c_step, c_example = 1000, 2e-4, 1e-6
    sizes = [1, 4, 16, 64, 256, 1000]
    T = torch.tensor(
        [math.ceil(n / b) * c_step + n * c_example for b in sizes], dtype=torch.float64
    )
    times = EpochTimes(sizes, T[:, None].repeat(1, 3), T[:, None].repeat(1, 3), n)
    fitted = step_costs(times)
    # an exact model solved by least squares on a 2-column system whose condition number is ~1e3:
    # the solution is accurate to about κ·ε relative; allow 1e4 ε
    assert_close(
        torch.tensor(fitted),
        torch.tensor([c_step, c_example]),
        ulps=1e4,
        scale=c_step,
        what="c_step",
    )
    assert_close(
        torch.tensor(fitted[1]), torch.tensor(c_example), ulps=1e4, what="c_example"
    )


def test_per_example_gradients_average_to_the_batch_gradient(blobs):
    torch.manual_seed(0)
    model = _model()
    G = per_example_gradients(model, blobs)
    assert G.shape == (96, sum(p.numel() for p in model.parameters()))
    full = torch.autograd.grad(
        F.cross_entropy(model(blobs.X), blobs.y), list(model.parameters())
    )
    full = torch.cat([g.reshape(-1) for g in full])
    # the mean of 96 rows against backward's sums over the batch, in another order: by the recursive-summation
    # bound each differs from the exact sum by ≤ (n−1)ε Σ|terms|, so allow 2n ε times the mean |term|
    assert_close(
        G.mean(dim=0),
        full,
        ulps=2 * 96,
        scale=G.abs().mean(dim=0).max().item(),
        what="mean of rows",
    )
    for i in (0, 17, 95):
        one = torch.autograd.grad(
            F.cross_entropy(model(blobs.X[i : i + 1]), blobs.y[i : i + 1]),
            list(model.parameters()),
        )
        # the same single-example formula, batched by vmap: a few ε (a sum over 3 classes inside)
        assert_close(
            G[i], torch.cat([g.reshape(-1) for g in one]), ulps=8, what=f"row {i}"
        )


def test_predicted_noise_is_the_exact_expectation_over_all_batches():
    G = torch.randn(
        6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    g = G.mean(dim=0)
    for b in range(1, 7):
        subsets = list(itertools.combinations(range(6), b))
        exact = torch.stack(
            [((G[list(s)].mean(dim=0) - g) ** 2).sum() for s in subsets]
        ).mean()
        # two exact formulas for the same number, each a few dozen roundings: allow 64 ε
        assert_close(
            predicted_noise(G, [b])[0],
            exact,
            ulps=64,
            scale=predicted_noise(G, [1])[0].item(),
            what=f"b={b}",
        )
    assert_close(
        predicted_noise(G, [6]),
        torch.zeros(1, dtype=torch.float64),
        ulps=0,
        what="b = n",
    )  # (n − b) = 0


def test_gradient_noise_matches_the_formula_statistically():
    G = torch.randn(
        200, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    ) * torch.linspace(0.1, 2, 30)
    sizes = [1, 4, 16, 64]
    measured = gradient_noise(
        G, sizes, draws=400, generator=torch.Generator().manual_seed(1)
    )
    ratio = measured / predicted_noise(G, sizes)
    # 400 draws of a 30-dimensional squared norm: the mean has a relative standard error of about 4%
    assert ((ratio > 0.85) & (ratio < 1.15)).all(), ratio
    assert -1.1 < loglog_slope(sizes, measured) < -0.9


def test_gradient_noise_invalid():
    G = torch.zeros(10, 3)
    for sizes in ([0], [11], []):
        with pytest.raises(ValueError, match=r"batch sizes must be in \[1, 10\]"):
            gradient_noise(G, sizes)


def test_loglog_slope_of_a_power_law():
    x = torch.tensor([1.0, 2, 5, 10, 100], dtype=torch.float64)
    # logs of exact powers, then a ratio of two sums of 5 terms: a few dozen ε
    assert_close(
        torch.tensor(loglog_slope(x, 3 * x**-1.5)),
        torch.tensor(-1.5, dtype=torch.float64),
        ulps=64,
        what="slope",
    )


def test_train_over_seeds(blobs):
    runs = train_over_seeds(
        _model,
        blobs,
        blobs,
        batch_size=16,
        lr=0.1,
        epochs=2,
        seeds=[0, 1, 0],
        optimizer=SGD,
        options=dict(momentum=0.9),
    )
    assert runs.train_loss.shape == runs.val_acc.shape == (3,)
    assert (
        runs.train_loss[0] == runs.train_loss[2]
        and runs.train_loss[0] != runs.train_loss[1]
    )  # seeded
    diverged = train_over_seeds(
        _model,
        blobs,
        blobs,
        batch_size=16,
        lr=1e300,
        epochs=2,
        seeds=[0],
        optimizer=SGD,
    )
    assert diverged.train_loss[0] == math.inf


def test_top_hessian_eigenvalue_of_least_squares():
    data, _ = make_regression(n=100, d=5, seed=0, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    lam = top_hessian_eigenvalue(
        model, Split(data.X, data.y[:, None]), loss_fn=F.mse_loss, iters=200
    )
    # the Hessian of mean (Xw − y)² is 2XᵀX/n; power iteration converges like (λ₂/λ₁)^(2k), far below 1e-10 here
    exact = torch.linalg.eigvalsh(2 * data.X.T @ data.X / 100).max()
    assert lam == pytest.approx(exact.item(), rel=1e-10)
