"""Each family of bounds the tests use is tight enough to catch a real mistake.

The families: optimizer trajectories (``REPLAY_ULPS``, ``CLOSED_LOOP_ULPS`` of
``companion.testing.optim_contract``), layer parity (``assert_modules_close`` with tens of ε), plain
values (``assert_close`` with a few ε) and bit-exactness (``ulps=0``). For each, a deliberately wrong
variant of a correct computation must fail the bound the tests use, while the correct one passes.
"""

import pytest
import torch
from torch import nn

from companion.nn import LayerNorm, Softmax
from companion.optim import Adam
from companion.optim.adam_variants import AdamVariant
from companion.testing import optim_contract as contract
from companion.testing.parity import assert_modules_close
from companion.testing.tolerances import assert_close, eps, mismatch

ADAM = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)


# -- optimizer trajectories -----------------------------------------------------------------------------


def test_correct_adam_passes_the_trajectory_bounds():
    contract.check_replay(Adam, torch.optim.Adam, ADAM)
    contract.check_closed_loop(Adam, torch.optim.Adam, ADAM)


@pytest.mark.parametrize(
    "variant", [dict(eps_hat=True), dict(bias_correction=False)], ids=str
)
@pytest.mark.parametrize(
    "check",
    [contract.check_replay, contract.check_closed_loop],
    ids=lambda c: c.__name__,
)
def test_wrong_adam_fails_the_trajectory_bounds(variant, check):
    """ε added to the uncorrected √v_t (the paper's "efficient" form) or no bias correction at all."""
    wrong = lambda params, **options: AdamVariant(params, **options, **variant)
    with pytest.raises(AssertionError, match="relative difference"):
        check(wrong, torch.optim.Adam, ADAM)


def test_wrong_eps_fails_the_replay_bound():
    """A subtler slip: ε = 1.01e-8 instead of 1e-8 is still caught over the 200 replayed steps."""
    wrong = lambda params, **options: Adam(params, **{**options, "eps": 1.01e-8})
    with pytest.raises(AssertionError):
        contract.check_replay(wrong, torch.optim.Adam, ADAM)


# -- layer parity -------------------------------------------------------------------------------------


class LayerNormEpsOutside(nn.Module):
    """LayerNorm with ε outside the root, (x − μ)/(σ + ε): a typical slip."""

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        sigma = x.var(-1, unbiased=False, keepdim=True).sqrt()
        return (x - mu) / (sigma + 1e-5)


class UnstableSoftmax(nn.Module):
    """softmax without subtracting the maximum: right in exact arithmetic, wrong for large inputs."""

    def forward(self, x):
        e = x.exp()
        return e / e.sum(-1, keepdim=True)


def _x(scale=1.0):
    return scale * torch.randn(
        6, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )


def test_layer_parity_bound_accepts_ours_and_rejects_wrong_layers():
    x = _x()
    assert_modules_close(
        LayerNorm(10, elementwise_affine=False).double(),
        nn.LayerNorm(10, elementwise_affine=False).double(),
        x,
        ulps=64,
    )
    with pytest.raises(AssertionError, match="output"):
        assert_modules_close(
            LayerNormEpsOutside(),
            nn.LayerNorm(10, elementwise_affine=False).double(),
            x,
            ulps=64,
        )
    big = _x(400.0)  # e^{±1000}: inf/inf = nan in the unstable form
    assert_modules_close(Softmax(dim=-1), nn.Softmax(dim=-1), big, ulps=64)
    with pytest.raises(AssertionError):
        assert_modules_close(UnstableSoftmax(), nn.Softmax(dim=-1), big, ulps=64)


# -- plain values and bit-exactness ---------------------------------------------------------------------


def test_value_bound_catches_a_one_part_in_a_billion_error():
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)
    assert_close(torch.tanh(x) * 1.0, torch.tanh(x), ulps=8)
    with pytest.raises(AssertionError):
        assert_close(torch.tanh(x) * (1 + 1e-9), torch.tanh(x), ulps=8)


def test_exact_bound_catches_a_reordered_product():
    """Inverted dropout as x·m/(1−p) and as x·(m/(1−p)): equal in exact arithmetic, not in float64."""
    p = 0.3
    x = torch.randn(
        1000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    m = (
        torch.rand(
            1000, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
        )
        > p
    ).double()
    assert_close(x * m / (1 - p), x * m / (1 - p), ulps=0)
    with pytest.raises(AssertionError):
        assert_close(x * (m / (1 - p)), x * m / (1 - p), ulps=0)


def test_mismatch_reports_where_and_how_much():
    a = torch.zeros(2, 3, dtype=torch.float64)
    b = a.clone()
    b[1, 2] = 1.0
    m = mismatch(a, b)
    assert m.index == (1, 2) and m.abs_diff == 1.0 and m.ulps == 1 / eps(torch.float64)
    assert "index (1, 2)" in str(m)
    nan = torch.tensor([float("nan"), 1.0], dtype=torch.float64)
    assert mismatch(nan, nan).ulps == 0  # NaNs in the same places are equal
    assert mismatch(torch.tensor([0.0, 1.0], dtype=torch.float64), nan).ulps == float(
        "inf"
    )
