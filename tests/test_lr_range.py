"""companion.core.lr_range: the geometric rate sweep, early stop on divergence, the read-offs, the errors."""

import math

import pytest
import torch

import companion
from companion.core.data import load_digits
from companion.core.lr_range import RangeTest, lr_range_test
from companion.core.models import mlp
from companion.optim import SGD


def sgd(params, lr):
    return SGD(params, lr=lr, momentum=0.9)


@pytest.fixture(scope="module")
def digits():
    return load_digits().train


def test_rates_are_geometric_and_model_untouched(digits):
    companion.seed_everything(0)
    net = mlp(hidden=(16,))
    before = [p.detach().clone() for p in net.parameters()]
    r = lr_range_test(
        net,
        sgd,
        digits,
        lr_min=1e-4,
        lr_max=1e-2,
        steps=30,
        generator=torch.Generator().manual_seed(0),
    )
    assert (
        len(r.lrs) == len(r.raw) == len(r.losses) == 30
    )  # no divergence at these small rates
    # η_k = η_min (η_max/η_min)^{k/(K−1)}: ExponentialLR's recursive product, ≈ 1 ε of rounding per step
    for k, lr in enumerate(r.lrs):
        assert math.isclose(lr, 1e-4 * 100 ** (k / 29), rel_tol=30 * 2.2e-16)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_smoothing_is_bias_corrected(digits):
    companion.seed_everything(0)
    r = lr_range_test(
        mlp(hidden=(16,)), sgd, digits, lr_min=1e-3, lr_max=1e-2, steps=10, beta=0.8
    )
    avg = 0.0
    for k, raw in enumerate(r.raw):
        avg = 0.8 * avg + 0.2 * raw
        assert math.isclose(r.losses[k], avg / (1 - 0.8 ** (k + 1)), rel_tol=1e-12)
    assert r.losses[0] == pytest.approx(r.raw[0])


def test_stops_when_the_loss_explodes_and_reads_a_rate(digits):
    companion.seed_everything(0)
    r = lr_range_test(
        mlp(hidden=(32,)),
        sgd,
        digits,
        lr_min=1e-3,
        lr_max=100.0,
        steps=120,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(r.lrs) < 120  # stopped early
    assert not r.losses[-1] <= 4 * min(
        r.losses
    )  # ... because the smoothed loss blew past 4× its minimum
    assert (
        0.02 < r.steepest() < r.minimum() < 5.0
    )  # the steepest fall comes before the minimum


def test_read_offs_on_a_made_up_curve():
    lrs = [10 ** (k / 4 - 3) for k in range(9)]
    losses = [2.3, 2.29, 2.2, 1.6, 1.0, 0.8, 0.7, 1.5, math.inf]
    r = RangeTest(lrs=lrs, raw=losses, losses=losses)
    assert r.minimum() == lrs[6]  # the infinite last entry is ignored
    assert r.steepest() == lrs[3]  # largest central drop: (1.0 − 2.2) around k = 3
    assert (
        RangeTest(lrs=[1.0, 2.0], raw=[1.0, 2.0], losses=[1.0, 2.0]).steepest() == 1.0
    )
    with pytest.raises(ValueError, match="no finite loss"):
        RangeTest(lrs=[1.0], raw=[math.nan], losses=[math.nan]).minimum()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr_min=0.0), "need 0 < lr_min < lr_max"),
        (dict(lr_min=1.0, lr_max=0.5), "need 0 < lr_min < lr_max"),
        (dict(steps=1), "steps must be at least 2"),
    ],
)
def test_errors(digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lr_range_test(mlp(hidden=(4,)), sgd, digits, **kwargs)
