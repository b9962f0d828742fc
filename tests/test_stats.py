"""companion.core.stats: the Student-t interval against scipy's and against coverage by simulation."""

import math

import pytest
import torch
from scipy import stats as scipy_stats

from companion.core.stats import Interval, mean_interval, paired_interval


def test_interval_matches_scipy():
    xs = [0.91, 0.93, 0.92, 0.95, 0.90]
    got = mean_interval(xs)
    lo, hi = scipy_stats.t.interval(
        0.95, len(xs) - 1, loc=sum(xs) / len(xs), scale=scipy_stats.sem(xs)
    )
    # the same formula in another order: a few ε of the values' size
    assert abs(got.lo - lo) < 8 * 2.2e-16 and abs(got.hi - hi) < 8 * 2.2e-16
    assert got.mean == pytest.approx(0.922, rel=1e-12) and got.half == pytest.approx(
        (hi - lo) / 2, rel=1e-12
    )


def test_coverage_is_about_the_level():
    """Over 2000 simulated experiments of 5 normal draws, the 95 % interval covers the mean 95 % of the
    time (within 4 binomial standard errors, ±0.02)."""
    g = torch.Generator().manual_seed(0)
    draws = torch.randn(2000, 5, generator=g, dtype=torch.float64)
    covered = sum(not mean_interval(row.tolist()).excludes(0.0) for row in draws)
    assert abs(covered / 2000 - 0.95) < 4 * math.sqrt(0.95 * 0.05 / 2000)


def test_paired_and_formatting_and_errors():
    d = paired_interval([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert d == Interval(0.5, 0.5, 0.5) and not d.excludes(0.5) and d.excludes(0.0)
    assert f"{Interval(0.5, 0.25, 0.75):.2f}" == "0.50 [0.25, 0.75]"
    with pytest.raises(ValueError, match="at least 2 values"):
        mean_interval([1.0])
    with pytest.raises(ValueError, match="baseline"):
        paired_interval([1.0, 2.0], [1.0])
