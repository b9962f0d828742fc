"""Adam (Kingma & Ba, 2015), written from scratch with the contract of ``torch.optim.Adam``."""

import torch
from torch import Tensor

from companion.core.checks import check
from companion.optim import fused
from companion.optim._base import (
    PerTensorOptimizer,
    check_betas,
    check_fast_paths,
    check_hyperparameters,
    check_lr,
    init_state,
    refuse_implementation_switches,
    scalar,
)


def check_adam_hyperparameters(lr, betas, eps, weight_decay) -> tuple:
    """torch's checks (and messages) for Adam's and AdamW's arguments; returns the betas as torch stores them."""
    check_lr(lr)
    check_hyperparameters(eps=eps)
    check_betas(betas)
    check_hyperparameters(weight_decay=weight_decay)
    floats = isinstance(betas[0], float) and isinstance(betas[1], float)
    tensors = isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)
    check(floats or tensors, "betas must be either both floats or both Tensors")
    # like torch, a 1-element tensor is kept as a 0-dimensional one
    return tuple(
        b.squeeze() if isinstance(b, Tensor) and b.dim() != 0 else b for b in betas
    )


def decay_weights(param: Tensor, *, lr: float | Tensor, weight_decay: float) -> None:
    r"""Decoupled weight decay, a step of its own (Loshchilov & Hutter, 2019): :math:`\theta \leftarrow (1 - \gamma\lambda)\,\theta`.

    It shrinks every weight by the same factor, whatever its gradient history; an L2 penalty's
    gradient :math:`\lambda\theta` would instead pass through Adam's per-coordinate scaling.
    """
    # θ ← (1 − γλ) θ
    param.mul_(1 - lr * weight_decay)


def apply_weight_decay(
    param: Tensor, grad: Tensor, *, lr, weight_decay: float, decoupled: bool
) -> Tensor:
    r"""Weight decay as an L2 penalty's gradient or, decoupled, as a step of its own; returns the gradient
    that the moments then see.

    .. math::
        g_t \leftarrow g_t + \lambda\,\theta_{t-1} \quad\text{(L2)} \qquad\text{or}\qquad
        \theta_{t-1} \leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \quad\text{(decoupled)}
    """
    if weight_decay == 0:
        return grad
    if decoupled:
        # θ ← (1 − γλ) θ, and g_t is left as it is
        decay_weights(param, lr=lr, weight_decay=weight_decay)
        return grad
    # g_t ← g_t + λ θ_{t−1}
    return grad.add(param, alpha=weight_decay)


def adam_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    beta1: float | Tensor,
    beta2: float | Tensor,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool = False,
) -> None:
    r"""One Adam step for one parameter tensor, in place (Algorithm 1 of Kingma & Ba, as torch computes it).

    .. math::
        t &\leftarrow t + 1 \\
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \quad\text{or, decoupled,}\quad \theta_{t-1} \leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        v_t^{\max} &= \max(v_{t-1}^{\max}, v_t) \quad\text{(AMSGrad: } v_t \text{ is replaced by } v_t^{\max}) \\
        \hat m_t &= m_t / (1 - \beta_1^t), \qquad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    with learning rate γ (``lr``), betas β₁, β₂, ε (``eps``) and weight decay λ; γ, β₁ and β₂ may be
    1-element tensors, whose dtype the scalar factors then follow, as in torch. ``state`` holds
    torch's keys ``step`` (a scalar tensor), ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with AMSGrad,
    ``max_exp_avg_sq`` (v^max); they are created on the first call.
    """
    if not state:
        # t = 0, m_0 = v_0 = 0 (and v^max_0 = 0)
        init_state(
            state,
            param,
            "exp_avg",
            "exp_avg_sq",
            *(["max_exp_avg_sq"] if amsgrad else []),
        )
    m, v = state["exp_avg"], state["exp_avg_sq"]
    # t ← t + 1
    state["step"] += 1
    t = state["step"].item()
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1} (L2), or θ ← (1 − γλ) θ (decoupled: the decay never enters m or v)
    g = apply_weight_decay(
        param, g, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    # m_t = β₁ m_{t−1} + (1 − β₁) g_t
    m.mul_(beta1).add_(g, alpha=1 - beta1)
    # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    if amsgrad:
        # v^max_t = max(v^max_{t−1}, v_t), used in place of v_t
        v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
    # γ / (1 − β₁ᵗ): m̂_t's correction folded into the step size
    step_size = lr / (1 - beta1**t)
    # √v̂_t + ε = √v_t / √(1 − β₂ᵗ) + ε
    denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
    # θ_t = θ_{t−1} − γ m̂_t / (√v̂_t + ε)
    param.addcdiv_(m, denom, value=-step_size)


def refuse_tensor_hyperparameters(**values) -> None:
    """torch's foreach path takes γ, β₁ and β₂ only as numbers (a tensor needs ``capturable=True``)."""
    for name, value in values.items():
        if isinstance(value, Tensor):
            error = RuntimeError if name == "lr" else ValueError  # torch's types
            raise error(
                f"{name} as a Tensor is not supported for capturable=False and foreach=True"
            )


def foreach_moments(
    params: list[Tensor],
    grads: list[Tensor],
    m: list[Tensor],
    v: list[Tensor],
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> list[Tensor]:
    r"""The first half of every Adam-family update over a list of tensors, in place: the gradient (negated to
    maximize, with weight decay as an L2 term or, decoupled, as a step of its own), then both moments;
    returns the gradients g_t the moments saw.

    .. math::
        g_t = \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \ \text{or}\ \theta_{t-1} \leftarrow (1 - \gamma\lambda)\theta_{t-1};
        \quad m_t = m_{t-1} + (1 - \beta_1)(g_t - m_{t-1}); \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2
    """
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = torch._foreach_neg(grads) if maximize else grads
    if weight_decay != 0:
        if decoupled_weight_decay:
            # θ ← (1 − γλ) θ   (decoupled: the decay never enters m or v)
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        else:
            # g_t ← g_t + λ θ_{t−1}
            g = torch._foreach_add(g, params, alpha=weight_decay)
    # m_t = β₁ m_{t−1} + (1 − β₁) g_t
    torch._foreach_lerp_(m, g, 1 - beta1)
    # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    torch._foreach_mul_(v, beta2)
    torch._foreach_addcmul_(v, g, g, 1 - beta2)
    return g


def adam_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool = False,
) -> None:
    r"""The update of :func:`adam_step` for a list of tensors of one device and dtype, in place: each line
    is one ``torch._foreach_*`` operation over the whole list (torch's ``foreach=True`` path).

    The same equations, in the order torch's multi-tensor path computes them; m's average is written
    as a linear interpolation, :math:`m_t = m_{t-1} + (1 - \beta_1)(g_t - m_{t-1})`.
    """
    refuse_tensor_hyperparameters(lr=lr, beta1=beta1, beta2=beta2)
    for param, state in zip(params, states):
        if not state:
            # t = 0, m_0 = v_0 = 0 (and v^max_0 = 0)
            init_state(
                state,
                param,
                "exp_avg",
                "exp_avg_sq",
                *(["max_exp_avg_sq"] if amsgrad else []),
            )
    m = [state["exp_avg"] for state in states]
    v = [state["exp_avg_sq"] for state in states]
    steps = [state["step"] for state in states]
    # t ← t + 1
    torch._foreach_add_(steps, 1)
    # g_t (± ∇f, weight decay), m_t and v_t
    foreach_moments(
        params,
        grads,
        m,
        v,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        weight_decay=weight_decay,
        maximize=maximize,
        decoupled_weight_decay=decoupled_weight_decay,
    )
    if amsgrad:
        # v^max_t = max(v^max_{t−1}, v_t), used in place of v_t
        v = [state["max_exp_avg_sq"] for state in states]
        torch._foreach_maximum_(v, [state["exp_avg_sq"] for state in states])
    # −γ / (1 − β₁ᵗ) and √(1 − β₂ᵗ), one number per tensor (each tensor has its own step count)
    t = [step.item() for step in steps]
    step_sizes = [-lr / (1 - beta1**k) for k in t]
    bias2_sqrt = [(1 - beta2**k) ** 0.5 for k in t]
    # √v̂_t + ε = √v_t / √(1 − β₂ᵗ) + ε
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, bias2_sqrt)
    torch._foreach_add_(denom, eps)
    # θ_t = θ_{t−1} − γ m̂_t / (√v̂_t + ε)
    torch._foreach_addcdiv_(params, m, denom, step_sizes)


class Adam(PerTensorOptimizer):
    """Adam, like ``torch.optim.Adam``: the same arguments, defaults, ValueErrors, parameter-group keys
    and state keys, so state_dicts move between the two.

    ``decoupled_weight_decay=True`` turns the L2 penalty into AdamW's decoupled decay. The update
    itself is :func:`adam_step`; ``foreach=True`` computes it with :func:`adam_foreach` and ``fused=True``
    with one Triton kernel (:func:`companion.optim.fused.adam_fused`). ``capturable`` and
    ``differentiable`` must stay off.
    """

    sparse_message = (
        "Adam does not support sparse gradients, please consider SparseAdam instead"
    )

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        betas = check_adam_hyperparameters(lr, betas, eps, weight_decay)
        refuse_implementation_switches(
            capturable=capturable, differentiable=differentiable
        )
        check_fast_paths(foreach=foreach, fused=fused, differentiable=differentiable)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        adam_step(
            param,
            grad,
            state,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=scalar(group["weight_decay"]),
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group.get("decoupled_weight_decay", False),
        )

    def update_foreach(self, params, grads, states, group):
        beta1, beta2 = group["betas"]
        adam_foreach(
            params,
            grads,
            states,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=scalar(group["weight_decay"]),
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group.get("decoupled_weight_decay", False),
        )

    def update_fused(self, params, grads, states, group):
        beta1, beta2 = group["betas"]
        fused.adam_fused(
            params,
            grads,
            states,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=scalar(group["weight_decay"]),
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group.get("decoupled_weight_decay", False),
        )
