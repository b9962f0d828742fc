"""Nesterov's accelerated gradient in the papers' forms, and a convex quadratic on which rates show.

``companion.optim.SGD(nesterov=True)`` is torch's form of NAG. The functions here write the same
method the way Nesterov (1983) and Sutskever et al. (2013) do, as plain loops over a gradient
function, so that a notebook can check that the forms agree and measure how fast each one converges.
"""

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from companion.core import stats
from companion.experiments.gradient_sequences import run_on_gradients

Gradient = Callable[[Tensor], Tensor]
"""A gradient oracle: a point x ↦ ∇f(x) (exact, or with noise added)."""


def nesterov_lookahead(
    grad: Gradient, theta: Tensor, lr: float, momentum: float, steps: int
) -> tuple[Tensor, Tensor]:
    r"""NAG in Sutskever et al.'s look-ahead form: the gradient is taken where momentum is about to go.

    .. math::
        v_t &= \mu\, v_{t-1} - \varepsilon\, \nabla f(\theta_{t-1} + \mu\, v_{t-1}) \qquad (v_0 = 0) \\
        \theta_t &= \theta_{t-1} + v_t

    with learning rate ε (``lr``) and momentum μ. Returns the iterates θ_0 … θ_T and the velocities
    v_0 … v_T, each stacked along a new first dimension (T = ``steps``).
    """
    theta = theta.detach().clone()
    # v_0 = 0
    v = torch.zeros_like(theta)
    thetas, velocities = [theta], [v]
    for _ in range(steps):
        # v_t = μ v_{t−1} − ε ∇f(θ_{t−1} + μ v_{t−1})
        v = momentum * v - lr * grad(theta + momentum * v)
        # θ_t = θ_{t−1} + v_t
        theta = theta + v
        thetas.append(theta)
        velocities.append(v)
    return torch.stack(thetas), torch.stack(velocities)


def nesterov_1983(
    grad: Gradient, x: Tensor, lr: float, steps: int, momentum: float | None = None
) -> Tensor:
    r"""Nesterov's (1983) accelerated gradient method, with momentum (k − 1)/(k + 2) or a constant μ.

    .. math::
        x_k &= y_{k-1} - s\, \nabla f(y_{k-1}) \qquad (y_0 = x_0) \\
        y_k &= x_k + \beta_k\, (x_k - x_{k-1}), \qquad \beta_k = \frac{k-1}{k+2}
        \ \text{or}\ \beta_k = \mu

    with step size s (``lr``, at most 1/L for an L-smooth f). For convex f the schedule gives
    f(x_k) − f* ≤ 2‖x_0 − x*‖² / (s (k + 1)²). Returns x_0 … x_T stacked (T = ``steps``).
    """
    x = x.detach().clone()
    # y_0 = x_0
    y = x
    xs = [x]
    for k in range(1, steps + 1):
        # x_k = y_{k−1} − s ∇f(y_{k−1})
        x_new = y - lr * grad(y)
        # β_k = (k − 1)/(k + 2), or the constant μ
        beta = (k - 1) / (k + 2) if momentum is None else momentum
        # y_k = x_k + β_k (x_k − x_{k−1})
        y = x_new + beta * (x_new - x)
        x = x_new
        xs.append(x)
    return torch.stack(xs)


def run_optimizer(
    optimizer: Callable[..., torch.optim.Optimizer],
    grad: Gradient,
    x: Tensor,
    steps: int,
    **hyperparameters,
) -> Tensor:
    """Run a torch-style optimizer class on a gradient oracle; returns the iterates x_0 … x_T stacked.

    ``optimizer([x], **hyperparameters)`` is built on a copy of ``x``; each step sets its gradient
    to ``grad(x)``. Works with ours (``companion.optim``) and torch's classes alike.
    """
    # the course's one gradient-sequence driver, with the gradient read off the current iterate
    run = run_on_gradients(
        optimizer,
        lambda t, theta: grad(theta),
        steps=steps,
        start=x,
        state_keys=(),
        **hyperparameters,
    )
    return run["param"]


@dataclass(frozen=True)
class DiagonalQuadratic:
    r"""f(x) = ½ Σᵢ λᵢ xᵢ² with all λᵢ ≥ 0: convex, L-smooth with L = max λᵢ, minimum f* = 0 at x* = 0.

    A diagonal matrix loses no generality for gradient methods: they are invariant under rotations,
    so any quadratic behaves like the diagonal one with its eigenvalues.
    """

    eigenvalues: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        """f at x; a stack of points (…, d) gives a value per point."""
        return 0.5 * (self.eigenvalues * x * x).sum(dim=-1)

    def grad(self, x: Tensor) -> Tensor:
        """∇f(x) = Λ x."""
        return self.eigenvalues * x

    @property
    def smoothness(self) -> float:
        """L, the largest eigenvalue: the gradient is L-Lipschitz."""
        return self.eigenvalues.max().item()


def spread_quadratic(
    dim: int = 200,
    largest: float = 1.0,
    smallest: float = 1e-8,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> DiagonalQuadratic:
    """A quadratic whose eigenvalues are log-spaced from ``largest`` down to ``smallest``.

    Every decade of curvature holds the same number of eigenvalues. Started from x_0 = (1, …, 1),
    gradient descent with step s then has f(x_k) ≈ dim / (4 s k ln(largest / smallest)): its
    worst-case 1/k rate, for about 1/(s · smallest) steps, before the smallest eigenvalue makes the
    problem strongly convex and convergence turns linear.
    """
    if not 0 < smallest <= largest:
        raise ValueError(
            f"need 0 < smallest <= largest, got smallest={smallest}, largest={largest}"
        )
    exponents = torch.linspace(0.0, 1.0, dim, dtype=torch.float64)
    eigenvalues = largest * (smallest / largest) ** exponents
    return DiagonalQuadratic(eigenvalues.to(device=device or "cpu", dtype=dtype))


def with_noise(grad: Gradient, std: float, generator: torch.Generator) -> Gradient:
    """The oracle ``grad`` plus independent Gaussian noise of standard deviation ``std`` per coordinate.

    ``generator`` is a CPU generator; the noise is drawn on the CPU and moved to the point's device.
    """

    def noisy(x: Tensor) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return grad(x) + std * noise.to(x.device)

    return noisy


def loglog_slope(values: Tensor, k_min: int, k_max: int) -> float:
    """The least-squares slope of log ``values[k]`` against log k for k_min ≤ k ≤ k_max.

    A sequence that decays like C / k^p has slope −p.
    """
    if not 1 <= k_min < k_max < len(values):
        raise ValueError(
            f"need 1 <= k_min < k_max < {len(values)}, got k_min={k_min}, k_max={k_max}"
        )
    k = torch.arange(k_min, k_max + 1, dtype=torch.float64)
    return stats.loglog_slope(
        k, values[k_min : k_max + 1].detach().to(torch.float64).cpu()
    )
