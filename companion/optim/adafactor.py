"""Adafactor (Shazeer & Stern, 2018): second moments kept as a row and a column factor for matrices, a
relative step size and update clipping, written from scratch with the contract of ``torch.optim.Adafactor``
(which follows the paper's Algorithms 4 and 5 with a decoupled weight decay)."""

import torch
from torch import Tensor

from companion.core.checks import check
from companion.optim._base import (
    PerTensorOptimizer,
    refuse_implementation_switches,
    step_counter,
)


def rms(x: Tensor) -> float:
    r"""The root mean square :math:`\mathrm{RMS}(x) = \lVert x\rVert_2 / \sqrt{n}` of a tensor's n entries, as a number."""
    # RMS(x) = ‖x‖₂ / √n
    return x.norm(2).item() / (x.numel() ** 0.5)


def adafactor_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    beta2_decay: float,
    eps1: float | None,
    eps2: float,
    d: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    r"""One Adafactor step for one parameter tensor, in place (as torch computes it).

    .. math::
        t &\leftarrow t + 1, \qquad G_t = \pm\nabla f(\theta_{t-1}) \\
        1 - \hat\beta_{2,t} &= t^{\tau}, \qquad \rho_t = \min(\gamma, 1/\sqrt t), \qquad
            \alpha_t = \max\big(\epsilon_2, \mathrm{RMS}(\theta_{t-1})\big)\, \rho_t \\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\, \theta_{t-1} \\
        R_t &= \hat\beta_{2,t} R_{t-1} + (1 - \hat\beta_{2,t})\, \operatorname{mean}_{\text{last dim}}(G_t^2), \quad
        C_t = \hat\beta_{2,t} C_{t-1} + (1 - \hat\beta_{2,t})\, \operatorname{mean}_{\text{dim }-2}(G_t^2), \quad
        \hat V_t = \frac{R_t C_t}{\max(\operatorname{mean}(R_t), \epsilon_1)}
            \quad\text{(≥ 2 dims)} \\
        \hat V_t &= \hat\beta_{2,t} \hat V_{t-1} + (1 - \hat\beta_{2,t})\, G_t^2 \quad\text{(fewer dims)} \\
        U_t &= G_t / \sqrt{\max(\hat V_t, \epsilon_1^2)} \\
        \theta_t &= \theta_{t-1} - \frac{\alpha_t}{\max\big(1, \mathrm{RMS}(U_t) / d\big)}\, U_t

    with learning rate γ (an upper bound on the relative step ρ_t), ``beta2_decay`` τ ≤ 0, ``eps`` =
    (ε₁, ε₂) (ε₁ = None: the machine epsilon of the parameter's dtype), clipping threshold d and weight decay
    λ. A tensor of n × m (or ... × n × m) entries keeps n + m (per leading index) second moments instead of
    nm: R_t (``row_var``, the last dim reduced to 1) and C_t (``col_var``, dim −2 reduced to 1), whose
    outer product divided by the mean of R_t is a rank-1 estimate of the second moments. A vector or a
    scalar keeps them in full (``variance``). ``step`` is a scalar tensor; the state is created on the first call.
    """
    if not state:
        # t = 0, R_0 = C_0 = 0 (≥ 2 dims) or V̂_0 = 0
        state["step"] = step_counter()
        if grad.dim() > 1:
            state["row_var"] = grad.new_zeros((*grad.shape[:-1], 1))
            state["col_var"] = grad.new_zeros((*grad.shape[:-2], 1, grad.shape[-1]))
        else:
            state["variance"] = torch.zeros_like(
                grad, memory_format=torch.preserve_format
            )
    # a 1-element tensor lr is used as torch uses it, a 0-dim tensor (its factors then round in its dtype)
    lr = lr.squeeze() if isinstance(lr, Tensor) else lr
    # ε₁ = None: the machine epsilon of θ's dtype
    eps1 = torch.finfo(param.dtype).eps if eps1 is None else eps1
    # t ← t + 1
    state["step"] += 1
    t = state["step"].item()
    # G_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # 1 − β̂₂,t = t^τ: the weight of the new squared gradient (1 at t = 1, then decaying)
    new_weight = t**beta2_decay
    # ρ_t = min(γ, 1/√t): the relative step size, capped by the learning rate
    rho = min(lr, 1 / (t**0.5))
    # α_t = max(ε₂, RMS(θ_{t−1})) ρ_t: the step is relative to the parameter's scale
    alpha = max(eps2, rms(param)) * rho
    if weight_decay != 0:
        # θ ← (1 − γλ) θ   (decoupled, with the learning rate γ rather than ρ_t)
        param.mul_(1 - lr * weight_decay)
    if g.dim() > 1:
        row_var, col_var = state["row_var"], state["col_var"]
        # R_t = β̂₂ R_{t−1} + (1 − β̂₂) mean over the last dim of G_t²   (as ‖row‖₂² / m)
        row_var.lerp_(
            torch.norm(g, dim=-1, keepdim=True).square_().div_(g.size(-1)), new_weight
        )
        # C_t = β̂₂ C_{t−1} + (1 − β̂₂) mean over dim −2 of G_t²   (as ‖column‖₂² / n)
        col_var.lerp_(
            torch.norm(g, dim=-2, keepdim=True).square_().div_(g.size(-2)), new_weight
        )
        # V̂_t = R_t C_t / max(mean(R_t), ε₁)   (the outer product, per leading index)
        var = (row_var @ col_var).div_(
            row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1)
        )
    else:
        # V̂_t = β̂₂ V̂_{t−1} + (1 − β̂₂) G_t²
        state["variance"].lerp_(g * g, new_weight)
        var = state["variance"].clone()
    # U_t = G_t / √max(V̂_t, ε₁²)
    u = var.clamp_(min=eps1 * eps1).rsqrt_().mul_(g)
    # θ ← θ − α_t / max(1, RMS(U_t)/d) · U_t   (update clipping: the step's RMS is at most d α_t)
    param.add_(u, alpha=-alpha / max(1.0, u.norm(2).item() / (u.numel() ** 0.5 * d)))


class Adafactor(PerTensorOptimizer):
    """Adafactor, like ``torch.optim.Adafactor``: the same arguments, defaults, ValueErrors, parameter-group
    keys and state keys (``step``, and ``row_var`` and ``col_var`` or ``variance``), so state_dicts move between the two.

    ``foreach`` must stay off. Complex parameters are refused, as torch refuses them. ``eps=(None, ...)``
    takes, as torch does, the machine epsilon of the group's first parameter with a gradient for the whole
    group. The update itself is :func:`adafactor_step`.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        check(
            not (isinstance(lr, Tensor) and lr.numel() != 1),
            "Tensor lr must be 1-element",
        )
        check(0.0 <= lr, f"Learning rate should be >= 0 but is: {lr}")
        check(0.0 >= beta2_decay, f"beta2_decay should be <= 0 but is: {beta2_decay}")
        check(
            eps[0] is None or 0.0 <= eps[0], f"epsilon1 should be >= 0 but is: {eps[0]}"
        )
        check(0.0 <= eps[1], f"epsilon2 should be >= 0 but is: {eps[1]}")
        check(1.0 <= d, f"Clipping threshold d should be >= 1 but is: {d}")
        check(
            0.0 <= weight_decay, f"weight_decay should be >= 0 but is: {weight_decay}"
        )
        refuse_implementation_switches(foreach=foreach)
        defaults = dict(
            lr=lr,
            beta2_decay=beta2_decay,
            eps=eps,
            d=d,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        if torch.is_complex(param):
            raise RuntimeError("Adafactor does not support complex parameters")
        eps1, eps2 = group["eps"]
        if eps1 is None:
            # torch takes the machine epsilon of the group's first parameter with a gradient for all of them
            eps1 = torch.finfo(
                next(p for p in group["params"] if p.grad is not None).dtype
            ).eps
        adafactor_step(
            param,
            grad,
            state,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            beta2_decay=group["beta2_decay"],
            eps1=eps1,
            eps2=eps2,
            d=group["d"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
