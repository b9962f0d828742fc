"""Averaged SGD (Polyak & Juditsky, 1992): SGD with a slowly decaying step that also keeps the running average of its
iterates, written from scratch with the contract of ``torch.optim.ASGD``."""

import torch
from torch import Tensor

from companion.optim._base import (
    PerTensorOptimizer,
    check_hyperparameters,
    check_lr,
    refuse_implementation_switches,
    step_counter,
)


def decaying_step(t, *, lr: float | Tensor, lambd: float, alpha: float):
    r"""The step size after t steps, :math:`\eta_t = \gamma / (1 + \lambda \gamma t)^\alpha`: γ at t = 0, then falling
    as :math:`t^{-\alpha}` (α ∈ (1/2, 1) is the regime of Polyak–Juditsky averaging). In γ's dtype when γ is a tensor."""
    # η_t = γ / (1 + λ γ t)^α
    return lr / ((1 + lambd * lr * t) ** alpha)


def averaging_weight(t, t0: float) -> float:
    r"""The weight of the newest iterate in the average, :math:`\mu_t = 1 / \max(1, t - t_0)`: 1 (the average is the
    iterate itself) until t₀ + 1 steps are taken, then 1/2, 1/3, ... so that the average becomes the mean."""
    # μ_t = 1 / max(1, t − t₀)
    return 1 / max(1, t - t0)


def asgd_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    lambd: float,
    alpha: float,
    t0: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    r"""One ASGD step for one parameter tensor, in place (torch's form of Polyak–Juditsky averaging).

    .. math::
        t &\leftarrow t + 1 \\
        g_t &= \pm\nabla f(\theta_{t-1}) + \delta\,\theta_{t-1} \\
        \theta_t &= (1 - \lambda\,\eta_{t-1})\,\theta_{t-1} - \eta_{t-1}\, g_t \\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_{t-1}\,(\theta_t - \bar\theta_{t-1}) \\
        \eta_t &= \gamma \,/\, (1 + \lambda\gamma t)^{\alpha} \\
        \mu_t &= 1 \,/\, \max(1, t - t_0)

    with learning rate γ (``lr``), decay term λ (``lambd``), power α (``alpha``), averaging start t₀ (``t0``) and
    weight decay δ, from η₀ = γ and μ₀ = 1. While μ = 1 the average is the iterate itself; from then on
    μ = 1/2, 1/3, ..., so for an integer t₀ the average :math:`\bar\theta_t` is the arithmetic mean of
    :math:`\theta_{t_0+2}, \dots, \theta_t`. The model is trained with θ; :math:`\bar\theta` is the averaged
    estimate to evaluate.

    ``state`` holds torch's keys: ``step`` (t), ``eta`` (η) and ``mu`` (μ), scalar tensors in torch's step dtype
    (float32 unless the default dtype is float64; η and μ are rounded to it, and torch steps with the rounded
    values), and ``ax`` (:math:`\bar\theta`), shaped like the parameter. A complex parameter is updated as the
    pair of its real and imaginary parts, as torch does.
    """
    # a 1-element tensor lr is used as torch uses it, a 0-dim tensor (η_t then rounds in its dtype)
    lr = lr.squeeze() if isinstance(lr, Tensor) else lr
    if not state:
        # t = 0, η_0 = γ, μ_0 = 1: scalars on the parameter's device, in torch's step dtype
        step = step_counter().to(param.device)
        state["step"], state["eta"], state["mu"] = (
            step,
            torch.as_tensor(lr).to(step).clone(),
            torch.ones_like(step),
        )
        # θ̄_0 = 0
        state["ax"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    eta, mu, ax = state["eta"], state["mu"], state["ax"]
    if torch.is_complex(param):
        # a complex number as the pair (real, imaginary)
        param, grad, ax = (
            torch.view_as_real(param),
            torch.view_as_real(grad),
            torch.view_as_real(ax),
        )
    # t ← t + 1
    state["step"] += 1
    t = state["step"].item()
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + δ θ_{t−1}   (weight decay as an L2 penalty's gradient)
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    # η_{t−1}, as the stored (rounded) scalar
    eta_prev = eta.item()
    # θ ← (1 − λ η_{t−1}) θ_{t−1}   (the shrink)
    param.mul_(1 - lambd * eta_prev)
    # θ_t = θ − η_{t−1} g_t
    param.add_(g, alpha=-eta_prev)
    if mu.item() != 1:
        # θ̄_t = θ̄_{t−1} + μ_{t−1} (θ_t − θ̄_{t−1})   (the running mean: μ = 1/2, 1/3, ...)
        ax.add_((param - ax).mul_(mu))
    else:
        # θ̄_t = θ_t   (μ = 1: averaging has not started)
        ax.copy_(param)
    # η_t = γ / (1 + λ γ t)^α, for the next step
    eta.copy_(torch.as_tensor(decaying_step(t, lr=lr, lambd=lambd, alpha=alpha)))
    # μ_t = 1 / max(1, t − t₀), for the next step
    mu.copy_(torch.as_tensor(averaging_weight(t, t0)))


class ASGD(PerTensorOptimizer):
    """Averaged stochastic gradient descent, like ``torch.optim.ASGD``: the same arguments, defaults, ValueErrors,
    parameter-group keys and state keys (``step``, ``eta``, ``mu``, ``ax``), so state_dicts move between the two.

    The parameters follow the SGD iterates; the Polyak–Juditsky average is ``optimizer.state[p]["ax"]``.
    ``foreach``, ``differentiable`` and ``capturable`` are pure implementation switches and must stay off.
    The update itself is :func:`asgd_step`.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        check_lr(lr)
        check_hyperparameters(weight_decay=weight_decay)
        refuse_implementation_switches(
            foreach=foreach, differentiable=differentiable, capturable=capturable
        )
        defaults = dict(
            lr=lr,
            lambd=lambd,
            alpha=alpha,
            t0=t0,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        asgd_step(
            param,
            grad,
            state,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            lambd=group["lambd"],
            alpha=group["alpha"],
            t0=group["t0"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
