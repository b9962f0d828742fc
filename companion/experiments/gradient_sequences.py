"""Feed an optimizer a prescribed gradient sequence and record what it does: its steps and its state.

With a parameter of shape (runs,) every coordinate is an independent run, so one call estimates
expectations such as E[v_t] over thousands of random gradient sequences at once.
"""

from typing import Callable

import torch
from torch import Tensor


def run_on_gradients(
    optimizer: Callable[..., torch.optim.Optimizer],
    grads: Tensor | Callable[[int, Tensor], Tensor],
    steps: int | None = None,
    start: Tensor | None = None,
    project: Callable[[Tensor], None] | None = None,
    state_keys: tuple[str, ...] = ("exp_avg", "exp_avg_sq"),
    scheduler: Callable | None = None,
    **options,
) -> dict[str, Tensor]:
    """Run ``optimizer([θ], **options)`` on a gradient sequence and record every step.

    ``grads`` is either a tensor of shape ``(T, *shape)``, the gradient at each step, or a function
    ``grads(t, θ)`` returning the gradient at step t = 1, 2, ... (then ``steps`` is required and
    ``start`` gives θ₀'s shape). θ₀ is ``start`` (default zeros), in float64 unless ``start`` says
    otherwise. ``project(θ)``, if given, edits θ in place after each step (e.g. a clamp onto a feasible
    set); ``scheduler(optimizer)`` builds an lr scheduler that steps after every optimizer step.

    Returns ``"param"`` ``(T + 1, *shape)``, ``"update"`` (``(T, *shape)``, the change θ_t − θ_{t−1} including the
    projection) and, for each of ``state_keys`` found in the state, its value after every step ``(T, *shape)``.
    """
    if callable(grads):
        if steps is None or start is None:
            raise ValueError("a gradient function needs steps= and start=")
        grad_at = grads
    else:
        steps = len(grads) if steps is None else steps
        grad_at = lambda t, theta: grads[t - 1]  # noqa: E731
        if start is None:
            start = torch.zeros(grads.shape[1:], dtype=grads.dtype, device=grads.device)
    theta = (
        start.detach()
        .clone()
        .to(torch.float64 if not start.is_floating_point() else start.dtype)
    )
    theta.requires_grad_(True)
    opt = optimizer([theta], **options)
    sched = scheduler(opt) if scheduler is not None else None
    params, records = [theta.detach().clone()], {key: [] for key in state_keys}
    for t in range(1, steps + 1):
        theta.grad = grad_at(t, theta.detach()).to(theta).clone()
        opt.step()
        if sched is not None:
            sched.step()
        if project is not None:
            with torch.no_grad():
                project(theta)
        params.append(theta.detach().clone())
        for key in state_keys:
            if key in opt.state[theta]:
                records[key].append(opt.state[theta][key].detach().clone())
    out = {"param": torch.stack(params)}
    out["update"] = out["param"][1:] - out["param"][:-1]
    out.update({key: torch.stack(values) for key, values in records.items() if values})
    return out


def bias_factor(beta: float, steps: int) -> Tensor:
    """The factor 1 − βᵗ for t = 1 ... ``steps`` (float64): E[EMA_t] = (1 − βᵗ) E[x] for a zero-started EMA."""
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    return 1 - beta**t
