"""companion.core.calibration: reliability bins and the expected calibration error against a direct
computation, on constructed cases with known answers, and its errors."""

import pytest
import torch

from companion.core.calibration import expected_calibration_error, reliability

EPS_ULPS = (
    64  # sums over ≤ 1000 examples of numbers in [0, 1], in float64: tens of roundings
)


def _direct_ece(probs, labels, n_bins):
    conf, pred = probs.max(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if inside.any():
            acc = (pred[inside] == labels[inside]).double().mean()
            total += (
                inside.sum().item()
                / len(conf)
                * (acc - conf[inside].mean()).abs().item()
            )
    return total


@pytest.mark.parametrize("n_bins", [1, 5, 15])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_matches_direct_computation(n_bins, seed):
    g = torch.Generator().manual_seed(seed)
    probs = (3 * torch.randn(500, 7, generator=g, dtype=torch.float64)).softmax(1)
    labels = torch.randint(7, (500,), generator=g)
    assert (
        abs(
            expected_calibration_error(probs, labels, n_bins)
            - _direct_ece(probs, labels, n_bins)
        )
        <= EPS_ULPS * 2.2e-16
    )


def test_known_cases():
    # always right with confidence 1: calibrated
    probs = torch.eye(4, dtype=torch.float64)
    assert expected_calibration_error(probs, torch.arange(4)) == 0.0
    # always wrong with confidence 1: ECE = 1
    assert expected_calibration_error(probs, torch.tensor([1, 2, 3, 0])) == 1.0
    # confidence 0.8 and right 80% of the time: calibrated (one bin)
    p = torch.tensor([[0.8, 0.2]] * 10, dtype=torch.float64)
    y = torch.tensor([0] * 8 + [1] * 2)
    assert abs(expected_calibration_error(p, y, n_bins=10)) <= 4 * 2.2e-16
    bins = reliability(p, y, n_bins=10)
    assert bins.count.sum() == 10 and bins.count[7] == 10  # 0.8 lies in (0.7, 0.8]
    assert (
        bins.confidence[0].isnan() and abs(bins.accuracy[7].item() - 0.8) <= 4 * 2.2e-16
    )


def test_errors():
    with pytest.raises(ValueError, match="expected probs"):
        reliability(torch.rand(5), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="n_bins"):
        reliability(torch.rand(5, 2), torch.zeros(5, dtype=torch.long), n_bins=0)
