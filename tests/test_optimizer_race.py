"""companion.experiments.optimizer_race: the harness that races optimizers on 2-D functions and on the digits MLP."""

import math

import pytest
import torch

from companion.experiments.optimizer_race import (
    Run,
    best_lr,
    gap,
    markdown_table,
    race_2d,
    settles_at,
    steps_to,
    steps_to_loss,
    summarize,
    train_each,
)
from companion import seed_everything
from companion.core.data import load_digits
from companion.core.functions import beale, optimize_2d, quadratic, rosenbrock, saddle
from companion.core.models import mlp
from companion.optim import SGD
from companion.core.train import History, evaluate
from companion.testing.tolerances import assert_close

FUNCTIONS = [quadratic(), rosenbrock(), beale(), saddle()]


@pytest.mark.parametrize(
    "values, target, expected",
    [
        ([3.0, 2.0, 1.0, 0.5], 1.0, 2),
        ([3.0, 2.0, 1.0, 0.5], 0.1, None),
        ([0.0, 5.0], 1.0, 0),
        ([float("nan"), 2.0, 0.9], 1.0, 2),  # NaN never counts as reached
        ([float("inf"), float("nan")], 1.0, None),
        ([], 1.0, None),
        (torch.tensor([5.0, -1.0]), 0.0, 1),
    ],
)
def test_steps_to(values, target, expected):
    assert steps_to(values, target) == expected


@pytest.mark.parametrize(
    "values, target, expected",
    [
        (
            [3.0, 0.5, 2.0, 0.5, 0.1],
            1.0,
            3,
        ),  # dips at 1, comes back up at 2, settles from 3
        ([0.5, 0.4], 1.0, 0),
        ([0.5, 2.0], 1.0, None),  # ends above the target
        ([3.0, 0.5, float("nan")], 1.0, None),  # NaN at the end: not settled
        ([], 1.0, None),
        (torch.tensor([2.0, 1.0, 1.0]), 1.0, 1),  # ≤ is inclusive
    ],
)
def test_settles_at(values, target, expected):
    assert settles_at(values, target) == expected


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_gap_is_zero_at_the_minimum_and_positive_elsewhere(fn):
    """f − f* is 0 at the minimizer (within 8 ε of f's value at the start) and > 0 at the start."""
    at_min = fn(torch.tensor(fn.minimum, dtype=torch.float64)).reshape(1)
    at_start = fn(torch.tensor(fn.start, dtype=torch.float64)).reshape(1)
    assert_close(
        gap(fn, at_min),
        torch.zeros(1, dtype=torch.float64),
        ulps=8,
        scale=abs(at_start.item()),
    )
    assert gap(fn, at_start).item() > 0


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_race_2d_is_optimize_2d_for_each(fn):
    """Each entry is exactly what optimize_2d returns (tolerance 0), with the gap instead of the value."""
    specs = {
        "sgd": (SGD, dict(lr=1e-3)),
        "nesterov": (SGD, dict(lr=1e-3, momentum=0.9, nesterov=True)),
        "adam (torch)": (torch.optim.Adam, dict(lr=0.05)),
    }
    results = race_2d(fn, specs, steps=40)
    assert list(results) == list(specs)
    for name, (cls, hyper) in specs.items():
        path, values = optimize_2d(fn, cls, steps=40, **hyper)
        got_path, got_gap = results[name]
        assert got_path.shape == (41, 2) and got_gap.shape == (41,)
        assert torch.equal(got_path, path)
        assert torch.equal(got_gap, gap(fn, values))


@pytest.mark.parametrize(
    "grid, tol, expected",
    [
        # κ = 25: stable for lr < 2/25 = 0.08; 0.07 is fastest, 0.09 diverges and must not win
        ([0.001, 0.03, 0.07, 0.09], 1e-4, 0.07),
        ([0.09, 0.03], 1e-4, 0.03),
        # nobody reaches 1e-30 in 60 steps: the smallest final gap wins, the diverged 1.0 ranks last
        ([1.0, 0.01, 0.05], 1e-30, 0.05),
        ([1.0, 2.0], 1e-4, 1.0),  # all diverge: the earlier entry wins the tie
    ],
)
def test_best_lr(grid, tol, expected):
    assert best_lr(quadratic(25.0), SGD, grid, steps=60, tol=tol) == expected


def test_best_lr_passes_hyperparameters():
    """With momentum 0.9 the ranking changes: plain SGD's best (0.07) is unstable with momentum."""
    fn = quadratic(25.0)
    assert best_lr(fn, SGD, [0.07, 0.01], steps=100, tol=1e-4) == 0.07
    assert (
        best_lr(fn, SGD, [0.07, 0.01], steps=100, tol=1e-4, momentum=0.9, nesterov=True)
        == 0.01
    )


@pytest.fixture(scope="module")
def small_digits():
    return load_digits(n_train=128)


def _make_model():
    return mlp(hidden=(16,))


def test_train_each_same_start_and_batch_order(small_digits):
    """Two identical specs give identical runs (tolerance 0); lr = 0 leaves the seeded initial weights."""
    specs = {
        "a": (SGD, dict(lr=0.1, momentum=0.9)),
        "b": (SGD, dict(lr=0.1, momentum=0.9)),
        "frozen": (SGD, dict(lr=0.0)),
    }
    runs = train_each(specs, _make_model, small_digits, epochs=2, batch_size=32, seed=3)
    assert list(runs) == list(specs) and all(isinstance(r, Run) for r in runs.values())
    a, b = runs["a"].history, runs["b"].history
    assert (
        a.train_loss == b.train_loss
        and a.val_acc == b.val_acc
        and a.steps == b.steps == [4, 8]
    )
    for pa, pb in zip(runs["a"].model.parameters(), runs["b"].model.parameters()):
        assert torch.equal(pa, pb)
    seed_everything(3)  # the harness's seed, COMPANION_SEED_OFFSET included
    initial = _make_model()
    for p0, p in zip(initial.parameters(), runs["frozen"].model.parameters()):
        assert torch.equal(p0, p)
    assert len(a.val_loss) == 2  # validation recorded every epoch


@pytest.mark.parametrize(
    "losses, target, expected",
    [([2.0, 1.0, 0.4, 0.1], 0.5, 30), ([2.0, 1.0], 0.5, None), ([0.3], 0.5, 10)],
)
def test_steps_to_loss(losses, target, expected):
    history = History(
        train_loss=losses, steps=[10 * (i + 1) for i in range(len(losses))]
    )
    assert steps_to_loss(history, target) == expected


def test_summarize(small_digits):
    """The row's numbers are the history's, the test accuracy is evaluate()'s (within 1e-12)."""
    runs = train_each(
        {"sgd": (SGD, dict(lr=0.5))}, _make_model, small_digits, epochs=3, batch_size=32
    )
    run = runs["sgd"]
    row = summarize(
        run, small_digits, target_loss=10.0
    )  # reached after the first epoch
    assert set(row) == {
        "train_loss",
        "val_acc",
        "test_acc",
        "steps_to_target",
        "ms_per_step",
    }
    assert (
        row["train_loss"] == run.history.train_loss[-1]
        and row["val_acc"] == run.history.val_acc[-1]
    )
    assert abs(row["test_acc"] - evaluate(run.model, small_digits.test)[1]) < 1e-12
    assert row["steps_to_target"] == 4
    assert 0 < row["ms_per_step"] < 1000 * sum(run.history.seconds)
    assert summarize(run, small_digits, target_loss=0.0)["steps_to_target"] is None


def test_markdown_table():
    rows = {"SGD": {"acc": 0.91234, "steps": 40}, "Adam": {"acc": 0.95, "steps": None}}
    expected = (
        "| | acc | steps |\n|---|---|---|\n| SGD | 0.912 | 40 |\n| Adam | 0.950 | — |"
    )
    assert markdown_table(rows, {"acc": ".3f", "steps": "d"}) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    """The digits race runs on CUDA; two identical specs still agree within 1e-6."""
    data = load_digits(device="cuda", n_train=128)
    specs = {"a": (SGD, dict(lr=0.1)), "b": (SGD, dict(lr=0.1))}
    runs = train_each(
        specs, lambda: _make_model().cuda(), data, epochs=2, batch_size=32
    )
    assert all(p.is_cuda for p in runs["a"].model.parameters())
    assert math.isclose(
        runs["a"].history.train_loss[-1], runs["b"].history.train_loss[-1], abs_tol=1e-6
    )
    assert summarize(runs["a"], data, target_loss=10.0)["steps_to_target"] == 4


def test_train_seeds_and_summarize_seeds(small_digits):
    """train_seeds is train_each per seed; summarize_seeds gives mean [95 % interval] per column, None for a
    target some seed missed, and keeps the per-seed rows (tolerance 0 where the same runs are compared)."""
    from companion.experiments.optimizer_race import (
        plot_seed_curves,
        summarize_seeds,
        train_seeds,
    )

    specs = {"sgd": (SGD, dict(lr=0.1)), "momentum": (SGD, dict(lr=0.1, momentum=0.9))}
    make_model = lambda: mlp(hidden=(8,))
    runs = train_seeds(
        specs, make_model, small_digits, epochs=2, seeds=(0, 1), batch_size=64
    )
    single = train_each(
        specs, make_model, small_digits, epochs=2, batch_size=64, seed=1
    )
    for name in specs:
        assert runs[name][1].history.train_loss == single[name].history.train_loss
    row = summarize_seeds(runs["momentum"], small_digits, target_loss=1e9)
    losses = [r.history.train_loss[-1] for r in runs["momentum"]]
    assert_close(
        torch.tensor(row["train_loss"].mean, dtype=torch.float64),
        torch.tensor(sum(losses) / 2, dtype=torch.float64),
        ulps=2,
        what="mean of two",
    )
    assert row["train_loss"].lo <= row["train_loss"].mean <= row["train_loss"].hi
    assert (
        summarize_seeds(runs["sgd"], small_digits, target_loss=-1.0)["steps_to_target"]
        is None
    )
    assert len(row["per_seed"]) == 2 and "ms_per_step" not in row

    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    plot_seed_curves(runs, "train_loss", ax)
    assert (
        len(ax.get_lines()) == 2 and len(ax.collections) == 2
    )  # a mean line and a band per optimizer
    plt.close("all")
