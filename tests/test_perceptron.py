"""companion.experiments.perceptron: Rosenblatt's rule converges on separable data within Novikoff's bound,
never learns XOR (and cycles), the threshold network solves XOR, and a linear stack is one affine map."""

import pytest
import torch
from torch import nn

from companion.experiments.perceptron import (
    first_repeated_state,
    least_squares_linear,
    linear_stack_as_matrix,
    novikoff_bound,
    perceptron_fit,
    perceptron_predict,
    separable_data,
    threshold_xor,
    xor_data,
)
from companion.testing.tolerances import assert_close

DTYPE = torch.float64


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("margin", [0.02, 0.1])
def test_converges_on_separable_data_within_novikoffs_bound(seed, margin):
    X, y, w_star, b_star = separable_data(
        200, margin=margin, generator=torch.Generator().manual_seed(seed)
    )
    assert (y * (X @ w_star + b_star) >= margin).all()
    run = perceptron_fit(X, y, epochs=10_000)
    assert run.converged and run.mistakes_per_epoch[-1] == 0
    assert torch.equal(
        perceptron_predict(run.weight, run.bias, X), y
    )  # a comparison: exact
    assert run.accuracy_per_epoch[-1] == 1.0
    assert run.updates <= novikoff_bound(X, y, w_star, b_star)


def test_the_bound_is_tight_for_a_known_margin():
    # two points (±1, 0) with labels ±1, separator x₁ = 0: γ = 1/√1 · 1 = 1 for u = (1, 0, 0), R = √2
    X = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=DTYPE)
    y = torch.tensor([1.0, -1.0], dtype=DTYPE)
    assert novikoff_bound(
        X, y, torch.tensor([1.0, 0.0], dtype=DTYPE), torch.tensor(0.0, dtype=DTYPE)
    ) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="does not separate"):
        novikoff_bound(
            X, y, torch.tensor([-1.0, 0.0], dtype=DTYPE), torch.tensor(0.0, dtype=DTYPE)
        )


@pytest.mark.parametrize("lr", [1.0, 0.1, 3.0])
def test_never_learns_xor_and_cycles(lr):
    X, y = xor_data()
    run = perceptron_fit(X, y, epochs=200, lr=lr)
    assert not run.converged
    assert (
        max(run.accuracy_per_epoch) <= 0.75
    )  # no line gets more than 3 of the 4 points right
    assert (
        first_repeated_state(run.states) is not None
    )  # it comes back to an earlier state: a cycle


def test_xor_trace_by_hand():
    # from w = 0, b = 0 each of the four points is a mistake, and the four updates cancel
    run = perceptron_fit(*xor_data(), epochs=3)
    assert run.mistakes_per_epoch == [4, 4, 4]
    assert torch.equal(run.states[0], torch.zeros(3, dtype=DTYPE))
    assert first_repeated_state(run.states) == (0, 1)


def test_threshold_network_solves_xor_and_linear_fit_cannot():
    X, y = xor_data()
    assert torch.equal(threshold_xor(X), y)
    w, b = least_squares_linear(X, y)
    # the best affine fit is exactly 0: w = 0, b = 0 up to the rounding of a 4-point least-squares solve
    assert_close(
        torch.cat([w, b.reshape(1)]),
        torch.zeros(3, dtype=DTYPE),
        ulps=16,
        scale=1.0,
        what="lstsq on XOR",
    )


@pytest.mark.parametrize("depth", [1, 2, 5, 10])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_stack_is_one_affine_map(depth, bias):
    torch.manual_seed(depth)
    widths = [6, 9, 4, 7, 5, 8, 3, 6, 5, 4, 2][: depth + 1]
    layers = [nn.Linear(a, b, bias=bias).to(DTYPE) for a, b in zip(widths, widths[1:])]
    x = torch.randn(50, widths[0], dtype=DTYPE)
    with torch.no_grad():
        deep = nn.Sequential(*layers)(x)
    W, b = linear_stack_as_matrix(layers)
    assert W.shape == (widths[-1], widths[0])
    # L chained dot products of width ≤ 9 against one product of the collapsed matrix: each order of
    # summation errs by ≲ 9 ε per layer relative to the values' size, so 9·L·4 ε·scale (measured ≤ 3)
    assert_close(x @ W.T + b, deep, ulps=36 * depth, what=f"depth {depth}")


def test_errors():
    X, y = xor_data()
    with pytest.raises(ValueError, match="labels"):
        perceptron_fit(X, (y + 1) / 2)
    with pytest.raises(ValueError, match="lr must be positive"):
        perceptron_fit(X, y, lr=0.0)
    with pytest.raises(ValueError, match="X must be"):
        perceptron_fit(X[0], y)
    with pytest.raises(ValueError, match="need at least one layer"):
        linear_stack_as_matrix([])
    with pytest.raises(ValueError, match="need n >= 1"):
        separable_data(0)
