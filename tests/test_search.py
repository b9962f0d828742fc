"""companion.core.search: axes, grid and random search, successive halving, zoom, and the errors."""

import math

import pytest

from companion.core.search import (
    Axis,
    Trial,
    best,
    grid_search,
    log_uniform,
    random_search,
    rung_budgets,
    sample,
    successive_halving,
    mean_interval,
    total_budget,
    uniform,
    zoom,
)

# the axis maps are a few elementary operations on floats: a few ulps relative to the value
REL = 8 * 2.2e-16


def bowl(params, budget):
    """A score that depends mostly on x (optimum 0.3) and a little on y; a larger budget lowers it."""
    return (params["x"] - 0.3) ** 2 + 1e-3 * (params["y"] - 0.5) ** 2 + 1.0 / budget


SPACE = {"x": uniform(0.0, 1.0), "y": uniform(0.0, 1.0)}


@pytest.mark.parametrize(
    "axis, u, expected",
    [
        (uniform(-1.0, 3.0), 0.25, 0.0),
        (log_uniform(1e-4, 1.0), 0.5, 1e-2),
        (log_uniform(1e-3, 1e-1), 0.0, 1e-3),
        (log_uniform(1e-3, 1e-1), 1.0, 1e-1),
    ],
)
def test_axis_from_unit_and_back(axis, u, expected):
    x = axis.from_unit(u)
    assert abs(x - expected) <= REL * max(abs(expected), 1.0)
    assert (
        abs(axis.to_unit(x) - u) <= 1e-12
    )  # log/exp round trip: a few ulps of log(b/a) ≈ 10


def test_grid_is_cell_centres():
    assert uniform(0.0, 1.0).grid(4) == pytest.approx(
        [0.125, 0.375, 0.625, 0.875], rel=1e-15
    )
    g = log_uniform(1e-4, 1.0).grid(2)
    assert g == pytest.approx(
        [1e-3, 1e-1], rel=1e-13
    )  # centres of the two halves in log scale


def test_log_uniform_spreads_over_decades():
    """Each decade of a log-uniform axis holds about the same share of 4000 samples (binomial sd ≈ 0.007)."""
    xs = [p["lr"] for p in sample({"lr": log_uniform(1e-4, 1.0)}, 4000, seed=1)]
    shares = [
        sum(10.0 ** (k - 1) <= x < 10.0**k for x in xs) / len(xs)
        for k in (-3, -2, -1, 0)
    ]
    assert all(abs(s - 0.25) < 0.04 for s in shares)
    assert all(1e-4 <= x <= 1.0 for x in xs)


def test_grid_search_tries_every_combination():
    trials = grid_search(bowl, SPACE, points={"x": 3, "y": 2}, budget=2.0)
    assert len(trials) == 6 and all(t.budget == 2.0 and t.rung == 0 for t in trials)
    assert sorted({t.params["x"] for t in trials}) == pytest.approx(
        [1 / 6, 0.5, 5 / 6], rel=1e-15
    )
    assert [t.config for t in trials] == list(range(6))
    for t in trials:
        assert t.score == bowl(t.params, 2.0)  # the objective's value, unchanged
    assert best(trials).params["x"] == pytest.approx(1 / 6)  # |1/6 − 0.3| < |0.5 − 0.3|


def test_random_search_is_seeded_and_in_range():
    a = random_search(bowl, SPACE, 20, seed=3)
    b = random_search(bowl, SPACE, 20, seed=3)
    c = random_search(bowl, SPACE, 20, seed=4)
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.params for t in a] != [t.params for t in c]
    assert all(0 <= t.params[k] <= 1 for t in a for k in "xy")
    assert [t.params for t in a] == sample(SPACE, 20, seed=3)


def test_random_beats_grid_on_the_important_axis():
    """With 16 trials a 4×4 grid tries 4 values of x, random search 16: over 40 seeds (the optimum moved
    each time) random search lands closer to the best x on average."""
    gaps = []
    for seed in range(40):
        x_star = 0.05 + 0.9 * sample({"u": uniform(0, 1)}, 1, seed=1000 + seed)[0]["u"]
        f = lambda p, b: (p["x"] - x_star) ** 2 + 1e-4 * p["y"]
        g = abs(best(grid_search(f, SPACE, 4)).params["x"] - x_star)
        r = abs(best(random_search(f, SPACE, 16, seed=seed)).params["x"] - x_star)
        gaps.append(g - r)
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((d - mean) ** 2 for d in gaps) / (len(gaps) - 1))
    assert (
        mean - 2.02 * sd / math.sqrt(len(gaps)) > 0
    )  # 95% interval of the paired difference above 0


@pytest.mark.parametrize(
    "low, high, eta, expected",
    [
        (1, 9, 3, [1, 3, 9]),
        (1, 27, 3, [1, 3, 9, 27]),
        (1, 10, 3, [1, 3, 10]),  # counted down from R: 10/9 ≈ 1, 10/3 ≈ 3, 10
        (2, 16, 2, [2, 4, 8, 16]),
        (5, 5, 3, [5]),
        (0.5, 4.5, 3, [0.5, 1.5, 4.5]),
    ],
)
def test_rung_budgets(low, high, eta, expected):
    assert rung_budgets(low, high, eta) == pytest.approx(expected, rel=1e-15)


def test_successive_halving_keeps_the_best_third():
    trials = successive_halving(
        bowl, SPACE, n_configs=27, min_budget=1, max_budget=9, eta=3, seed=0
    )
    rungs = [[t for t in trials if t.rung == k] for k in range(3)]
    assert [len(r) for r in rungs] == [27, 9, 3]
    assert [r[0].budget for r in rungs] == [1, 3, 9]
    assert total_budget(trials) == 27 * 1 + 9 * 3 + 3 * 9
    for k in (1, 2):  # the survivors are exactly the best |S_k|/3 of the rung before
        before = sorted(rungs[k - 1], key=lambda t: t.score)[: len(rungs[k])]
        assert {t.config for t in rungs[k]} == {t.config for t in before}
    configs = sample(SPACE, 27, seed=0)
    for t in trials:
        assert t.params == configs[t.config]
    winner = best(trials)
    assert winner.budget == 9 and winner.score == min(t.score for t in rungs[2])
    assert (
        winner.score <= min(bowl(p, 9) for p in configs) + 1e-12
    )  # here the ranking never changes with budget


def test_nan_ranks_last():
    def diverges(p, b):
        return math.nan if p["x"] > 0.5 else p["x"]

    trials = successive_halving(diverges, SPACE, 9, 1, 3, eta=3, seed=2)
    finite = [t for t in trials if t.rung == 0 and not math.isnan(t.score)]
    survivors = [t for t in trials if t.rung == 1]
    assert len(survivors) == 3 and 0 < len(finite) < 9
    # every finite configuration outranks every diverged one
    assert sum(not math.isnan(t.score) for t in survivors) == min(3, len(finite))
    assert not math.isnan(best(random_search(diverges, SPACE, 10, seed=0)).score)


def test_zoom_boxes_the_best():
    trials = random_search(
        bowl, {"x": uniform(0, 1), "y": log_uniform(1e-3, 1.0)}, 50, seed=0
    )
    space = zoom({"x": uniform(0, 1), "y": log_uniform(1e-3, 1.0)}, trials, keep=5)
    top = sorted(trials, key=lambda t: t.score)[:5]
    assert space["y"].log and not space["x"].log
    for t in top:
        assert space["x"].low <= t.params["x"] <= space["x"].high
        assert space["y"].low <= t.params["y"] <= space["y"].high
    assert (
        space["x"].high - space["x"].low < 0.5
    )  # the box is narrower along the axis that matters


def test_mean_interval():
    """Mean ± t·s/√n by hand: values 1, 2, 3 have mean 2 and s = 1; with 2 degrees of freedom the
    quantile has the closed form t = (2p − 1)/√(2p(1 − p)), p = 0.975."""
    mean, low, high = mean_interval([1.0, 2.0, 3.0])
    p = 0.975
    half = (2 * p - 1) / math.sqrt(2 * p * (1 - p)) / math.sqrt(3)
    assert mean == 2.0
    assert (
        abs(low - (2 - half)) < 1e-12 and abs(high - (2 + half)) < 1e-12
    )  # a quantile from scipy: ~1e-15


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mean_interval([1.0]), "at least 2 values"),
        (lambda: Axis(1.0, 1.0), "low < high"),
        (lambda: Axis(0.0, math.inf), "low < high"),
        (lambda: log_uniform(0.0, 1.0), "low > 0"),
        (lambda: uniform(0, 1).grid(0), "points must be at least 1"),
        (lambda: grid_search(bowl, {}, 3), "empty"),
        (lambda: grid_search(bowl, {"x": (0, 1)}, 3), "must be an Axis"),
        (lambda: grid_search(bowl, SPACE, {"x": 3}), "must name the axes"),
        (lambda: random_search(bowl, SPACE, 0), "at least 1"),
        (lambda: rung_budgets(0, 9), "0 < min_budget"),
        (lambda: rung_budgets(10, 9), "min_budget <= max_budget"),
        (lambda: rung_budgets(1, 9, eta=1), "eta must be an integer >= 2"),
        (lambda: rung_budgets(1, 9, eta=2.5), "eta must be an integer >= 2"),
        (lambda: best([]), "no trials"),
        (
            lambda: zoom(SPACE, [Trial({"x": 0.1, "y": 0.1}, 1.0, 1.0)], keep=2),
            "keep must be in",
        ),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
