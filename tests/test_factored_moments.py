"""companion.experiments.factored_moments: the row-and-column estimate, the I-divergence, the schedule's
weights, state bytes, the flat linear layer and the tracked full second moments."""

import math

import pytest
import torch
from torch import nn

from companion.core.data import make_classification
from companion.core.models import mlp
from companion.experiments.factored_moments import (
    FlatLinear,
    adam_average_weights,
    average_weights,
    effective_count,
    frobenius_rank1,
    i_divergence,
    relative_error,
    row_column_estimate,
    state_bytes,
    track_second_moments,
)
from companion.optim.adafactor import Adafactor
from companion.optim.adam import Adam
from companion.testing.tolerances import assert_close


def _squares(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).square()


@pytest.mark.parametrize("shape", [(5, 3), (1, 4), (4, 1), (2, 3, 4)])
def test_estimate_keeps_row_and_column_sums(shape):
    """The estimate's row and column sums are V's (the stationarity conditions of the I-divergence)."""
    v = _squares(shape)
    q = row_column_estimate(v)
    assert q.shape == v.shape
    assert_close(
        q.sum(-1), v.sum(-1), ulps=64
    )  # sums over ≤ 5 entries, then a product and a division: a few ε each
    assert_close(q.sum(-2), v.sum(-2), ulps=64)


def test_estimate_is_exact_for_rank_one_and_zero_for_zero():
    gen = torch.Generator().manual_seed(1)
    a, b = (
        torch.rand(6, 1, generator=gen, dtype=torch.float64),
        torch.rand(1, 4, generator=gen, dtype=torch.float64),
    )
    assert_close(
        row_column_estimate(a @ b), a @ b, ulps=32
    )  # sums of 4–6 products: a few ε
    zero = torch.zeros(3, 2, dtype=torch.float64)
    assert torch.equal(row_column_estimate(zero), zero)
    v = _squares((4, 3))
    v[:, 1] = 0  # a column without gradient (a blank pixel) stays zero
    assert torch.equal(
        row_column_estimate(v)[:, 1], torch.zeros(4, dtype=torch.float64)
    )


def test_i_divergence_values():
    p = torch.tensor([[1.0, 0.0], [2.0, 3.0]], dtype=torch.float64)
    assert i_divergence(p, p) == 0.0
    q = torch.tensor([[2.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
    # entries: 1·log(1/2) − 1 + 2, then 0 − 0 + 1, then 0 and 0
    assert math.isclose(i_divergence(p, q), math.log(0.5) - 1 + 2 + 1, rel_tol=1e-14)
    assert i_divergence(p, torch.zeros_like(p)) == math.inf


def test_estimate_minimizes_the_i_divergence():
    """No rank-1 perturbation of the estimate and not the Frobenius-best rank-1 does better in I-divergence."""
    v = _squares((7, 5), seed=2)
    q = row_column_estimate(v)
    best = i_divergence(v, q)
    gen = torch.Generator().manual_seed(3)
    r, c = v.sum(1, keepdim=True), v.sum(0, keepdim=True) / v.sum()
    for _ in range(50):
        scale_r = torch.exp(0.1 * torch.randn(7, 1, generator=gen, dtype=torch.float64))
        scale_c = torch.exp(0.1 * torch.randn(1, 5, generator=gen, dtype=torch.float64))
        assert i_divergence(v, (r * scale_r) @ (c * scale_c)) > best
    assert i_divergence(v, frobenius_rank1(v).abs()) >= best
    assert relative_error(frobenius_rank1(v), v) <= relative_error(q, v)  # Eckart–Young


def test_average_weights_sum_to_one_and_follow_the_recursion():
    """β̂₂,₁ = 0: the weights sum to 1 at every t, and they are the recursion's weights."""
    for t in (1, 2, 7, 100):
        w = average_weights(t)
        assert math.isclose(w.sum().item(), 1.0, rel_tol=1e-12)
    gen = torch.Generator().manual_seed(4)
    g2 = torch.rand(9, generator=gen, dtype=torch.float64)
    v = torch.zeros((), dtype=torch.float64)
    for k in range(1, 10):
        v = v + k**-0.5 * (g2[k - 1] - v)
    assert math.isclose(
        v.item(), (average_weights(9, -0.5) * g2).sum().item(), rel_tol=1e-12
    )
    assert torch.allclose(
        average_weights(5, -1.0),
        torch.full((5,), 0.2, dtype=torch.float64),
        rtol=1e-12,
        atol=0,
    )


def test_adam_weights_and_effective_count():
    w = adam_average_weights(10, 0.9)
    assert math.isclose(w.sum().item(), 1.0, rel_tol=1e-12)
    assert math.isclose(
        effective_count(torch.full((8,), 0.125, dtype=torch.float64)),
        8.0,
        rel_tol=1e-12,
    )
    long_run = effective_count(adam_average_weights(20_000, 0.99))
    assert math.isclose(
        long_run, (1 + 0.99) / (1 - 0.99), rel_tol=1e-9
    )  # (1 + β₂)/(1 − β₂)


def test_state_bytes_of_adam_and_adafactor():
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 3))
    for cls, moments, keys in (
        (Adam, 2 * (24 + 4 + 12 + 3), ("exp_avg", "exp_avg_sq")),
        (Adafactor, (4 + 6) + 4 + (3 + 4) + 3, ("row_var", "col_var", "variance")),
    ):
        opt = cls(model.parameters())
        model(torch.randn(2, 6)).sum().backward()
        opt.step()
        assert state_bytes(opt, keys) == 4 * moments  # float32 entries
        assert (
            state_bytes(opt) == 4 * moments + 4 * 4
        )  # and a float32 step per parameter


def test_flat_linear_is_nn_linear():
    torch.manual_seed(0)
    linear = nn.Linear(5, 3)
    torch.manual_seed(0)
    flat = FlatLinear(5, 3)
    assert flat.weight.shape == (15,)
    x = torch.randn(4, 5)
    assert torch.equal(
        flat(x), linear(x)
    )  # the same weights and the same F.linear call


def test_track_second_moments_gives_adafactors_factors():
    """Adafactor's row_var and col_var are the row and column means of the tracked full average (float32)."""
    data = make_classification(n=64, d=4, classes=3, seed=0)
    torch.manual_seed(0)
    model = mlp(in_features=4, hidden=(8,), out_features=3)
    opt = Adafactor(model.parameters())
    full = track_second_moments(
        model,
        opt,
        data,
        steps=7,
        batch_size=16,
        generator=torch.Generator().manual_seed(0),
    )
    assert set(full) == {"0.weight", "2.weight"}
    for name, p in model.named_parameters():
        if p.dim() == 2:
            assert opt.state[p]["step"].item() == 7
            # 7 lerps of a mean of ≤ 8 squares, in float32 and in another order: tens of ε
            assert_close(
                full[name].mean(-1, keepdim=True), opt.state[p]["row_var"], ulps=64
            )
            assert_close(
                full[name].mean(-2, keepdim=True), opt.state[p]["col_var"], ulps=64
            )
