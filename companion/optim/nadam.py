"""NAdam (Dozat, 2016): Nesterov momentum inside Adam, with the momentum schedule of Dozat's report (as in
Keras's Nadam, ``schedule_decay=0.004``, which torch.optim.NAdam took over as ``momentum_decay``), written from
scratch with the contract of ``torch.optim.NAdam``."""

import torch
from torch import Tensor

from companion.optim._base import (
    PerTensorOptimizer,
    check_betas,
    check_hyperparameters,
    check_lr,
    init_state,
    refuse_implementation_switches,
    scalar,
    step_counter,
)
from companion.optim.adam import apply_weight_decay, foreach_moments


def momentum_schedule(t, beta1: float, momentum_decay: float):
    r"""Dozat's warming momentum :math:`\mu_t = \beta_1\,(1 - \tfrac12\, 0.96^{t\psi})` (his report's ψ = 1/250 = 0.004, as in Keras's Nadam; torch.optim.NAdam's ``momentum_decay``).

    It starts at about β₁/2 and creeps towards β₁: with the default ψ = 0.004 it is still below
    0.6 β₁ after 1000 steps. ``t`` may be a number or a tensor of steps.
    """
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


def init_nadam_state(state: dict, param: Tensor) -> None:
    """NAdam's state as torch creates it at a tensor's first gradient (left alone if it exists)."""
    if not state:
        # t = 0, Π_0 = 1, m_0 = v_0 = 0
        init_state(state, param, "exp_avg", "exp_avg_sq")
        state["mu_product"] = step_counter().add_(1)


def nadam_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
    scheduled_average: bool = False,
) -> None:
    r"""One NAdam step for one parameter tensor, in place (as torch computes it).

    .. math::
        t &\leftarrow t + 1 \\
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \quad\text{or, decoupled,}\quad \theta_{t-1} \leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \\
        \mu_t &= \beta_1\big(1 - \tfrac12\, 0.96^{t\psi}\big), \qquad
            \mu_{t+1} = \beta_1\big(1 - \tfrac12\, 0.96^{(t+1)\psi}\big) \\
        \Pi_t &= \Pi_{t-1}\, \mu_t \qquad (\Pi_0 = 1) \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma\, \frac{1}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
            \left[\frac{(1 - \mu_t)\, g_t}{1 - \Pi_t} + \frac{\mu_{t+1}\, m_t}{1 - \Pi_t\,\mu_{t+1}}\right]

    with learning rate γ, betas β₁, β₂, ε, weight decay λ and momentum decay ψ. ``state`` holds torch's
    keys ``step`` and ``mu_product`` (Π, scalar tensors of torch's dtype), ``exp_avg`` (m) and
    ``exp_avg_sq`` (v); they are created on the first call. ``scheduled_average=True`` averages m_t with
    the scheduled μ_t instead of β₁, as Dozat's paper does (:func:`companion.optim.adam_variants.dozat_nadam_step`).
    """
    init_nadam_state(state, param)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    # t ← t + 1
    state["step"] += 1
    t = state["step"].item()
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1} (L2), or θ ← (1 − γλ) θ (NAdamW: the decay never enters m or v)
    g = apply_weight_decay(
        param, g, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    # μ_t and μ_{t+1} from the warming schedule
    mu, mu_next = (
        momentum_schedule(t, beta1, momentum_decay),
        momentum_schedule(t + 1, beta1, momentum_decay),
    )
    # Π_t = Π_{t−1} μ_t   (kept, like torch, in the step counter's precision)
    state["mu_product"] *= mu
    prod = state["mu_product"].item()
    # m_t = β₁ m_{t−1} + (1 − β₁) g_t   (β₁, not μ_t: torch's choice; μ_t with ``scheduled_average``, Dozat's)
    b = mu if scheduled_average else beta1
    m.mul_(b).add_(g, alpha=1 - b)
    # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    # √v̂_t + ε = √(v_t / (1 − β₂ᵗ)) + ε
    denom = (v / (1 - beta2**t)).sqrt_().add_(eps)
    # θ ← θ − γ (1 − μ_t) / (1 − Π_t) · g_t / (√v̂_t + ε)   (the current gradient's share)
    param.addcdiv_(g, denom, value=-lr * (1 - mu) / (1 - prod))
    # θ ← θ − γ μ_{t+1} / (1 − Π_t μ_{t+1}) · m_t / (√v̂_t + ε)   (the look-ahead momentum)
    param.addcdiv_(m, denom, value=-lr * mu_next / (1 - prod * mu_next))


def nadam_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    r"""The update of :func:`nadam_step` for a list of tensors of one device and dtype, in place: each line
    is one ``torch._foreach_*`` operation over the whole list (torch's ``foreach=True`` path).

    The same equations as :func:`nadam_step`, in the order torch's multi-tensor path computes them; m's
    average is written as a linear interpolation, :math:`m_t = m_{t-1} + (1 - \beta_1)(g_t - m_{t-1})`, and
    the bias correction divides √v_t, :math:`\sqrt{\hat v_t} = \sqrt{v_t} / \sqrt{1 - \beta_2^t}`.
    """
    for param, state in zip(params, states):
        init_nadam_state(state, param)
    # a 1-element tensor lr is used as torch uses it, a 0-dim tensor (the decoupled decay's factor rounds in its dtype)
    lr = lr.squeeze() if isinstance(lr, Tensor) else lr
    m = [state["exp_avg"] for state in states]
    v = [state["exp_avg_sq"] for state in states]
    steps = [state["step"] for state in states]
    products = [state["mu_product"] for state in states]
    # t ← t + 1
    torch._foreach_add_(steps, 1)
    # g_t (± ∇f, weight decay: NAdamW's decoupled), m_t and v_t
    g = foreach_moments(
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
    # √v_t
    denom = torch._foreach_sqrt(v)
    # √(1 − β₂ᵗ), μ_t and μ_{t+1}, one number per tensor (each tensor has its own step count)
    t = [step.item() for step in steps]
    bias2_sqrt = [(1 - beta2**k) ** 0.5 for k in t]
    mus = [momentum_schedule(k, beta1, momentum_decay) for k in t]
    mu_nexts = [momentum_schedule(k + 1, beta1, momentum_decay) for k in t]
    # Π_t = Π_{t−1} μ_t
    torch._foreach_mul_(products, mus)
    # √v̂_t + ε = √v_t / √(1 − β₂ᵗ) + ε
    torch._foreach_div_(denom, bias2_sqrt)
    torch._foreach_add_(denom, eps)
    # −γ (1 − μ_t) / (1 − Π_t) and −γ μ_{t+1} / (1 − Π_t μ_{t+1}), one number per tensor
    gamma, prods = scalar(lr), [prod.item() for prod in products]
    grad_sizes = [-(gamma * (1 - mu) / (1 - prod)) for mu, prod in zip(mus, prods)]
    momentum_sizes = [
        -(gamma * mu_next / (1 - prod * mu_next))
        for mu_next, prod in zip(mu_nexts, prods)
    ]
    # θ ← θ − γ (1 − μ_t) / (1 − Π_t) · g_t / (√v̂_t + ε)   (the current gradient's share)
    torch._foreach_addcdiv_(params, g, denom, grad_sizes)
    # θ ← θ − γ μ_{t+1} / (1 − Π_t μ_{t+1}) · m_t / (√v̂_t + ε)   (the look-ahead momentum)
    torch._foreach_addcdiv_(params, m, denom, momentum_sizes)


class NAdam(PerTensorOptimizer):
    """NAdam, like ``torch.optim.NAdam``: the same arguments, defaults, ValueErrors, parameter-group keys
    and state keys, so state_dicts move between the two.

    ``decoupled_weight_decay=True`` gives NAdamW. The update itself is :func:`nadam_step`; ``foreach=True``
    computes it with :func:`nadam_foreach`. ``capturable`` and ``differentiable`` must stay off.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
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
        check_hyperparameters(weight_decay=weight_decay, momentum_decay=momentum_decay)
        refuse_implementation_switches(
            capturable=capturable, differentiable=differentiable
        )
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        nadam_step(
            param,
            grad,
            state,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum_decay=group["momentum_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            maximize=group["maximize"],
        )

    def update_foreach(self, params, grads, states, group):
        beta1, beta2 = group["betas"]
        nadam_foreach(
            params,
            grads,
            states,
            lr=group[
                "lr"
            ],  # a float or a 1-element tensor, which the decoupled decay uses as torch does
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum_decay=group["momentum_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            maximize=group["maximize"],
        )
