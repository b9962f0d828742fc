r"""Comparisons over seeds: a mean and its Student-t interval, the one used by every chapter.

A claim about methods is made over several seeds; with n runs of sample mean :math:`\bar x` and sample
standard deviation s, the interval

.. math::
    \bar x \pm t_{(1+\text{level})/2,\; n-1}\; \frac{s}{\sqrt n}

covers the expected value with probability ``level`` if the runs are independent and roughly normal.
:func:`loglog_slope` reads the exponent of a power law off measured points. Applied to paired differences (method − baseline with the same seed), an interval that excludes 0 is
a difference beyond seed noise; one that contains 0 is "no measurable difference".
"""

import math
from typing import NamedTuple, Sequence

from companion.core.checks import check


class Interval(NamedTuple):
    """A mean over seeds and its interval ``[lo, hi]``; unpacks as ``mean, lo, hi`` and formats as ``mean [lo, hi]``."""

    mean: float
    lo: float
    hi: float

    @property
    def half(self) -> float:
        """The half-width of the interval."""
        return (self.hi - self.lo) / 2

    def excludes(self, value: float = 0.0) -> bool:
        """True if ``value`` lies outside the interval (for a paired difference: beyond seed noise)."""
        return value < self.lo or value > self.hi

    def __format__(self, spec: str) -> str:
        spec = spec or ".3f"
        return f"{self.mean:{spec}} [{self.lo:{spec}}, {self.hi:{spec}}]"


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t distribution with ``dof`` degrees of freedom (scipy's)."""
    from scipy.stats import t  # scipy comes with scikit-learn

    return float(t.ppf(p, dof))


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of ``values`` (one per seed, at least two) with its Student-t interval at ``level``."""
    xs = [float(v) for v in values]
    check(len(xs) >= 2, f"need at least 2 values for an interval, got {len(xs)}")
    check(0 < level < 1, f"level must be in (0, 1), got {level}")
    n = len(xs)
    mean = math.fsum(xs) / n
    # s = √(Σ (x − x̄)² / (n − 1))
    s = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    # half-width t_{(1+level)/2, n−1} · s / √n
    half = t_quantile((1 + level) / 2, n - 1) * s / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def paired_interval(
    values: Sequence[float], baseline: Sequence[float], level: float = 0.95
) -> Interval:
    """The interval of the per-seed differences ``values[i] − baseline[i]`` (runs sharing a seed vary
    together, so their differences vary less than either alone)."""
    check(
        len(values) == len(baseline),
        f"{len(values)} values against {len(baseline)} baseline values",
    )
    return mean_interval([v - b for v, b in zip(values, baseline)], level)


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The least-squares slope of log y against log x: the exponent p of a power law y ∝ x^p."""
    import torch

    lx = torch.log(torch.as_tensor(x, dtype=torch.float64))
    ly = torch.log(torch.as_tensor(y, dtype=torch.float64))
    # p = cov(log x, log y) / var(log x)
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return ((lx * ly).sum() / (lx * lx).sum()).item()
