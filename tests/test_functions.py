"""companion.core.functions: values, minima, and the optimize_2d helper against a hand-written loop."""

import pytest
import torch

from companion.core.functions import beale, optimize_2d, quadratic, rosenbrock, saddle
from companion.optim import SGD
from companion.testing.tolerances import assert_close

FUNCTIONS = [quadratic(), quadratic(10.0), rosenbrock(), beale(), saddle()]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_minimum_is_a_stationary_minimum(fn):
    xy = torch.tensor(fn.minimum, dtype=torch.float64, requires_grad=True)
    value = fn(xy)
    (grad,) = torch.autograd.grad(value, xy)
    assert grad.abs().max() < 1e-9
    # no lower value on a small ring around the minimum
    angles = torch.linspace(0, 6.283, 16, dtype=torch.float64)
    ring = xy.detach() + 1e-3 * torch.stack([angles.cos(), angles.sin()], dim=1)
    assert (fn(ring) >= value.detach() - 1e-12).all()


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_grid_evaluation(fn):
    grid = torch.zeros(5, 7, 2, dtype=torch.float64)
    assert fn(grid).shape == (5, 7)


def test_known_values():
    assert rosenbrock()(torch.tensor([0.0, 0.0])).item() == pytest.approx(1.0)
    assert beale()(torch.tensor([3.0, 0.5])).item() == pytest.approx(0.0)
    assert quadratic(25.0)(torch.tensor([1.0, 1.0])).item() == pytest.approx(13.0)
    assert saddle()(torch.tensor([0.0, 0.0])).item() == 0.0


def test_optimize_2d_matches_a_hand_written_loop():
    fn = quadratic(4.0)
    path, values = optimize_2d(fn, SGD, steps=10, lr=0.1)
    xy = torch.tensor(fn.start, dtype=torch.float64)
    # the same few products per step, in another order: a few ε of the iterate's size
    for t in range(10):
        assert_close(path[t], xy, ulps=8)
        assert_close(values[t], fn(xy), ulps=8)
        xy = (
            xy - 0.1 * torch.tensor([1.0, 4.0], dtype=torch.float64) * xy
        )  # ∇f = (x, κ y)
    assert path.shape == (11, 2) and values.shape == (11,)
    assert_close(path[-1], xy, ulps=8)
