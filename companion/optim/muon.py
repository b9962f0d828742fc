"""Muon (Jordan et al., 2024): momentum whose update is orthogonalized by a Newton–Schulz iteration, for the 2-D
weights of hidden layers, written from scratch with the contract of ``torch.optim.Muon``."""

import math

import torch
from torch import Tensor

from companion.core.checks import check
from companion.optim._base import PerTensorOptimizer

NS_COEFFICIENTS = (
    3.4445,
    -4.7750,
    2.0315,
)  # torch's (and Jordan's) quintic, tuned for a steep slope at 0
NS_EPS = 1e-7
NS_STEPS = 5


def newton_schulz(
    g: Tensor,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    steps: int = NS_STEPS,
    eps: float = NS_EPS,
) -> Tensor:
    r"""The orthogonalization of a matrix G = U S Vᵀ towards U Vᵀ by ``steps`` quintic Newton–Schulz iterations,
    in bfloat16 as torch computes it:

    .. math::
        X_0 &= G / \max(\lVert G\rVert_F, \epsilon) \qquad (G^\top \text{ if } G \text{ has more rows than columns}) \\
        A_k &= X_k X_k^\top, \qquad X_{k+1} = a X_k + (b A_k + c A_k^2)\, X_k

    Each iteration maps every singular value σ of X to aσ + bσ³ + cσ⁵, leaving U and V alone. Dividing by
    the Frobenius norm puts every σ in [0, 1]; with torch's (a, b, c) = (3.4445, −4.7750, 2.0315) the slope
    at 0 is a = 3.4, so small singular values grow fast, and after 5 steps all of them lie roughly in
    [0.7, 1.2] rather than at exactly 1, which does not hurt training. The result has G's shape, in bfloat16.
    """
    check(
        steps < 100,
        "Number of steps must be less than 100 for computational efficiency",
    )
    check(g.dim() == 2, "Input tensor gradient must be a 2D matrix")
    check(len(coefficients) == 3, "Coefficients must be a tuple of exactly 3 values")
    a, b, c = coefficients
    # X₀ = G in bfloat16, transposed to be wide (then X Xᵀ is the smaller Gram matrix)
    x = g.bfloat16()
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    # X₀ ← X₀ / max(‖X₀‖_F, ε): every singular value in [0, 1]
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        # A_k = X_k X_kᵀ
        gram = x @ x.T
        # B_k = b A_k + c A_k²
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        # X_{k+1} = a X_k + B_k X_k   (σ ↦ aσ + bσ³ + cσ⁵)
        x = torch.addmm(x, poly, x, beta=a)
    # back to G's shape
    return x.T if tall else x


def adjusted_lr(lr: float | Tensor, adjust_lr_fn: str | None, shape) -> float | Tensor:
    r"""The learning rate scaled for an A × B matrix, so that orthogonalized updates of different shapes have
    comparable sizes: ``"original"`` (Jordan's, also for None) :math:`\gamma\sqrt{\max(1, A/B)}`;
    ``"match_rms_adamw"`` (Moonshot's, to reuse AdamW's rate and decay) :math:`0.2\,\gamma\sqrt{\max(A, B)}`."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        # γ √max(1, A/B)
        return lr * math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        # 0.2 γ √max(A, B)
        return lr * (0.2 * math.sqrt(max(rows, cols)))
    # any other name (the constructor refuses them): γ unchanged, as in torch
    return lr * 1.0


def muon_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    ns_coefficients: tuple[float, float, float],
    eps: float,
    ns_steps: int,
    adjust_lr_fn: str | None,
) -> None:
    r"""One Muon step for one 2-D parameter, in place (as torch computes it).

    .. math::
        B_t &= \mu B_{t-1} + (1 - \mu)\, g_t \\
        \tilde B_t &= (1 - \mu)\, g_t + \mu B_t \quad\text{(Nesterov)} \qquad\text{or}\qquad \tilde B_t = B_t \\
        O_t &= \mathrm{NS}^{(a, b, c)}_k(\tilde B_t;\ \epsilon) \\
        \theta_t &= (1 - \gamma\lambda)\, \theta_{t-1} - \gamma'\, O_t

    with learning rate γ, γ' = :func:`adjusted_lr` (γ, shape), momentum μ, decoupled weight decay λ and
    :func:`newton_schulz`'s k iterations with coefficients (a, b, c) and ε. ``state`` holds torch's single
    key ``momentum_buffer`` (B), created on the first call; there is no step count.
    """
    check(grad.dim() == 2, "Param gradient must be a 2D matrix")
    if not state:
        # B_0 = 0
        state["momentum_buffer"] = torch.zeros_like(
            grad, memory_format=torch.preserve_format
        )
    buf = state["momentum_buffer"]
    # a 1-element tensor lr is used as torch uses it, a 0-dim tensor (its factors then round in its dtype)
    lr = lr.squeeze() if isinstance(lr, Tensor) else lr
    # B_t = μ B_{t−1} + (1 − μ) g_t   (as a lerp: B + (1 − μ)(g − B))
    buf.lerp_(grad, 1 - momentum)
    # B̃_t = (1 − μ) g_t + μ B_t with Nesterov, else B_t
    update = grad.lerp(buf, momentum) if nesterov else buf
    # O_t = NS(B̃_t): the orthogonalized update, in bfloat16
    update = newton_schulz(update, ns_coefficients, ns_steps, eps)
    # γ' for this matrix's shape
    step_size = adjusted_lr(lr, adjust_lr_fn, param.shape)
    # θ ← (1 − γλ) θ   (decoupled, with the unadjusted γ)
    param.mul_(1 - lr * weight_decay)
    # θ ← θ − γ' O_t
    param.add_(update, alpha=-step_size)


class Muon(PerTensorOptimizer):
    """Muon, like ``torch.optim.Muon``: the same arguments, defaults, ValueErrors, parameter-group keys and
    state key (``momentum_buffer``), so state_dicts move between the two. Like torch's, it refuses parameters
    that are not 2-D matrices at construction (biases and embeddings belong to another optimizer, e.g. AdamW)
    and complex ones at the step. The update itself is :func:`muon_step`.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = NS_EPS,
        ns_steps: int = NS_STEPS,
        adjust_lr_fn: str | None = None,
    ) -> None:
        check(
            not (isinstance(lr, Tensor) and lr.numel() != 1),
            "Tensor lr must be 1-element",
        )
        check(0.0 <= lr, f"Learning rate should be >= 0 but is: {lr}")
        check(0.0 <= momentum, f"momentum should be >= 0 but is: {momentum}")
        check(
            0.0 <= weight_decay, f"weight decay should be >= 0 but is: {weight_decay}"
        )
        check(
            adjust_lr_fn in (None, "original", "match_rms_adamw"),
            f"Adjust learning rate function {adjust_lr_fn} is not supported",
        )
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                check(
                    p.ndim == 2,
                    f"Muon only supports 2D parameters whereas we found a parameter with size: {p.size()}",
                )

    def update(self, param, grad, state, group):
        if torch.is_complex(param):
            raise RuntimeError("Muon does not support complex parameters")
        muon_step(
            param,
            grad,
            state,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            nesterov=group["nesterov"],
            ns_coefficients=group["ns_coefficients"],
            eps=group["eps"],
            ns_steps=group["ns_steps"],
            adjust_lr_fn=group["adjust_lr_fn"],
        )
