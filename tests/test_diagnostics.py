"""companion.core.diagnostics: per-layer signal statistics, dead units and unit spread, checked against
quantities computed by hand on small float64 networks."""

import pytest
import torch
from torch import nn

from companion import init
from companion.core.diagnostics import (
    dead_fraction,
    init_linear_,
    linear_layers,
    signal_statistics,
    unit_spread,
)

TOL = 1e-12  # float64, the same computation done by hand


def _net(depth=3, width=6, activation=nn.Tanh, seed=0):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    layers.append(nn.Linear(width, 2))
    return nn.Sequential(*layers).double()


def test_linear_layers_and_init_linear():
    """All linear layers in order; init_linear_ applies the weight and bias initializers to each (exactly)."""
    net = _net()
    assert len(linear_layers(net)) == 4
    init_linear_(
        net, lambda w: init.constant_(w, 0.5), lambda b: init.constant_(b, -1.0)
    )
    for layer in linear_layers(net):
        assert torch.all(layer.weight == 0.5) and torch.all(layer.bias == -1.0)
    init_linear_(net, init.zeros_)  # biases default to zero
    assert all(torch.all(layer.bias == 0) for layer in linear_layers(net))


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU, nn.Sigmoid])
@pytest.mark.parametrize("use_loss", [False, True])
def test_signal_statistics_by_hand(activation, use_loss):
    """Variances of each hidden activation, of the gradient reaching it, and weight-gradient norms
    equal a hand-written forward pass with retain_grad (within 1e-12)."""
    net = _net(activation=activation)
    x = torch.randn(
        10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    target = torch.randn(10, 2, dtype=torch.float64)
    loss = (lambda out: ((out - target) ** 2).mean()) if use_loss else None
    stats = signal_statistics(
        net, x, loss=loss, generator=torch.Generator().manual_seed(2)
    )

    hidden, h = [], x
    for module in net:
        h = module(h)
        if not isinstance(module, nn.Linear):
            h.retain_grad()
            hidden.append(h)
    if use_loss:
        objective = loss(h)
    else:
        r = torch.randn(
            h.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
        )
        objective = (h * r).sum()
    net.zero_grad()
    objective.backward()
    assert (
        len(stats.activation_var) == len(stats.gradient_var) == 3
        and len(stats.weight_grad_norm) == 4
    )
    for ours, t in zip(stats.activation_var, hidden):
        assert abs(ours - t.var().item()) < TOL
    for ours, t in zip(stats.gradient_var, hidden):
        assert abs(ours - t.grad.var().item()) < TOL
    for ours, layer in zip(stats.weight_grad_norm, linear_layers(net)):
        assert abs(ours - layer.weight.grad.norm().item()) < TOL


def test_signal_statistics_leaves_grads_alone():
    net = _net()
    signal_statistics(net, torch.randn(4, 6, dtype=torch.float64))
    assert all(p.grad is None for p in net.parameters())
    assert all(not m._forward_hooks for m in net.modules())


def test_dead_fraction():
    """Units whose pre-activation is ≤ 0 for every example count as dead (exact fractions)."""
    net = nn.Sequential(
        nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1)
    ).double()
    with torch.no_grad():
        net[0].weight.copy_(
            torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
        )
        net[0].bias.copy_(torch.tensor([0.0, 0.0, -1.0, -10.0]))
        net[2].weight.fill_(1.0)
        net[2].bias.copy_(torch.tensor([0.0, -100.0]))
    X = torch.tensor([[1.0, 2.0], [-1.0, 3.0], [2.0, 0.5]], dtype=torch.float64)
    # layer 1: unit 0 fires (x₁ > 0 somewhere), unit 1 fires (x₁ < 0 somewhere), unit 2 never (−1),
    # unit 3 never (x₂ − 10 < 0); layer 2: unit 0 fires, unit 1 never (−100)
    assert dead_fraction(net, X) == [0.5, 0.5]
    assert net.training and all(not m._forward_hooks for m in net.modules())


def test_unit_spread():
    assert unit_spread(torch.full((5, 3), 0.7)) == 0.0
    w = torch.tensor([[1.0, 2.0], [1.0, 2.5], [0.0, 2.0]])
    assert abs(unit_spread(w) - 1.0) < TOL
