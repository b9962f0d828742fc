"""AdaDelta (Zeiler, 2012), written from scratch with the contract of ``torch.optim.Adadelta``."""

import torch
from torch import Tensor

from companion.core.checks import check
from companion.optim._base import (
    PerTensorOptimizer,
    check_hyperparameters,
    check_lr,
    init_state,
    refuse_implementation_switches,
    scalar,
)


def adadelta_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    r"""One AdaDelta step for one parameter tensor, in place.

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
        v_t &= \rho\, v_{t-1} + (1 - \rho)\, g_t \odot g_t \\
        \Delta\theta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} \odot g_t \\
        u_t &= \rho\, u_{t-1} + (1 - \rho)\, \Delta\theta_t \odot \Delta\theta_t \\
        \theta_t &= \theta_{t-1} - \gamma\, \Delta\theta_t

    with decay ρ (``rho``), ε inside both square roots, weight decay λ and a final scale γ (``lr``;
    Zeiler's method is γ = 1). ``state`` holds the step count under ``step``, the leaky average of
    squared gradients v under ``square_avg`` and that of squared updates u under ``acc_delta``
    (torch's keys), all starting at zero.
    """
    if not state:
        # t = 0, v_0 = u_0 = 0   (created at the first gradient, as in torch)
        init_state(state, param, "square_avg", "acc_delta")
    # t ← t + 1
    state["step"] += 1
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    v, u = state["square_avg"], state["acc_delta"]
    # v_t = ρ v_{t−1} + (1 − ρ) g_t²
    v.mul_(rho).addcmul_(g, g, value=1 - rho)
    # RMS[g]_t = √(v_t + ε)
    rms_g = v.add(eps).sqrt_()
    # RMS[Δθ]_{t−1} = √(u_{t−1} + ε)
    rms_delta = u.add(eps).sqrt_()
    # Δθ_t = RMS[Δθ]_{t−1} / RMS[g]_t ⊙ g_t   (the units of θ, not of g)
    delta = rms_delta.div_(rms_g).mul_(g)
    # u_t = ρ u_{t−1} + (1 − ρ) Δθ_t²
    u.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    # θ_t = θ_{t−1} − γ Δθ_t
    param.add_(delta, alpha=-lr)


def adadelta_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    r"""The update of :func:`adadelta_step` for a list of tensors of one device and dtype, in place: each line
    is one ``torch._foreach_*`` operation over the whole list (torch's ``foreach=True`` path).

    The same equations as :func:`adadelta_step`, in the order torch's multi-tensor path computes them.
    """
    for param, state in zip(params, states):
        if not state:
            # t = 0, v_0 = u_0 = 0
            init_state(state, param, "square_avg", "acc_delta")
    v = [state["square_avg"] for state in states]
    u = [state["acc_delta"] for state in states]
    # t ← t + 1
    torch._foreach_add_([state["step"] for state in states], 1)
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = torch._foreach_neg(grads) if maximize else grads
    if weight_decay != 0:
        # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
        g = torch._foreach_add(g, params, alpha=weight_decay)
    # v_t = ρ v_{t−1} + (1 − ρ) g_t²
    torch._foreach_mul_(v, rho)
    torch._foreach_addcmul_(v, g, g, value=1 - rho)
    # RMS[g]_t = √(v_t + ε)
    rms_g = torch._foreach_add(v, eps)
    torch._foreach_sqrt_(rms_g)
    # RMS[Δθ]_{t−1} = √(u_{t−1} + ε)
    delta = torch._foreach_add(u, eps)
    torch._foreach_sqrt_(delta)
    # Δθ_t = RMS[Δθ]_{t−1} / RMS[g]_t ⊙ g_t
    torch._foreach_div_(delta, rms_g)
    torch._foreach_mul_(delta, g)
    # u_t = ρ u_{t−1} + (1 − ρ) Δθ_t²
    torch._foreach_mul_(u, rho)
    torch._foreach_addcmul_(u, delta, delta, value=1 - rho)
    # θ_t = θ_{t−1} − γ Δθ_t
    torch._foreach_add_(params, delta, alpha=-lr)


class Adadelta(PerTensorOptimizer):
    """AdaDelta, like ``torch.optim.Adadelta``.

    Same arguments, defaults, ValueErrors, parameter-group keys and state keys as torch's class, so
    state_dicts move between the two. The update itself is :func:`adadelta_step`; ``foreach=True`` computes
    it with :func:`adadelta_foreach`. ``capturable`` and ``differentiable`` must stay off.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        check(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        check_hyperparameters(eps=eps, weight_decay=weight_decay)
        refuse_implementation_switches(
            capturable=capturable, differentiable=differentiable
        )
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            capturable=capturable,
            foreach=foreach,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        adadelta_step(
            param,
            grad,
            state,
            lr=scalar(group["lr"]),
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )

    def update_foreach(self, params, grads, states, group):
        adadelta_foreach(
            params,
            grads,
            states,
            lr=scalar(group["lr"]),
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
