"""Two-dimensional test functions for watching optimizers move, and a helper that runs one on them.

Each function takes a tensor whose last dimension holds (x, y) and returns f(x, y), so the same
object evaluates one point (for autograd) or a whole grid (for contour plots).
"""

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class Function2D:
    """A 2-D function with its minimizer, a sensible start and a plotting window."""

    name: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    minimum: tuple[float, float]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    log_levels: bool = field(default=False)

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        return self.f(xy[..., 0], xy[..., 1])


def quadratic(kappa: float = 25.0) -> Function2D:
    """The ill-conditioned quadratic f = ½(x² + κ y²): curvature 1 along x and κ along y."""
    return Function2D(
        f"quadratic (κ = {kappa:g})",
        lambda x, y: 0.5 * (x**2 + kappa * y**2),
        minimum=(0.0, 0.0),
        start=(-4.0, 1.0),
        xlim=(-4.5, 4.5),
        ylim=(-1.5, 1.5),
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Function2D:
    """Rosenbrock's banana f = (a − x)² + b (y − x²)²: a curved, flat-bottomed valley; minimum at (a, a²)."""
    return Function2D(
        "Rosenbrock",
        lambda x, y: (a - x) ** 2 + b * (y - x**2) ** 2,
        minimum=(a, a * a),
        start=(-1.5, 2.0),
        xlim=(-2.0, 2.0),
        ylim=(-1.0, 3.0),
        log_levels=True,
    )


def beale() -> Function2D:
    """Beale's function: flat plateaus and sharp ridges; minimum 0 at (3, 0.5)."""
    return Function2D(
        "Beale",
        lambda x, y: (
            (1.5 - x + x * y) ** 2
            + (2.25 - x + x * y**2) ** 2
            + (2.625 - x + x * y**3) ** 2
        ),
        minimum=(3.0, 0.5),
        start=(1.0, 1.5),
        xlim=(-1.0, 4.5),
        ylim=(-1.5, 2.0),
        log_levels=True,
    )


def saddle() -> Function2D:
    """f = x² − y² + y⁴/4: a saddle point at the origin between two minima at (0, ±√2).

    Started almost on the ridge (y ≈ 0), an optimizer must escape the saddle along y.
    """
    return Function2D(
        "saddle",
        lambda x, y: x**2 - y**2 + 0.25 * y**4,
        minimum=(0.0, 2**0.5),
        start=(-2.0, 1e-3),
        xlim=(-2.5, 2.5),
        ylim=(-2.0, 2.0),
    )


def optimize_2d(
    fn: Function2D,
    optimizer: Callable[..., torch.optim.Optimizer],
    steps: int = 100,
    start: tuple[float, float] | None = None,
    **hyperparameters,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``optimizer(params, **hyperparameters)`` on ``fn`` for ``steps`` steps, in float64 on the CPU.

    Returns the trajectory, shape (steps + 1, 2), and the function values along it, shape (steps + 1,).
    ``optimizer`` is any class with torch's optimizer interface: ours or torch's.
    """
    xy = torch.tensor(start or fn.start, dtype=torch.float64, requires_grad=True)
    opt = optimizer([xy], **hyperparameters)
    points, values = [xy.detach().clone()], []
    for _ in range(steps):
        opt.zero_grad()
        loss = fn(xy)
        loss.backward()
        values.append(loss.detach().clone())
        opt.step()
        points.append(xy.detach().clone())
    with torch.no_grad():
        values.append(fn(xy).clone())
    return torch.stack(points), torch.stack(values)
