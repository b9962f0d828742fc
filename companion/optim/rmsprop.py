"""RMSprop (Tieleman & Hinton, 2012), written from scratch with the contract of ``torch.optim.RMSprop``."""

import torch
from torch import Tensor

from companion.optim._base import (
    PerTensorOptimizer,
    check_hyperparameters,
    check_lr,
    init_state,
    refuse_implementation_switches,
    scalar,
)


def init_rmsprop_state(
    state: dict, param: Tensor, *, momentum: float, centered: bool
) -> None:
    """RMSprop's state as torch creates it at a tensor's first gradient (left alone if it exists)."""
    if not state:
        # t = 0, v_0 = 0 (and ḡ_0 = 0, b_0 = 0 where used)
        init_state(
            state,
            param,
            "square_avg",
            *(["momentum_buffer"] if momentum > 0 else []),
            *(["grad_avg"] if centered else []),
        )


def rmsprop_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    r"""One RMSprop step for one parameter tensor, in place.

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
        v_t &= \alpha\, v_{t-1} + (1 - \alpha)\, g_t \odot g_t \\
        \bar g_t &= \alpha\, \bar g_{t-1} + (1 - \alpha)\, g_t \qquad \text{(centered only)} \\
        s_t &= \sqrt{v_t} + \epsilon \quad\text{or}\quad s_t = \sqrt{v_t - \bar g_t \odot \bar g_t} + \epsilon \ \text{(centered)} \\
        b_t &= \mu\, b_{t-1} + g_t / s_t \qquad (b_0 = 0) \\
        \theta_t &= \theta_{t-1} - \gamma\, b_t \ \ (\mu > 0) \quad\text{or}\quad \theta_t = \theta_{t-1} - \gamma\, g_t / s_t

    with learning rate γ (``lr``), smoothing constant α (``alpha``), ε added *outside* the square
    root, weight decay λ and momentum μ. ``state`` holds the step count under ``step``, v under
    ``square_avg``, ḡ under ``grad_avg`` (centered only) and b under ``momentum_buffer`` (μ > 0
    only): torch's keys, all starting at zero.
    """
    init_rmsprop_state(state, param, momentum=momentum, centered=centered)
    # t ← t + 1
    state["step"] += 1
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    v = state["square_avg"]
    # v_t = α v_{t−1} + (1 − α) g_t²   (a leaky average of squared gradients)
    v.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    if centered:
        g_bar = state["grad_avg"]
        # ḡ_t = α ḡ_{t−1} + (1 − α) g_t   (a leaky average of the gradients themselves)
        g_bar.lerp_(g, 1 - alpha)
        # s_t = √(v_t − ḡ_t²)   (a running standard deviation instead of a root mean square)
        s = v.addcmul(g_bar, g_bar, value=-1).sqrt_()
    else:
        # s_t = √v_t
        s = v.sqrt()
    # s_t ← s_t + ε   (outside the square root)
    s = s.add_(eps)
    if momentum > 0:
        b = state["momentum_buffer"]
        # b_t = μ b_{t−1} + g_t / s_t
        b.mul_(momentum).addcdiv_(g, s)
        # θ_t = θ_{t−1} − γ b_t
        param.add_(b, alpha=-lr)
    else:
        # θ_t = θ_{t−1} − γ g_t / s_t
        param.addcdiv_(g, s, value=-lr)


def rmsprop_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    r"""The update of :func:`rmsprop_step` for a list of tensors of one device and dtype, in place: each line
    is one ``torch._foreach_*`` operation over the whole list (torch's ``foreach=True`` path).

    The same equations as :func:`rmsprop_step`, in the order torch's multi-tensor path computes them.
    """
    for param, state in zip(params, states):
        init_rmsprop_state(state, param, momentum=momentum, centered=centered)
    v = [state["square_avg"] for state in states]
    steps = [state["step"] for state in states]
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = torch._foreach_neg(grads) if maximize else grads
    # t ← t + 1
    torch._foreach_add_(steps, 1)
    if weight_decay != 0:
        # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
        g = torch._foreach_add(g, params, alpha=weight_decay)
    # v_t = α v_{t−1} + (1 − α) g_t²
    torch._foreach_mul_(v, alpha)
    torch._foreach_addcmul_(v, g, g, value=1 - alpha)
    if centered:
        g_bar = [state["grad_avg"] for state in states]
        # ḡ_t = α ḡ_{t−1} + (1 − α) g_t
        torch._foreach_lerp_(g_bar, g, 1 - alpha)
        # s_t = √(v_t − ḡ_t²)
        s = torch._foreach_addcmul(v, g_bar, g_bar, value=-1)
        torch._foreach_sqrt_(s)
    else:
        # s_t = √v_t
        s = torch._foreach_sqrt(v)
    # s_t ← s_t + ε   (outside the square root)
    torch._foreach_add_(s, eps)
    if momentum > 0:
        b = [state["momentum_buffer"] for state in states]
        # b_t = μ b_{t−1} + g_t / s_t
        torch._foreach_mul_(b, momentum)
        torch._foreach_addcdiv_(b, g, s)
        # θ_t = θ_{t−1} − γ b_t
        torch._foreach_add_(params, b, alpha=-lr)
    else:
        # θ_t = θ_{t−1} − γ g_t / s_t
        torch._foreach_addcdiv_(params, g, s, value=-lr)


class RMSprop(PerTensorOptimizer):
    """RMSprop, optionally centered and with momentum, like ``torch.optim.RMSprop``.

    Same arguments, defaults, ValueErrors, parameter-group keys and state keys as torch's class, so
    state_dicts move between the two. The update itself is :func:`rmsprop_step`; ``foreach=True`` computes
    it with :func:`rmsprop_foreach`. ``capturable`` and ``differentiable`` must stay off.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        check_hyperparameters(
            eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha
        )
        refuse_implementation_switches(
            capturable=capturable, differentiable=differentiable
        )
        defaults = dict(
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        rmsprop_step(
            param,
            grad,
            state,
            lr=scalar(group["lr"]),
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
        )

    def update_foreach(self, params, grads, states, group):
        rmsprop_foreach(
            params,
            grads,
            states,
            lr=scalar(group["lr"]),
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
        )
