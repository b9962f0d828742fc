"""Norm penalties (L1, L2, elastic net) and the L1 proximal step, written with plain tensor arithmetic.

A penalty is a function of a model (or of a list of tensors) that returns a scalar tensor to add to the
loss; ``companion.train.fit(..., penalty=functools.partial(l2_penalty, lam=1e-3))`` plugs one in.

**Which parameters are penalized.** Given a model, only the *weights* are: parameters with two or more
dimensions (the matrices of linear layers, the kernels of convolutions). Biases and the scales and
shifts of normalization layers (one-dimensional) are left alone, as is usual: they do not multiply
inputs, so shrinking them does not make the function smoother, and a penalty on a bias only pulls the
output towards zero. ``include_bias=True`` penalizes every parameter, which is what the
``weight_decay`` option of ``torch.optim`` does. Given a list of tensors, every tensor in it is penalized.
"""

from typing import Iterable

import torch
from torch import Tensor, nn

Params = nn.Module | Tensor | Iterable[Tensor]


def check_lambda(lam: float, name: str = "lam") -> None:
    """A regularization strength must be a number ≥ 0."""
    if isinstance(lam, Tensor) and lam.numel() != 1:
        raise ValueError(f"{name} must be a number or a 1-element tensor, got shape {tuple(lam.shape)}")
    if lam < 0:
        raise ValueError(f"Invalid regularization strength {name}: {float(lam)} (it must be >= 0)")


def penalized_parameters(params: Params, include_bias: bool = False) -> list[Tensor]:
    """The tensors a penalty applies to: a model's weights (parameters with ≥ 2 dimensions), or all of
    its parameters with ``include_bias=True``; a tensor or a list of tensors is taken as given."""
    if isinstance(params, nn.Module):
        tensors = [p for p in params.parameters() if include_bias or p.dim() >= 2]
    elif isinstance(params, Tensor):
        tensors = [params]
    else:
        tensors = list(params)
    if not tensors:
        raise ValueError("there are no parameters to penalize (a model without weights, or an empty list)")
    return tensors


def l1_penalty(params: Params, lam: float, *, include_bias: bool = False) -> Tensor:
    r"""The lasso penalty :math:`\lambda \lVert w \rVert_1 = \lambda \sum_i |w_i|`.

    Its gradient is :math:`\lambda\,\operatorname{sign}(w)` (autograd takes 0 at :math:`w_i = 0`).
    """
    check_lambda(lam)
    # λ Σ_i |w_i|, summed over every penalized tensor
    return lam * sum(w.abs().sum() for w in penalized_parameters(params, include_bias))


def l2_penalty(params: Params, lam: float, *, include_bias: bool = False) -> Tensor:
    r"""The ridge / weight-decay penalty :math:`\tfrac{\lambda}{2} \lVert w \rVert_2^2 = \tfrac{\lambda}{2} \sum_i w_i^2`.

    Its gradient is :math:`\lambda w`, so plain SGD on loss + penalty multiplies the weights by
    :math:`(1 - \gamma\lambda)` at every step: the update of ``torch.optim.SGD(weight_decay=λ)``.
    """
    check_lambda(lam)
    # (λ / 2) Σ_i w_i², summed over every penalized tensor
    return lam / 2 * sum(w.pow(2).sum() for w in penalized_parameters(params, include_bias))


def elastic_net_penalty(
    params: Params, lam: float, l1_ratio: float = 0.5, *, include_bias: bool = False
) -> Tensor:
    r"""The elastic net :math:`\lambda \big(\alpha \lVert w \rVert_1 + \tfrac{1 - \alpha}{2} \lVert w \rVert_2^2\big)`
    with mixing ratio :math:`\alpha` (``l1_ratio``): α = 1 is the lasso, α = 0 is ridge (scikit-learn's
    convention)."""
    check_lambda(lam)
    if not 0.0 <= l1_ratio <= 1.0:
        raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}")
    # λ α ‖w‖₁ + λ (1 − α) / 2 ‖w‖₂²
    return l1_penalty(params, lam * l1_ratio, include_bias=include_bias) + l2_penalty(
        params, lam * (1 - l1_ratio), include_bias=include_bias
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
def l1_proximal_step(params: Params, lam: float, lr: float, *, include_bias: bool = False) -> None:
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


class ProximalL1:
    r"""Wrap an optimizer so that every ``step()`` is followed by the L1 proximal step
    :math:`w \leftarrow S_{\gamma\lambda}(w)` on the penalized parameters, with each parameter group's
    learning rate γ.

    ``params`` chooses the penalized tensors (default: the optimizer's tensors with ≥ 2 dimensions,
    i.e. the weights, as in :func:`penalized_parameters`). With plain SGD this is proximal SGD. With
    momentum μ the gradient part of the step is amplified up to :math:`1/(1-\mu)` times while the
    threshold is not, so a strength comparable to a subgradient penalty λ is about :math:`\lambda/(1-\mu)`.
    Everything else (``zero_grad``, ``param_groups``, ``state_dict``...) is the wrapped optimizer's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lam: float, params: Iterable[Tensor] | None = None):
        check_lambda(lam)
        self.optimizer = optimizer
        self.lam = lam
        if params is None:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.dim() >= 2]
        self._penalized = {id(p) for p in params}
        known = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if not self._penalized <= known:
            raise ValueError("params must be tensors that the optimizer updates")

    def step(self, closure=None):
        """The wrapped optimizer's step, then the soft-threshold with each group's learning rate."""
        loss = self.optimizer.step(closure)
        for group in self.optimizer.param_groups:
            weights = [p for p in group["params"] if id(p) in self._penalized]
            if weights:
                l1_proximal_step(weights, self.lam, float(group["lr"]))
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name):
        # param_groups, state, state_dict, load_state_dict, ... come from the wrapped optimizer
        return getattr(self.__dict__["optimizer"], name)


def sparsity(params: Params, tol: float = 0.0, *, include_bias: bool = False) -> float:
    """The fraction of penalized entries with ``|w| <= tol`` (``tol=0``: exactly zero)."""
    tensors = penalized_parameters(params, include_bias)
    zeros = sum((w.detach().abs() <= tol).sum().item() for w in tensors)
    return zeros / sum(w.numel() for w in tensors)
