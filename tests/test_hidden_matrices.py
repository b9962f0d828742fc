"""companion.experiments.hidden_matrices: the hidden/rest split, two optimizers stepped as one, the linear decay,
and the scalar Newton–Schulz map against the matrix iteration."""

import pytest
import torch
from torch import nn

from companion.core.models import mlp
from companion.experiments.hidden_matrices import (
    CUBIC,
    Combined,
    LinearDecay,
    muon_with_adamw,
    polynomial_iterates,
    singular_values,
    split_hidden,
)
from companion.optim.adamw import AdamW
from companion.optim.muon import NS_COEFFICIENTS, Muon, newton_schulz
from companion.testing.tolerances import assert_close


@pytest.mark.parametrize("hidden, n_hidden", [((8,), 0), ((8, 6), 1), ((8, 6, 4), 2)])
def test_split_hidden(hidden, n_hidden):
    model = mlp(in_features=5, hidden=hidden, out_features=3)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if n_hidden == 0:
        with pytest.raises(ValueError, match="at least 3 linear layers"):
            split_hidden(model)
        return
    matrices, rest = split_hidden(model)
    assert [p is m.weight for p, m in zip(matrices, linears[1:-1])] == [True] * n_hidden
    assert len(matrices) + len(rest) == len(list(model.parameters()))
    assert all(
        p.dim() == 1
        for p in rest
        if p is not linears[0].weight and p is not linears[-1].weight
    )
    assert {id(p) for p in matrices}.isdisjoint(id(p) for p in rest)


def _problem(seed=0):
    torch.manual_seed(seed)
    model = mlp(in_features=5, hidden=(8, 6), out_features=3).double()
    X, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,))
    return model, X, y


def test_combined_steps_like_the_two_optimizers_apart():
    """Combined(Muon, AdamW) moves every parameter exactly as the two optimizers stepped one after the other."""
    results = []
    for together in (True, False):
        model, X, y = _problem()
        hidden, rest = split_hidden(model)
        muon, adamw = Muon(hidden, lr=0.02), AdamW(rest, lr=0.01)
        opt = Combined(muon, adamw)
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X), y).backward()
            if together:
                opt.step()
            else:
                muon.step()
                adamw.step()
        results.append([p.detach().clone() for p in model.parameters()])
        assert all(p.grad is not None for p in model.parameters())
        opt.zero_grad()
        assert all(p.grad is None for p in model.parameters())
    for a, b in zip(*results):
        assert torch.equal(a, b)  # the same operations in the same order: bit for bit


def test_combined_closure_groups_and_state_dict():
    model, X, y = _problem()
    opt = muon_with_adamw(model, muon_lr=0.02, adamw_lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.01]

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss is not None and loss.item() > 0
    state = opt.state_dict()
    model2, _, _ = _problem()
    opt2 = muon_with_adamw(model2, muon_lr=0.5, adamw_lr=0.5)
    opt2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == [0.02, 0.01]
    with pytest.raises(ValueError, match="1 states for 2 optimizers"):
        opt2.load_state_dict(state[:1])


def test_combined_refuses_a_shared_parameter():
    p = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="belongs to two"):
        Combined(Muon([p]), AdamW([p]))


def test_linear_decay():
    model, _, _ = _problem()
    opt = muon_with_adamw(model, muon_lr=0.04, adamw_lr=0.02)
    decay = LinearDecay(opt, epochs=4)
    seen = []
    for _ in range(4):
        seen += [g["lr"] for g in opt.param_groups]
        decay.step()
    assert seen == pytest.approx([0.04, 0.02, 0.03, 0.015, 0.02, 0.01, 0.01, 0.005])
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]


def test_polynomial_iterates():
    sigma = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    rows = polynomial_iterates(sigma, CUBIC, 2)
    assert rows.shape == (3, 3) and torch.equal(rows[0], sigma)
    assert_close(
        rows[1], 1.5 * sigma - 0.5 * sigma**3, ulps=4
    )  # one cubic polynomial: a few ε
    assert (
        rows[2, 2] == 1.0 and rows[2, 0] == 0.0
    )  # 1 is fixed by the cubic, 0 by every odd polynomial


@pytest.mark.parametrize("shape", [(12, 12), (8, 20), (20, 8)])
def test_the_matrix_iteration_follows_the_scalar_map(shape):
    """newton_schulz maps each singular value σ of G/‖G‖_F through the quintic five times (in bfloat16, so to
    about 2⁻⁸ relative, compounded over five steps: a few percent)."""
    g = torch.randn(
        shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    s = singular_values(g)
    assert torch.all(s[:-1] >= s[1:])
    predicted = (
        polynomial_iterates(s / g.norm(), NS_COEFFICIENTS, 5)[-1]
        .sort(descending=True)
        .values
    )
    measured = singular_values(newton_schulz(g))
    assert (measured - predicted).abs().max() < 0.05


def test_singular_values_refuses_vectors():
    with pytest.raises(ValueError, match="need a matrix"):
        singular_values(torch.ones(3))
