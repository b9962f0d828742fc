"""Norm penalties (L1, L2, elastic net), written with plain tensor arithmetic.

A penalty is a function of a model (or of a list of tensors) that returns a scalar tensor to add to the
loss; ``companion.core.train.fit(..., penalty=functools.partial(l2_penalty, lam=1e-3))`` plugs one in.

**Which parameters are penalized.** Given a model, only the *weights* are: parameters with two or more
dimensions (the matrices of linear layers, the kernels of convolutions). Biases and the scales and
shifts of normalization layers (one-dimensional) are left alone, as is usual: they do not multiply
inputs, so shrinking them does not make the function smoother, and a penalty on a bias only pulls the
output towards zero. ``include_bias=True`` penalizes every parameter, which is what the
``weight_decay`` option of ``torch.optim`` does. Given a list of tensors, every tensor in it is penalized.
"""

from typing import Iterable

from torch import Tensor, nn

from companion.core.checks import check

Params = nn.Module | Tensor | Iterable[Tensor]


def check_lambda(lam: float, name: str = "lam") -> None:
    """A regularization strength must be a number ≥ 0."""
    check(
        not (isinstance(lam, Tensor) and lam.numel() != 1),
        f"{name} must be a number or a 1-element tensor, got shape {tuple(getattr(lam, 'shape', ()))}",
    )
    check(
        lam >= 0,
        f"Invalid regularization strength {name}: {float(lam)} (it must be >= 0)",
    )


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
        raise ValueError(
            "there are no parameters to penalize (a model without weights, or an empty list)"
        )
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
    return (
        lam
        / 2
        * sum(w.pow(2).sum() for w in penalized_parameters(params, include_bias))
    )


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


def sparsity(params: Params, tol: float = 0.0, *, include_bias: bool = False) -> float:
    """The fraction of penalized entries with ``|w| <= tol`` (``tol=0``: exactly zero)."""
    tensors = penalized_parameters(params, include_bias)
    zeros = sum((w.detach().abs() <= tol).sum().item() for w in tensors)
    return zeros / sum(w.numel() for w in tensors)
