r"""Optimizers raced on a convex problem, counting function evaluations: L2-regularized softmax regression,
full batch and mini-batch, and the noise in a mini-batch secant pair's curvature. Used by chapter 8.4
(``book/after_adam/lbfgs.ipynb``).

The problem is :math:`f(\Theta) = \frac1n \sum_i \ell(\Theta^\top x_i, y_i) + \frac\lambda2 \|\Theta\|^2` with the
cross-entropy ℓ and a column of ones appended to the inputs (the bias, regularized too): smooth and
λ-strongly convex, with one minimizer. The cost of a method is the number of evaluations of f and ∇f
(every call of the closure, line-search trials included) or, with mini-batches, the examples those
evaluations touched, in passes over the data.
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from companion.core.data import Split
from companion.core.device import make_generator
from companion.optim.lbfgs import LBFGS


@dataclass
class SoftmaxRegression:
    """Softmax regression with an L2 penalty on inputs ``X`` (a ones column appended) and labels ``y``."""

    X: Tensor
    y: Tensor
    weight_decay: float
    classes: int

    def loss(self, theta: Tensor, idx: Tensor | None = None) -> Tensor:
        """f on all examples, or on the mini-batch ``idx``: mean cross-entropy + (λ/2)‖Θ‖²."""
        X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        return (
            F.cross_entropy(X @ theta, y)
            + 0.5 * self.weight_decay * (theta * theta).sum()
        )

    def start(self) -> Tensor:
        """Θ₀ = 0, a leaf that requires a gradient."""
        return torch.zeros(
            self.X.shape[1],
            self.classes,
            dtype=self.X.dtype,
            device=self.X.device,
            requires_grad=True,
        )

    def smoothness(self) -> float:
        r"""An upper bound L on ∇²f: :math:`\lambda_{\max}(X^\top X / n)/2 + \lambda` (the softmax's Hessian
        :math:`\mathrm{diag}(p) - pp^\top` has eigenvalues at most 1/2)."""
        return (
            torch.linalg.eigvalsh(self.X.T @ self.X / len(self.X)).max().item() / 2
            + self.weight_decay
        )


def softmax_regression(
    split: Split, weight_decay: float = 1e-3, dtype=torch.float64
) -> SoftmaxRegression:
    """The problem on a data split, in float64 so that f − f* is measured far below 1e-8."""
    X = split.X.to(dtype)
    X = torch.cat([X, torch.ones(len(X), 1, dtype=dtype, device=X.device)], dim=1)
    return SoftmaxRegression(X, split.y, weight_decay, int(split.y.max()) + 1)


def full_batch_curve(
    problem: SoftmaxRegression, make_optimizer: Callable, evaluations: int
) -> Tensor:
    """f at every one of the first ``evaluations`` evaluations of f and ∇f (the closure's calls, line-search
    trials included), starting from Θ₀ = 0. ``make_optimizer([Θ])`` builds the optimizer; L-BFGS's
    ``step`` runs several evaluations, any other optimizer's one."""
    theta = problem.start()
    optimizer = make_optimizer([theta])
    values = []

    def closure():
        optimizer.zero_grad()
        loss = problem.loss(theta)
        loss.backward()
        values.append(loss.item())
        return loss

    while len(values) < evaluations:
        optimizer.step(closure)
    return torch.tensor(values[:evaluations], dtype=torch.float64)


def lbfgs_full_batch(params, evaluations: int = 300) -> LBFGS:
    """L-BFGS with the strong-Wolfe line search for at most about ``evaluations`` evaluations per ``step``, its
    tolerances low enough to run down to the last digits of f*."""
    return LBFGS(
        params,
        max_iter=evaluations,
        max_eval=evaluations,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )


def minimum(problem: SoftmaxRegression, evaluations: int = 300) -> tuple[float, float]:
    """(f*, ‖∇f‖_∞ there): the lowest f that L-BFGS finds in ``evaluations`` evaluations, and the size of its
    gradient there."""
    theta = problem.start()
    optimizer = lbfgs_full_batch([theta], evaluations)
    best = [float("inf"), None]

    def closure():
        optimizer.zero_grad()
        loss = problem.loss(theta)
        loss.backward()
        if loss.item() < best[0]:
            best[:] = loss.item(), theta.grad.abs().max().item()
        return loss

    optimizer.step(closure)
    return best[0], best[1]


def minibatch_run(
    problem: SoftmaxRegression,
    make_optimizer: Callable,
    passes: float,
    batch_size: int,
    seed: int,
) -> tuple[Tensor, Tensor]:
    """Mini-batch training from Θ₀ = 0 until the closure's evaluations have touched ``passes`` × n examples
    (reshuffled every epoch by ``make_generator(seed)``). Returns (passes done, full-batch f) after each step."""
    n = len(problem.X)
    generator = make_generator(seed)
    theta = problem.start()
    optimizer = make_optimizer([theta])
    seen, cost, values = 0, [], []
    while seen < passes * n:
        order = torch.randperm(n, generator=generator).to(problem.X.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]

            def closure(idx=idx):
                nonlocal seen
                optimizer.zero_grad()
                loss = problem.loss(theta, idx)
                loss.backward()
                seen += len(idx)
                return loss

            optimizer.step(closure)
            with torch.no_grad():
                cost.append(seen / n)
                values.append(problem.loss(theta).item())
            if seen >= passes * n:
                break
    return torch.tensor(cost), torch.tensor(values, dtype=torch.float64)


def secant_curvature(
    problem: SoftmaxRegression,
    theta: Tensor,
    step: Tensor,
    batch_size: int,
    seed: int,
    draws: int = 50,
) -> tuple[Tensor, Tensor]:
    r"""The curvature along ``step`` that a mini-batch secant pair reports, as a multiple of the true one:
    :math:`\hat y^\top s / y^\top s` with :math:`y = \nabla f(\Theta + s) - \nabla f(\Theta)`, over ``draws`` draws of
    mini-batches. Returns (ratios when ŷ comes from two different batches, as L-BFGS forms it when each step
    draws a new batch; ratios when one batch gives both gradients)."""
    n = len(problem.X)
    generator = make_generator(seed)

    def grad(point, idx=None):
        point = point.detach().requires_grad_()
        return torch.autograd.grad(problem.loss(point, idx), point)[0]

    curvature = ((grad(theta + step) - grad(theta)) * step).sum()
    different, same = [], []
    for _ in range(draws):
        a, b = (
            torch.randperm(n, generator=generator)[:batch_size].to(problem.X.device)
            for _ in range(2)
        )
        different.append(
            ((grad(theta + step, b) - grad(theta, a)) * step).sum() / curvature
        )
        same.append(((grad(theta + step, a) - grad(theta, a)) * step).sum() / curvature)
    return torch.stack(different), torch.stack(same)
