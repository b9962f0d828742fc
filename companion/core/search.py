r"""Hyper-parameter search: grid search, random search and successive halving over a user objective.

An *objective* is any function ``objective(params, budget) -> float`` that trains (or simulates
training) with the hyper-parameters ``params`` (a dict of floats) for ``budget`` units of work
(epochs, steps, ...) and returns a score to **minimize** (a validation loss, or 1 − accuracy). A
*space* maps each hyper-parameter's name to an :class:`Axis`. Every search returns the list of all
its :class:`Trial` s in the order they were run, so that tables and plots can be made from them.

Grid search tries every combination of ``points`` values per axis; random search draws
``n_trials`` independent points :cite:`bergstra2012random`. With the same number of trials
:math:`n` over :math:`d` axes, a grid tries only :math:`n^{1/d}` distinct values of each
hyper-parameter, random search :math:`n`: when only a few hyper-parameters matter, random search
covers them much more finely. Successive halving :cite:`jamieson2016nonstochastic` spends the
budget unevenly: it evaluates many configurations cheaply and gives more budget only to the best.

Hyperband :cite:`li2018hyperband` runs several successive-halving *brackets* that trade the number
of configurations against the starting budget (``successive_halving`` with different
``n_configs`` and ``min_budget`` for the same ``max_budget``), as a hedge against a minimal budget
that is too small to rank configurations.
"""

import itertools
import math
import random
from dataclasses import dataclass
from typing import Callable, Mapping

from companion.core.stats import mean_interval  # noqa: F401  (re-exported for the search chapter's tables)

Objective = Callable[[dict[str, float], float], float]


@dataclass(frozen=True)
class Axis:
    r"""One hyper-parameter's range ``[low, high]``, sampled uniformly in :math:`x` or, with
    ``log=True``, uniformly in :math:`\log x` (a *log-uniform* axis, for scales such as learning
    rates: each decade gets the same share of the points)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        if (
            not (math.isfinite(self.low) and math.isfinite(self.high))
            or not self.low < self.high
        ):
            raise ValueError(
                f"Axis needs finite low < high, got low={self.low}, high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"a log axis needs low > 0, got low={self.low}")

    def from_unit(self, u: float) -> float:
        r"""The value at fraction :math:`u \in [0, 1]` of the axis: :math:`x = a + u (b - a)`, or
        :math:`x = a\,(b/a)^u` on a log axis."""
        if self.log:
            # x = a · (b/a)^u: u is the position in log x
            return self.low * (self.high / self.low) ** u
        # x = a + u (b − a)
        return self.low + u * (self.high - self.low)

    def to_unit(self, x: float) -> float:
        """The inverse of :meth:`from_unit`: where ``x`` lies on the axis, as a fraction in [0, 1]."""
        if self.log:
            return math.log(x / self.low) / math.log(self.high / self.low)
        return (x - self.low) / (self.high - self.low)

    def grid(self, points: int) -> list[float]:
        r"""``points`` values at the centres of equal cells, :math:`u_i = (i + \tfrac12)/n`
        (equal cells of :math:`\log x` on a log axis), so the grid covers the axis evenly."""
        if points < 1:
            raise ValueError(f"points must be at least 1, got {points}")
        return [self.from_unit((i + 0.5) / points) for i in range(points)]


def uniform(low: float, high: float) -> Axis:
    """An axis sampled uniformly in ``[low, high]``."""
    return Axis(low, high, log=False)


def log_uniform(low: float, high: float) -> Axis:
    """An axis sampled uniformly in log scale between ``low`` > 0 and ``high``."""
    return Axis(low, high, log=True)


@dataclass(frozen=True)
class Trial:
    """One evaluation of the objective."""

    params: dict[str, float]
    score: float
    """What the objective returned (lower is better; NaN counts as worst)."""
    budget: float
    """The budget the objective was given."""
    rung: int = 0
    """The successive-halving round (0 for grid and random search)."""
    config: int = 0
    """Which configuration this is (successive halving evaluates one configuration on several rungs)."""


def _check_space(space: Mapping[str, Axis]) -> None:
    if not space:
        raise ValueError("the search space is empty")
    for name, axis in space.items():
        if not isinstance(axis, Axis):
            raise ValueError(
                f"space[{name!r}] must be an Axis, got {type(axis).__name__}"
            )


def _rank_key(score: float) -> float:
    # a diverged run (NaN) ranks below every finite score
    return math.inf if math.isnan(score) else score


def _evaluate(
    objective: Objective, configs: list[dict], budget: float, rung: int, ids: list[int]
) -> list[Trial]:
    return [
        Trial(dict(p), float(objective(dict(p), budget)), budget, rung, i)
        for p, i in zip(configs, ids)
    ]


def grid_search(
    objective: Objective,
    space: Mapping[str, Axis],
    points: int | Mapping[str, int],
    budget: float = 1.0,
) -> list[Trial]:
    """Evaluate the objective on every combination of ``points`` grid values per axis (an int for
    all axes, or one per name; see :meth:`Axis.grid`), each with the same ``budget``."""
    _check_space(space)
    per_axis = (
        {name: points for name in space} if isinstance(points, int) else dict(points)
    )
    if set(per_axis) != set(space):
        raise ValueError(
            f"points must name the axes {sorted(space)}, got {sorted(per_axis)}"
        )
    values = [space[name].grid(per_axis[name]) for name in space]
    configs = [dict(zip(space, combo)) for combo in itertools.product(*values)]
    return _evaluate(objective, configs, budget, 0, list(range(len(configs))))


def sample(space: Mapping[str, Axis], n: int, seed: int = 0) -> list[dict[str, float]]:
    """``n`` independent random points of ``space`` (each axis uniform, or log-uniform), seeded."""
    _check_space(space)
    if n < 1:
        raise ValueError(f"the number of trials must be at least 1, got {n}")
    rng = random.Random(seed)
    return [
        {name: axis.from_unit(rng.random()) for name, axis in space.items()}
        for _ in range(n)
    ]


def random_search(
    objective: Objective,
    space: Mapping[str, Axis],
    n_trials: int,
    budget: float = 1.0,
    seed: int = 0,
) -> list[Trial]:
    """Evaluate the objective at ``n_trials`` random points of ``space`` (see :func:`sample`)."""
    configs = sample(space, n_trials, seed)
    return _evaluate(objective, configs, budget, 0, list(range(n_trials)))


def rung_budgets(min_budget: float, max_budget: float, eta: int = 3) -> list[float]:
    r"""The budgets of successive halving's rounds, counted down from :math:`R` = ``max_budget``:
    :math:`r_k = R\,\eta^{k-K}` for :math:`k = 0..K`, :math:`K = \lfloor \log_\eta(R / r_{\min}) \rfloor`
    (rounded to integers when both ends are integers)."""
    if not 0 < min_budget <= max_budget:
        raise ValueError(
            f"need 0 < min_budget <= max_budget, got {min_budget} and {max_budget}"
        )
    if not (isinstance(eta, int) and eta >= 2):
        raise ValueError(f"eta must be an integer >= 2, got {eta}")
    # K = ⌊log_η(R / r_min)⌋ (1e-9: exact powers of η are not lost to rounding)
    K = math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9)
    # r_k = R η^(k − K)
    budgets = [max_budget * eta ** (k - K) for k in range(K + 1)]
    if isinstance(min_budget, int) and isinstance(max_budget, int):
        budgets = [int(round(b)) for b in budgets]
    return budgets


def successive_halving(
    objective: Objective,
    space: Mapping[str, Axis],
    n_configs: int,
    min_budget: float,
    max_budget: float,
    eta: int = 3,
    seed: int = 0,
) -> list[Trial]:
    r"""Successive halving :cite:`jamieson2016nonstochastic`: draw ``n_configs`` random points, then
    repeat: evaluate the survivors :math:`S_k` with budget :math:`r_k` (:func:`rung_budgets`) and keep
    the best :math:`\lfloor |S_k| / \eta \rfloor` (at least one),

    .. math::
        |S_{k+1}| = \max(1, \lfloor |S_k| / \eta \rfloor), \qquad r_{k+1} = \eta\, r_k,

    until the last budget :math:`R` = ``max_budget`` has been spent on the survivors. Each round
    calls the objective afresh with the larger budget (a caller may warm-start instead). The points
    are those of :func:`sample` with the same seed, so the first ``n_configs`` configurations of a
    random search with that seed are the same.
    """
    configs = sample(space, n_configs, seed)
    alive = list(range(n_configs))
    trials: list[Trial] = []
    budgets = rung_budgets(min_budget, max_budget, eta)
    for rung, budget in enumerate(budgets):
        results = _evaluate(objective, [configs[i] for i in alive], budget, rung, alive)
        trials += results
        if rung == len(budgets) - 1:
            break
        keep = max(1, len(alive) // eta)
        # the best ⌊|S_k|/η⌋ survive (a stable sort: ties go to the earlier configuration)
        ranked = sorted(results, key=lambda t: _rank_key(t.score))
        alive = [t.config for t in ranked[:keep]]
    return trials


def best(trials: list[Trial]) -> Trial:
    """The trial with the lowest score among those run with the largest budget (NaN counts as worst)."""
    if not trials:
        raise ValueError("no trials")
    top = max(t.budget for t in trials)
    return min((t for t in trials if t.budget == top), key=lambda t: _rank_key(t.score))


def total_budget(trials: list[Trial]) -> float:
    """The budget spent by all the trials together (e.g. the total number of epochs)."""
    return sum(t.budget for t in trials)


def zoom(space: Mapping[str, Axis], trials: list[Trial], keep: int) -> dict[str, Axis]:
    """Coarse-to-fine: the smallest box (in each axis's own scale) around the ``keep`` best trials,
    a space for a second, finer round of search."""
    _check_space(space)
    if not 1 <= keep <= len(trials):
        raise ValueError(f"keep must be in [1, {len(trials)}], got {keep}")
    top = sorted(trials, key=lambda t: _rank_key(t.score))[:keep]
    box = {}
    for name, axis in space.items():
        u = [axis.to_unit(t.params[name]) for t in top]
        lo, hi = min(u), max(u)
        # widen by one cell of the keep points so the box is never empty
        pad = 0.5 / keep
        lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
        box[name] = Axis(axis.from_unit(lo), axis.from_unit(hi), axis.log)
    return box


__all__ = [
    "Axis",
    "Trial",
    "uniform",
    "log_uniform",
    "grid_search",
    "sample",
    "random_search",
    "rung_budgets",
    "successive_halving",
    "best",
    "total_budget",
    "mean_interval",
    "zoom",
]
