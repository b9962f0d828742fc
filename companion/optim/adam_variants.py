"""Variants of Adam and NAdam that torch does not implement, kept so the chapters can measure what torch's
choices change. They are not torch mirrors: only the hyper-parameters the comparison needs.

- :class:`AdamVariant`: Kingma & Ba's Adam with the bias correction switched off, or with ε placed as in
  the paper's "efficient" form (section 2), where it is added to the *uncorrected* root √v_t.
- :class:`DozatNAdam`: Dozat's NAdam as in the paper, whose first moment averages with the
  scheduled μ_t, where torch averages with the constant β₁.
"""

from torch import Tensor

from companion.optim._base import PerTensorOptimizer, init_state
from companion.optim.nadam import nadam_step


def adam_variant_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    bias_correction: bool,
    eps_hat: bool,
) -> None:
    r"""One step of Adam in one of the paper's forms, in place.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)
            &&\text{(Algorithm 1, torch)} \\
        \theta_t &= \theta_{t-1} - \gamma\, \tfrac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}\, m_t / (\sqrt{v_t} + \hat\epsilon)
            &&\text{(efficient form, } \mathtt{eps\_hat=True}) \\
        \theta_t &= \theta_{t-1} - \gamma\, m_t / (\sqrt{v_t} + \epsilon)
            &&\text{(no bias correction, } \mathtt{bias\_correction=False})

    The efficient form equals Algorithm 1 with a time-varying :math:`\epsilon_t = \hat\epsilon / \sqrt{1 - \beta_2^t}`.
    """
    if not state:
        init_state(state, param, "exp_avg", "exp_avg_sq")
    m, v = state["exp_avg"], state["exp_avg_sq"]
    # t ← t + 1
    state["step"] += 1
    t = state["step"].item()
    # m_t = β₁ m_{t−1} + (1 − β₁) g_t ;  v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    # the two corrections 1 − β₁ᵗ and √(1 − β₂ᵗ), or none
    c1, c2 = (1 - beta1**t, (1 - beta2**t) ** 0.5) if bias_correction else (1.0, 1.0)
    if eps_hat:
        # θ_t = θ_{t−1} − γ (c2 / c1) m_t / (√v_t + ε̂)
        param.addcdiv_(m, v.sqrt().add_(eps), value=-lr * c2 / c1)
    else:
        # θ_t = θ_{t−1} − γ (m_t / c1) / (√v_t / c2 + ε)
        param.addcdiv_(m, (v.sqrt() / c2).add_(eps), value=-lr / c1)


class AdamVariant(PerTensorOptimizer):
    """Adam without L2/decay options, in one of the paper's forms (see :func:`adam_variant_step`)."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        *,
        bias_correction=True,
        eps_hat=False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            bias_correction=bias_correction,
            eps_hat=eps_hat,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        adam_variant_step(
            param,
            grad,
            state,
            lr=group["lr"],
            beta1=group["betas"][0],
            beta2=group["betas"][1],
            eps=group["eps"],
            bias_correction=group["bias_correction"],
            eps_hat=group["eps_hat"],
        )


def dozat_nadam_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    momentum_decay: float,
) -> None:
    r"""One step of NAdam as in Dozat's paper (Algorithm 2), in place.

    .. math::
        \mu_t &= \beta_1\big(1 - \tfrac12\, 0.96^{t\psi}\big), \qquad \Pi_t = \textstyle\prod_{i \le t} \mu_i \\
        m_t &= \mu_t\, m_{t-1} + (1 - \mu_t)\, g_t \qquad \text{(torch: } \beta_1 \text{ in place of } \mu_t) \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma\, \frac{1}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
            \left[\frac{(1 - \mu_t)\, g_t}{1 - \Pi_t} + \frac{\mu_{t+1}\, m_t}{1 - \Pi_{t+1}}\right]

    The bias of :math:`m_t` is exactly :math:`1 - \Pi_t`, but the look-ahead term divides it by
    :math:`1 - \Pi_{t+1} = 1 - \Pi_t \mu_{t+1}`, so the correction is not exact: on a constant gradient the first
    step is :math:`\gamma\,[1 + \mu_2(1-\mu_1)/(1-\mu_1\mu_2)] \approx 1.31\gamma` with the default schedule, and
    the mismatch fades as :math:`\Pi_t \to 0`. The schedule is Dozat's, as in torch's NAdam (and Keras's).
    With a constant schedule (μ_t = β₁, e.g. a huge ``momentum_decay``) it is torch's NAdam exactly.
    """
    # torch's NAdam step, with m_t averaged by the scheduled μ_t: the one line where the two differ
    nadam_step(
        param,
        grad,
        state,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=0,
        momentum_decay=momentum_decay,
        decoupled_weight_decay=False,
        maximize=False,
        scheduled_average=True,
    )


class DozatNAdam(PerTensorOptimizer):
    """NAdam as in Dozat (2016), without weight decay (see :func:`dozat_nadam_step`)."""

    def __init__(
        self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, momentum_decay=4e-3
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, momentum_decay=momentum_decay)
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        dozat_nadam_step(
            param,
            grad,
            state,
            lr=group["lr"],
            beta1=group["betas"][0],
            beta2=group["betas"][1],
            eps=group["eps"],
            momentum_decay=group["momentum_decay"],
        )
