r"""Proximal steps: the soft threshold (L1), the hard threshold (L0) and singular-value soft-thresholding
(the nuclear norm of a weight matrix), and the wrappers :class:`ProximalL1`, :class:`ProximalL0` and
:class:`ProximalNuclear`, which apply one of them after every step of an optimizer.

A proximal step handles a non-smooth penalty exactly instead of differentiating it: after a gradient
step of size γ on the loss, the weights are moved to
:math:`\operatorname{prox}_{\gamma R}(w) = \arg\min_z \tfrac{1}{2\gamma}\lVert z - w\rVert^2 + R(z)`.
"""

from typing import Iterable

import torch
from torch import Tensor

from companion.regularization.penalties import (
    Params,
    check_lambda,
    penalized_parameters,
)


def soft_threshold(x: Tensor, threshold: float | Tensor) -> Tensor:
    r"""The proximal operator of :math:`t \lVert \cdot \rVert_1`, applied element-wise:

    .. math::
        S_t(x) = \operatorname{sign}(x)\, \max(|x| - t,\ 0)
        = \operatorname*{arg\,min}_z\ \tfrac12 (z - x)^2 + t\,|z| .

    Entries with :math:`|x| \le t` become exactly zero; the others move towards zero by :math:`t`.
    ``threshold`` is a number ≥ 0 or a tensor of such numbers that broadcasts to ``x``'s shape.
    """
    if isinstance(threshold, Tensor):
        try:
            shape = torch.broadcast_shapes(threshold.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ValueError(
                f"threshold of shape {tuple(threshold.shape)} does not broadcast to x's shape {tuple(x.shape)}"
            )
        if (threshold < 0).any():
            raise ValueError("threshold must be >= 0 everywhere")
    else:
        check_lambda(threshold, "threshold")
    # sign(x) · max(|x| − t, 0)
    return x.sign() * (x.abs() - threshold).clamp(min=0)


@torch.no_grad()
def l1_proximal_step(
    params: Params, lam: float, lr: float, *, include_bias: bool = False
) -> None:
    r"""The proximal step for :math:`\lambda \lVert w \rVert_1` after a gradient step of size γ (``lr``),
    in place: :math:`w \leftarrow S_{\gamma\lambda}(w)`.

    Together with a plain gradient step on the loss this is proximal gradient descent (ISTA): the
    penalty is never differentiated, and weights that the step would carry across zero land on it.
    """
    check_lambda(lam)
    check_lambda(lr, "lr")
    for w in penalized_parameters(params, include_bias):
        # w ← sign(w) · max(|w| − γλ, 0)
        w.copy_(soft_threshold(w, lr * lam))


def hard_threshold(x: Tensor, threshold: float) -> Tensor:
    r"""The proximal operator of :math:`\tfrac{t^2}{2} \lVert \cdot \rVert_0` (the number of non-zero entries), element-wise:

    .. math::
        H_t(x) = x\, \mathbb 1[|x| > t]
        \in \operatorname*{arg\,min}_z\ \tfrac12 (z - x)^2 + \tfrac{t^2}{2}\, \mathbb 1[z \ne 0] .

    Keeping :math:`x` costs :math:`t^2/2`, zeroing it costs :math:`x^2/2`: entries with :math:`|x| \le t` become zero
    (at :math:`|x| = t` both are minimizers; zero is chosen), the others are left *unchanged*, not shrunk.
    """
    check_lambda(threshold, "threshold")
    # x · 1[|x| > t]
    return x * (x.abs() > threshold).to(x.dtype)


@torch.no_grad()
def l0_proximal_step(
    params: Params, lam: float, lr: float, *, include_bias: bool = False
) -> None:
    r"""The proximal step for :math:`\lambda \lVert w \rVert_0` after a gradient step of size γ (``lr``), in place:
    :math:`w \leftarrow H_{\sqrt{2\gamma\lambda}}(w)`, since :math:`\gamma\lambda \lVert\cdot\rVert_0 = \tfrac{t^2}{2}\lVert\cdot\rVert_0`
    with :math:`t = \sqrt{2\gamma\lambda}`.

    The L0 "norm" is not convex, so proximal gradient descent with it (iterative hard thresholding) finds a
    stationary point, not necessarily the best sparse solution.
    """
    check_lambda(lam)
    check_lambda(lr, "lr")
    for w in penalized_parameters(params, include_bias):
        # w ← w · 1[|w| > √(2γλ)]
        w.copy_(hard_threshold(w, (2 * lr * lam) ** 0.5))


def singular_value_threshold(W: Tensor, threshold: float) -> Tensor:
    r"""The proximal operator of :math:`t \lVert \cdot \rVert_*` (the nuclear norm, the sum of the singular values)
    for a matrix, or a batch of matrices in the last two dimensions:

    .. math::
        W = U \operatorname{diag}(\sigma) V^\top \ \Rightarrow\
        \operatorname{prox}_{t\lVert\cdot\rVert_*}(W) = U \operatorname{diag}\big(\max(\sigma - t, 0)\big) V^\top ,

    the soft threshold applied to the singular values: those :math:`\le t` vanish, so the rank falls.
    """
    check_lambda(threshold, "threshold")
    if W.dim() < 2:
        raise ValueError(
            f"the nuclear norm needs a matrix, got a tensor of shape {tuple(W.shape)}"
        )
    # W = U diag(σ) Vᵀ
    U, sigma, Vh = torch.linalg.svd(W, full_matrices=False)
    # U diag(max(σ − t, 0)) Vᵀ
    return (U * (sigma - threshold).clamp(min=0).unsqueeze(-2)) @ Vh


@torch.no_grad()
def nuclear_proximal_step(params: Params, lam: float, lr: float) -> None:
    r"""The proximal step for :math:`\lambda \sum_\ell \lVert W_\ell \rVert_*` over the weight matrices, in place:
    :math:`W \leftarrow U \operatorname{diag}(\max(\sigma - \gamma\lambda, 0)) V^\top`. Each tensor with more than two
    dimensions (a convolution kernel) is treated as the matrix (out channels) × (everything else)."""
    check_lambda(lam)
    check_lambda(lr, "lr")
    for w in penalized_parameters(params):
        # W ← SVT_{γλ}(W), on W reshaped to (out, in)
        w.copy_(
            singular_value_threshold(w.reshape(len(w), -1), lr * lam).reshape(w.shape)
        )


def nuclear_norm(W: Tensor) -> Tensor:
    r"""The nuclear norm :math:`\lVert W \rVert_* = \sum_i \sigma_i(W)` of a matrix (the tensor reshaped to
    (first dimension) × (the rest))."""
    # Σ_i σ_i(W)
    return torch.linalg.svdvals(W.reshape(len(W), -1)).sum()


class ProximalL1:
    r"""Wrap an optimizer so that every ``step()`` is followed by the L1 proximal step
    :math:`w \leftarrow S_{\gamma\lambda}(w)` on the penalized parameters, with each parameter group's
    learning rate γ.

    ``params`` chooses the penalized tensors (default: the optimizer's tensors with ≥ 2 dimensions,
    i.e. the weights, as in :func:`~companion.regularization.penalties.penalized_parameters`). With plain SGD this is proximal SGD. With
    momentum μ the gradient part of the step is amplified up to :math:`1/(1-\mu)` times while the
    threshold is not, so a strength comparable to a subgradient penalty λ is about :math:`\lambda/(1-\mu)`.

    With an optimizer that scales each coordinate (Adam, RMSprop, Adagrad) the uniform threshold γλ is the
    proximal step in the *Euclidean* metric, not in the optimizer's: Adam's step is a gradient step in the
    metric :math:`D = \operatorname{diag}(\sqrt{\hat v} + \epsilon)/\gamma`, whose proximal step for λ‖w‖₁ is the soft
    threshold with the per-coordinate threshold :math:`\gamma\lambda / (\sqrt{\hat v_i} + \epsilon)`. The uniform
    threshold therefore shrinks coordinates with large gradients (large :math:`\hat v_i`) relatively more, and
    those with small gradients less, than the subgradient penalty λ‖w‖₁ inside Adam would. ``per_coordinate=True``
    uses the per-coordinate threshold, read from the optimizer's ``exp_avg_sq`` and ``step`` state (Adam's keys;
    the group's ``betas`` and ``eps``), for tensors that have that state.
    Everything else (``zero_grad``, ``param_groups``, ``state_dict``...) is the wrapped optimizer's.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lam: float,
        params: Iterable[Tensor] | None = None,
        *,
        per_coordinate: bool = False,
    ):
        check_lambda(lam)
        self.optimizer = optimizer
        self.lam = lam
        self.per_coordinate = per_coordinate
        if per_coordinate and any(
            "betas" not in g or "eps" not in g for g in optimizer.param_groups
        ):
            raise ValueError(
                "per_coordinate=True needs an Adam-like optimizer (groups with betas and eps)"
            )
        if params is None:
            params = [
                p for g in optimizer.param_groups for p in g["params"] if p.dim() >= 2
            ]
        self._penalized = {id(p) for p in params}
        known = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if not self._penalized <= known:
            raise ValueError("params must be tensors that the optimizer updates")

    @torch.no_grad()
    def prox(self, weights: list[Tensor], group: dict) -> None:
        """The proximal step for the penalized ``weights`` of one parameter group."""
        lr = float(group["lr"])
        if not self.per_coordinate:
            l1_proximal_step(weights, self.lam, lr)
            return
        beta2, eps = group["betas"][1], group["eps"]
        for w in weights:
            state = self.optimizer.state.get(w, {})
            if "exp_avg_sq" not in state:
                continue  # no step taken yet for this tensor: nothing to scale by
            t = float(state["step"])
            # γλ / (√(v_t / (1 − β₂ᵗ)) + ε), per coordinate
            threshold = (
                lr * self.lam / ((state["exp_avg_sq"] / (1 - beta2**t)).sqrt() + eps)
            )
            w.copy_(soft_threshold(w, threshold))

    def step(self, closure=None):
        """The wrapped optimizer's step, then the proximal step with each group's learning rate."""
        loss = self.optimizer.step(closure)
        for group in self.optimizer.param_groups:
            weights = [p for p in group["params"] if id(p) in self._penalized]
            if weights:
                self.prox(weights, group)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name):
        # param_groups, state, state_dict, load_state_dict, ... come from the wrapped optimizer
        return getattr(self.__dict__["optimizer"], name)


class ProximalL0(ProximalL1):
    r"""Like :class:`ProximalL1`, with the L0 proximal step :math:`w \leftarrow H_{\sqrt{2\gamma\lambda}}(w)` (hard
    threshold: small weights are set to zero, the others are left as they are). Euclidean metric only."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lam: float,
        params: Iterable[Tensor] | None = None,
    ):
        super().__init__(optimizer, lam, params)

    @torch.no_grad()
    def prox(self, weights: list[Tensor], group: dict) -> None:
        l0_proximal_step(weights, self.lam, float(group["lr"]))


class ProximalNuclear(ProximalL1):
    r"""Like :class:`ProximalL1`, with the nuclear-norm proximal step (singular-value soft-thresholding by γλ)
    on each penalized weight matrix: small singular values vanish and the layer's rank falls."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lam: float,
        params: Iterable[Tensor] | None = None,
    ):
        super().__init__(optimizer, lam, params)

    @torch.no_grad()
    def prox(self, weights: list[Tensor], group: dict) -> None:
        nuclear_proximal_step(weights, self.lam, float(group["lr"]))
