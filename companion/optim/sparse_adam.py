"""SparseAdam: lazy Adam for sparse gradients (an embedding's), which updates the moments and the parameter only
where the gradient has entries, written from scratch with the contract of ``torch.optim.SparseAdam``."""

import math

import torch
from torch import Tensor

from companion.core.checks import check
from companion.optim._base import PerTensorOptimizer, check_betas

DENSE_GRADIENT_MESSAGE = (
    "SparseAdam does not support dense gradients, please consider Adam instead"
)


def sparse_adam_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    maximize: bool,
) -> None:
    r"""One lazy Adam step for one dense parameter with a sparse gradient, in place (as torch computes it).

    With :math:`S` the entries the gradient holds (an embedding's looked-up rows; a row looked up several
    times in a batch holds the sum of its gradients), and every entry outside :math:`S` left as it is:

    .. math::
        t &\leftarrow t + 1 \\
        g_S &= \pm\nabla_S f(\theta_{t-1}) \\
        m_S &\leftarrow \beta_1 m_S + (1 - \beta_1)\, g_S \\
        v_S &\leftarrow \beta_2 v_S + (1 - \beta_2)\, g_S^2 \\
        \theta_S &\leftarrow \theta_S - \gamma\, \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}\,
            \frac{m_S}{\sqrt{v_S} + \epsilon}

    with learning rate γ, betas β₁, β₂ and ε. Unlike Adam, the moments of an entry outside S do not decay: a
    row's m and v are those of the steps that touched it, while the bias correction uses the parameter's
    step count t. ``state`` holds torch's keys ``step`` (t, a Python int, counted even for a gradient with
    no entries), ``exp_avg`` (m) and ``exp_avg_sq`` (v); they are created on the first call.
    """
    if not grad.is_sparse:
        raise RuntimeError(DENSE_GRADIENT_MESSAGE)
    if not state:
        # t = 0, m = v = 0
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(
            param, memory_format=torch.preserve_format
        )
    # t ← t + 1
    state["step"] += 1
    t = state["step"]
    # g = ∇f(θ), or −∇f(θ) to maximize f; repeated indices summed, so that each entry of S appears once
    g = (-grad if maximize else grad).coalesce()
    if g.values().numel() == 0:
        return  # S is empty: nothing to update
    # S as an index into the dense tensors: one index tensor per sparse dimension; g_S, the gradient's entries
    S, g_S = tuple(g.indices()), g.values()
    m, v = state["exp_avg"], state["exp_avg_sq"]
    # m_S ← m_S + (1 − β₁)(g_S − m_S)   (= β₁ m_S + (1 − β₁) g_S)
    m_S = m[S]
    m_S = m_S + (g_S - m_S) * (1 - beta1)
    m[S] = m_S
    # v_S ← v_S + (1 − β₂)(g_S² − v_S)   (= β₂ v_S + (1 − β₂) g_S²)
    v_S = v[S]
    v_S = v_S + (g_S**2 - v_S) * (1 - beta2)
    v[S] = v_S
    # γ √(1 − β₂ᵗ) / (1 − β₁ᵗ), the bias-corrected step size (in γ's dtype when γ is a tensor)
    lr = lr.squeeze() if isinstance(lr, Tensor) else lr
    step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    # θ_S ← θ_S − step_size · m_S / (√v_S + ε)
    param[S] = param[S] + -step_size * (m_S / (v_S.sqrt() + eps))


class SparseAdam(PerTensorOptimizer):
    """Lazy Adam for sparse gradients, like ``torch.optim.SparseAdam``: the same arguments, defaults, ValueErrors
    (also for sparse or complex parameters), parameter-group keys and state keys, so state_dicts move between the
    two. A dense gradient is refused with torch's RuntimeError.

    Use it for parameters whose gradients come sparse, such as ``nn.Embedding(..., sparse=True)``. One
    difference in an error case: a dense gradient raises when its parameter's turn comes, after the parameters
    before it have been stepped, while torch checks a whole group before stepping any of it. The update itself
    is :func:`sparse_adam_step`.
    """

    sparse_gradients = (
        True  # the sparse gradients are passed on; sparse_adam_step refuses dense ones
    )

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        maximize: bool = False,
    ) -> None:
        check(
            not (isinstance(lr, Tensor) and lr.numel() != 1),
            "Tensor lr must be 1-element",
        )
        check(0.0 < lr, f"Invalid learning rate: {lr}")
        check(0.0 < eps, f"Invalid epsilon value: {eps}")
        check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))
        # [group index, index in the group] of each parameter torch refuses
        where = [
            (i, j, p)
            for i, group in enumerate(self.param_groups)
            for j, p in enumerate(group["params"])
        ]
        sparse = [[i, j] for i, j, p in where if p.is_sparse]
        check(
            not sparse,
            f"Sparse params at indices {sparse}: SparseAdam requires dense parameter tensors",
        )
        complex_ = [[i, j] for i, j, p in where if p.is_complex()]
        check(
            not complex_,
            f"Complex params at indices {complex_}: SparseAdam does not support complex parameters",
        )

    def update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        sparse_adam_step(
            param,
            grad,
            state,
            lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            maximize=group["maximize"],
        )
