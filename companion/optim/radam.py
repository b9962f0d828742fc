"""RAdam (Liu et al., 2020): Adam whose adaptive step is switched on, and rectified, only once the variance of
its second-moment estimate is tractable, written from scratch with the contract of ``torch.optim.RAdam``."""

import torch
from torch import Tensor

from companion.optim._base import (
    PerTensorOptimizer,
    check_betas,
    check_hyperparameters,
    check_lr,
    init_state,
    refuse_implementation_switches,
)
from companion.optim.adam import apply_weight_decay, foreach_moments


def sma_length(t, beta2: float) -> tuple[float, float]:
    r"""The length of the approximated simple moving average, :math:`(\rho_\infty, \rho_t)`:

    .. math::
        \rho_\infty = \frac{2}{1 - \beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2\, t\, \beta_2^t}{1 - \beta_2^t}

    ρ_t grows from 1 at t = 1 towards ρ_∞ (1999 for β₂ = 0.999); the adaptive step needs ρ_t > 5.
    """
    # ρ_∞ = 2 / (1 − β₂) − 1
    rho_inf = 2 / (1 - beta2) - 1
    # ρ_t = ρ_∞ − 2 t β₂ᵗ / (1 − β₂ᵗ)
    return rho_inf, rho_inf - 2 * t * beta2**t / (1 - beta2**t)


def rectifier(rho_t: float, rho_inf: float) -> float:
    r"""The variance rectification term :math:`r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}}`
    (defined for ρ_t > 4; RAdam uses it from ρ_t > 5 on). It tends to 1 as ρ_t → ρ_∞."""
    # r_t = √[(ρ_t − 4)(ρ_t − 2) ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2) ρ_t)]
    return (
        (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    ) ** 0.5


def radam_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    r"""One RAdam step for one parameter tensor, in place (Algorithm 2 of Liu et al., as torch computes it).

    .. math::
        t &\leftarrow t + 1 \\
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \quad\text{or, decoupled,}\quad \theta_{t-1} \leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t) \\
        \rho_\infty &= 2/(1 - \beta_2) - 1, \qquad \rho_t = \rho_\infty - 2t\beta_2^t/(1 - \beta_2^t) \\
        \theta_t &= \begin{cases}
            \theta_{t-1} - \gamma\, \hat m_t\, r_t\, \dfrac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon}
                & \rho_t > 5, \quad r_t = \sqrt{\dfrac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}} \\
            \theta_{t-1} - \gamma\, \hat m_t & \text{otherwise (SGD with momentum)}
        \end{cases}

    with learning rate γ, betas β₁, β₂, ε and weight decay λ. Note that ε is added to √v_t before the bias
    correction √(1 − β₂ᵗ) is applied, as torch does. ``state`` holds torch's keys ``step`` (a scalar
    tensor), ``exp_avg`` (m) and ``exp_avg_sq`` (v); they are created on the first call.
    """
    if not state:
        # t = 0, m_0 = v_0 = 0
        init_state(state, param, "exp_avg", "exp_avg_sq")
    m, v = state["exp_avg"], state["exp_avg_sq"]
    # a 1-element tensor lr is used as torch uses it, a 0-dim tensor (its factors then round in its dtype)
    lr = lr.squeeze() if isinstance(lr, Tensor) else lr
    # t ← t + 1
    state["step"] += 1
    t = state["step"].item()
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1} (L2), or θ ← (1 − γλ) θ (decoupled: the decay never enters m or v)
    g = apply_weight_decay(
        param, g, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    # m_t = β₁ m_{t−1} + (1 − β₁) g_t   (as a lerp: m + (1 − β₁)(g − m))
    m.lerp_(g, 1 - beta1)
    # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    # m̂_t = m_t / (1 − β₁ᵗ)
    m_hat = m / (1 - beta1**t)
    # ρ_∞ and ρ_t, the lengths of the approximated moving average
    rho_inf, rho_t = sma_length(t, beta2)
    if rho_t > 5.0:
        # √(1 − β₂ᵗ) / (√v_t + ε), the bias-corrected adaptive rate
        adaptive = (1 - beta2**t) ** 0.5 / (v.sqrt() + eps)
        # θ ← θ − γ m̂_t · √(1 − β₂ᵗ)/(√v_t + ε) · r_t
        param.sub_(m_hat * lr * adaptive * rectifier(rho_t, rho_inf))
    else:
        # θ ← θ − γ m̂_t   (the variance is intractable: no adaptive step yet)
        param.sub_(m_hat * lr)


def radam_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    r"""The update of :func:`radam_step` for a list of tensors of one device and dtype, in place: each line
    is one ``torch._foreach_*`` operation over the whole list (torch's ``foreach=True`` path).

    The same equations as :func:`radam_step`, in the order torch's multi-tensor path computes them: both
    branches as one multiplier of m_t per tensor, the unrectified step size s_t (γ/(1 − β₁ᵗ) before ρ_t > 5,
    then 0) plus the rectified one,

    .. math::
        \theta_t = \theta_{t-1} + m_t \odot \Bigl(\bigl((\sqrt{v_t} + \epsilon) / a_t\bigr)^{-1} - s_t\Bigr),
        \qquad a_t = -\frac{\gamma\, r_t \sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
        \quad (r_t = 0 \text{ before } \rho_t > 5).
    """
    for param, state in zip(params, states):
        if not state:
            # t = 0, m_0 = v_0 = 0
            init_state(state, param, "exp_avg", "exp_avg_sq")
    # a 1-element tensor lr is used as torch uses it, a 0-dim tensor (its factors then round in its dtype)
    lr = lr.squeeze() if isinstance(lr, Tensor) else lr
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
    # r_t (0 while ρ_t ≤ 5), −s_t and a_t, one number per tensor (each tensor has its own step count)
    t = [step.item() for step in steps]
    r = [rectification(k, beta2) for k in t]
    bias1 = [1 - beta1**k for k in t]
    minus_plain = [
        (lr * (0 if r_k > 0 else 1.0) / b1) * -1 for r_k, b1 in zip(r, bias1)
    ]
    adaptive = [
        ((1 - beta2**k) ** 0.5) * (lr * r_k / b1) * -1
        for k, r_k, b1 in zip(t, r, bias1)
    ]
    # √v_t + ε
    multiplier = torch._foreach_sqrt(v)
    torch._foreach_add_(multiplier, eps)
    # a_t / (√v_t + ε)   (−0 before ρ_t > 5)
    torch._foreach_div_(multiplier, adaptive)
    torch._foreach_reciprocal_(multiplier)
    # a_t / (√v_t + ε) − s_t
    torch._foreach_add_(multiplier, minus_plain)
    # θ_t = θ_{t−1} + m_t (a_t / (√v_t + ε) − s_t)
    torch._foreach_addcmul_(params, m, multiplier)


def rectification(t, beta2: float) -> float:
    """r_t where the adaptive step applies (ρ_t > 5), else 0."""
    rho_inf, rho_t = sma_length(t, beta2)
    return rectifier(rho_t, rho_inf) if rho_t > 5 else 0


class RAdam(PerTensorOptimizer):
    """RAdam, like ``torch.optim.RAdam``: the same arguments, defaults, ValueErrors, parameter-group keys
    and state keys, so state_dicts move between the two.

    ``decoupled_weight_decay=True`` decays the weights as AdamW does. The update itself is :func:`radam_step`;
    ``foreach=True`` computes it with :func:`radam_foreach`. ``capturable`` and ``differentiable`` must stay off.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        check_hyperparameters(eps=eps)
        check_betas(betas)
        check_hyperparameters(weight_decay=weight_decay)
        refuse_implementation_switches(
            capturable=capturable, differentiable=differentiable
        )
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            decoupled_weight_decay=decoupled_weight_decay,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        radam_step(
            param,
            grad,
            state,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            maximize=group["maximize"],
        )

    def update_foreach(self, params, grads, states, group):
        beta1, beta2 = group["betas"]
        radam_foreach(
            params,
            grads,
            states,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            maximize=group["maximize"],
        )
