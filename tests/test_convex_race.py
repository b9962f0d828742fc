"""companion.experiments.convex_race: the problem, the evaluation counting, and the secant curvature."""

import pytest
import torch

from companion.core.data import make_classification
from companion.experiments.convex_race import (
    full_batch_curve,
    lbfgs_full_batch,
    minibatch_run,
    minimum,
    secant_curvature,
    softmax_regression,
)
from companion.optim.sgd import SGD


@pytest.fixture
def problem():
    return softmax_regression(
        make_classification(n=120, d=3, classes=3, seed=0), weight_decay=1e-2
    )


def test_smoothness_bounds_the_hessian(problem):
    theta = problem.start().detach() + 0.3
    H = torch.autograd.functional.hessian(problem.loss, theta).reshape(
        theta.numel(), theta.numel()
    )
    eigenvalues = torch.linalg.eigvalsh(H)
    assert (
        eigenvalues.max() <= problem.smoothness()
        and eigenvalues.min() >= problem.weight_decay * (1 - 1e-9)
    )


def test_minimum_is_stationary_and_below_every_run(problem):
    f_star, grad_max = minimum(problem)
    assert grad_max < 1e-6  # f − f* ≤ ‖∇f‖²·dim/(2λ) < 1e-9
    gd = full_batch_curve(problem, lambda p: SGD(p, lr=1 / problem.smoothness()), 50)
    assert gd.min() > f_star


def test_full_batch_curve_counts_every_evaluation(problem):
    """L-BFGS's line-search trials are evaluations too: the curve has one value per closure call."""
    calls = []
    curve = full_batch_curve(problem, lambda p: lbfgs_full_batch(p, 7), 30)
    assert curve.shape == (30,) and curve[0].item() == pytest.approx(
        torch.log(torch.tensor(3.0)).item()
    )
    theta = problem.start()
    opt = lbfgs_full_batch([theta], 7)
    opt.step(
        lambda: (
            calls.append(1),
            opt.zero_grad(),
            problem.loss(theta).backward(),
            problem.loss(theta),
        )[-1]
    )
    assert opt.state[theta]["func_evals"] == len(calls)
    assert torch.equal(
        curve[: len(calls)],
        full_batch_curve(problem, lambda p: lbfgs_full_batch(p, 7), len(calls)),
    )


def test_minibatch_run_stops_at_its_budget_and_repeats_with_its_seed(problem):
    cost, values = minibatch_run(
        problem, lambda p: SGD(p, lr=0.5), passes=3, batch_size=16, seed=1
    )
    assert (
        3 <= cost[-1] < 3 + 16 / 120
        and bool((cost.diff() > 0).all())
        and len(values) == len(cost)
    )
    again = minibatch_run(
        problem, lambda p: SGD(p, lr=0.5), passes=3, batch_size=16, seed=1
    )[1]
    assert torch.equal(values, again)


def test_secant_curvature_is_exact_with_the_full_batch(problem):
    theta = problem.start().detach()
    step = torch.full_like(theta, 0.1)
    different, same = secant_curvature(
        problem, theta, step, batch_size=120, seed=0, draws=3
    )
    torch.testing.assert_close(different, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(same, torch.ones(3, dtype=torch.float64))
    different, same = secant_curvature(
        problem, theta, step, batch_size=8, seed=0, draws=20
    )
    assert bool((same > 0).all())  # one batch: the curvature of a convex f, positive
    assert (different - 1).abs().mean() > (same - 1).abs().mean()
