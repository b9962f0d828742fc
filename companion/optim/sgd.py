"""Stochastic gradient descent with momentum, written from scratch with the contract of ``torch.optim.SGD``."""

import torch
from torch import Tensor

from companion.core.checks import check
from companion.optim import fused
from companion.optim._base import (
    PerTensorOptimizer,
    check_fast_paths,
    check_hyperparameters,
    check_lr,
    refuse_implementation_switches,
    scalar,
)


def sgd_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    r"""One SGD step for one parameter tensor, in place (torch's form of the heavy-ball method).

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
        b_t &= \mu\, b_{t-1} + (1 - \tau)\, g_t \qquad (b_1 = g_1) \\
        d_t &= g_t + \mu\, b_t \ \text{(Nesterov)} \quad\text{or}\quad d_t = b_t \\
        \theta_t &= \theta_{t-1} - \gamma\, d_t

    with learning rate γ (``lr``), momentum μ, dampening τ and weight decay λ. ``state`` holds the
    buffer b under torch's key ``momentum_buffer``; it is only used when μ ≠ 0.
    """
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    if momentum != 0:
        # b_t = μ b_{t−1} + (1 − τ) g_t, and b_1 = g_1 (the first step takes the gradient itself, undamped)
        b = first_or_next_buffer(state, g, momentum, dampening)
        # d_t = g_t + μ b_t (Nesterov) or d_t = b_t (heavy ball)
        g = g.add(b, alpha=momentum) if nesterov else b
    # θ_t = θ_{t−1} − γ d_t
    param.add_(g, alpha=-lr)


def sgd_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    r"""The update of :func:`sgd_step` for a list of tensors of one device and dtype, in place: each line
    is one ``torch._foreach_*`` operation over the whole list (torch's ``foreach=True`` path).

    The same equations as :func:`sgd_step`, in the order torch's multi-tensor path computes them. Unlike
    torch's, it leaves the callers' gradients untouched (torch adds Nesterov's μ b_t into them in place).
    """
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = torch._foreach_neg(grads) if maximize else grads
    if weight_decay != 0:
        # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
        g = torch._foreach_add(g, params, alpha=weight_decay)
    if momentum != 0:
        buffers = [state.get("momentum_buffer") for state in states]
        if all(b is not None for b in buffers):
            # b_t = μ b_{t−1} + (1 − τ) g_t
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, g, alpha=1 - dampening)
        else:
            # a tensor's first step: b_1 = g_1 (undamped); the others as above, one tensor at a time
            buffers = [
                first_or_next_buffer(state, g_i, momentum, dampening)
                for state, g_i in zip(states, g)
            ]
        # d_t = g_t + μ b_t (Nesterov) or d_t = b_t (heavy ball)
        g = torch._foreach_add(g, buffers, alpha=momentum) if nesterov else buffers
    # θ_t = θ_{t−1} − γ d_t
    torch._foreach_add_(params, g, alpha=-lr)


def first_or_next_buffer(
    state: dict, g: Tensor, momentum: float, dampening: float
) -> Tensor:
    """The momentum buffer after this step, created as a copy of the gradient at the first one."""
    b = state.get("momentum_buffer")
    if b is None:
        # b_1 = g_1
        b = state["momentum_buffer"] = g.detach().clone()
    else:
        # b_t = μ b_{t−1} + (1 − τ) g_t
        b.mul_(momentum).add_(g, alpha=1 - dampening)
    return b


class SGD(PerTensorOptimizer):
    """Stochastic gradient descent (optionally with momentum), like ``torch.optim.SGD``.

    Same arguments, defaults, ValueErrors, parameter-group keys and state keys as torch's class, so
    state_dicts move between the two. The update itself is :func:`sgd_step`; ``foreach=True`` computes it
    with :func:`sgd_foreach` and ``fused=True`` with one Triton kernel (:func:`companion.optim.fused.sgd_fused`).
    ``differentiable`` must stay off.
    """

    sparse_gradients = (
        True  # like torch's, the update works on a sparse gradient as it is
    )

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_hyperparameters(momentum=momentum, weight_decay=weight_decay)
        check(
            not nesterov or (momentum > 0 and dampening == 0),
            "Nesterov momentum requires a momentum and zero dampening",
        )
        check_fast_paths(
            foreach=foreach, fused=fused, differentiable=differentiable
        )  # torch's RuntimeErrors first
        refuse_implementation_switches(differentiable=differentiable)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def state_of(self, param, group):
        # torch keeps no state at all for plain SGD (μ = 0)
        return self.state[param] if group["momentum"] != 0 else {}

    def update(self, param, grad, state, group):
        sgd_step(
            param,
            grad,
            state,
            lr=scalar(group["lr"]),
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=scalar(group["weight_decay"]),
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )

    def update_foreach(self, params, grads, states, group):
        sgd_foreach(
            params,
            grads,
            states,
            lr=scalar(group["lr"]),
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=scalar(group["weight_decay"]),
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )

    def update_fused(self, params, grads, states, group):
        fused.sgd_fused(
            params,
            grads,
            states,
            lr=scalar(group["lr"]),
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=scalar(group["weight_decay"]),
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )
