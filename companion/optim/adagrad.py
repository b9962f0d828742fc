"""Adagrad (Duchi, Hazan & Singer, 2011), written from scratch with the contract of ``torch.optim.Adagrad``."""

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


def adagrad_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    r"""One Adagrad step for one parameter tensor, in place.

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
        \eta_t &= \gamma \,/\, \bigl(1 + (t - 1)\,\delta\bigr) \\
        G_t &= G_{t-1} + g_t \odot g_t \qquad (G_0 = \mathtt{initial\_accumulator\_value}) \\
        \theta_t &= \theta_{t-1} - \eta_t\, g_t \,/\, \bigl(\sqrt{G_t} + \epsilon\bigr)

    with learning rate γ (``lr``), learning-rate decay δ (``lr_decay``, torch's addition: the paper
    has δ = 0), weight decay λ and ε added outside the square root. ``state`` holds the step count t
    under ``step`` and the running sum of squared gradients G under ``sum`` (torch's keys).
    A sparse gradient is made dense: its absent entries are zeros, which change neither G nor θ.
    """
    # t ← t + 1
    state["step"] += 1
    t = state["step"].item()
    if grad.is_sparse:
        if weight_decay != 0:
            raise RuntimeError(
                "weight_decay option is not compatible with sparse gradients"
            )
        # absent entries of a sparse gradient are zeros
        grad = grad.to_dense()
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    # η_t = γ / (1 + (t − 1) δ)   (in the dtype of γ when γ is a tensor, as torch does)
    eta = scalar(lr / (1 + (t - 1) * lr_decay))
    # G_t = G_{t−1} + g_t ⊙ g_t   (every squared gradient so far, per coordinate)
    G = state["sum"]
    G.addcmul_(g, g, value=1)
    # θ_t = θ_{t−1} − η_t g_t / (√G_t + ε)
    param.addcdiv_(g, G.sqrt().add_(eps), value=-eta)


def adagrad_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float | Tensor,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    r"""The update of :func:`adagrad_step` for a list of dense tensors of one device and dtype, in place: each
    line is one ``torch._foreach_*`` operation over the whole list (torch's ``foreach=True`` path).

    The same equations as :func:`adagrad_step`, in the order torch's multi-tensor path computes them: the
    step size multiplies the gradient before the division,
    :math:`\theta \leftarrow \theta + (-\eta_t g_t) / (\sqrt{G_t} + \epsilon)`.
    The state (``step`` and ``sum``) exists already: :class:`Adagrad` creates it.
    """
    G = [state["sum"] for state in states]
    steps = [state["step"] for state in states]
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = torch._foreach_neg(grads) if maximize else grads
    # t ← t + 1
    torch._foreach_add_(steps, 1)
    if weight_decay != 0:
        # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
        g = torch._foreach_add(g, params, alpha=weight_decay)
    # −η_t = −γ / (1 + (t − 1) δ), one number per tensor (each tensor has its own step count)
    minus_eta = [-scalar(lr / (1 + (step.item() - 1) * lr_decay)) for step in steps]
    # G_t = G_{t−1} + g_t ⊙ g_t
    torch._foreach_addcmul_(G, g, g, value=1)
    # √G_t + ε
    denom = torch._foreach_sqrt(G)
    torch._foreach_add_(denom, eps)
    # −η_t g_t
    numerator = torch._foreach_mul(g, minus_eta)
    # θ_t = θ_{t−1} − η_t g_t / (√G_t + ε)
    torch._foreach_addcdiv_(params, numerator, denom)


class Adagrad(PerTensorOptimizer):
    """Adagrad, like ``torch.optim.Adagrad``.

    Same arguments, defaults, ValueErrors, parameter-group keys and state keys as torch's class, so
    state_dicts move between the two. Like torch, the state (``step`` = 0 and ``sum`` =
    ``initial_accumulator_value``) is created for every parameter in the constructor, and the
    constructor's ``initial_accumulator_value`` is used even where a parameter group sets another.
    The update itself is :func:`adagrad_step`; ``foreach=True`` computes it with :func:`adagrad_foreach`
    (a sparse gradient takes the per-tensor path, as in torch). ``differentiable`` and ``fused`` must stay off.
    """

    sparse_gradients = True  # like torch's, Adagrad takes sparse gradients

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_hyperparameters(
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        refuse_implementation_switches(differentiable=differentiable, fused=fused)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self.state_of(p, group)  # eagerly, as torch does

    def state_of(self, param, group):
        state = self.state[param]
        if not state:
            # t = 0 and G_0 = initial_accumulator_value (the constructor's, as in torch); also for a
            # parameter added later with add_param_group
            init_state(
                state, param, "sum", fill=self.defaults["initial_accumulator_value"]
            )
        return state

    def update(self, param, grad, state, group):
        adagrad_step(
            param,
            grad,
            state,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )

    def update_foreach(self, params, grads, states, group):
        adagrad_foreach(
            params,
            grads,
            states,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )
