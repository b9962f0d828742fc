r"""Softmax cross-entropy with the contract of ``torch.nn.CrossEntropyLoss``, and its hand-written backward.

Every form of the loss — class-index or class-probability targets, class weights, ignored targets,
label smoothing — is one per-row formula with non-negative coefficients :math:`a_{n,c}` that do not
depend on the scores:

.. math::
    \ell_n = -\sum_c a_{n,c} \log p_{n,c}, \qquad p_n = \operatorname{softmax}(z_n),

computed by :class:`CrossEntropyFunction`; :func:`cross_entropy` only builds :math:`a` and reduces.
"""

import torch
from torch import Tensor
from torch.autograd import Function

from companion.nn.loss._base import (
    WeightedLoss,
    check_class_weight,
    check_reduction,
    reduce,
    type_name,
)
from companion.nn.loss.nll import as_rows, class_rows, reduce_rows, target_weights


def log_softmax_rows(z: Tensor) -> Tensor:
    r"""log softmax along the last axis through the log-sum-exp trick, never overflowing.

    .. math::
        \log p_c = z_c - m - \log \sum_k e^{z_k - m}, \qquad m = \max_k z_k ,

    so every exponent is ≤ 0 and the largest term of the sum is exactly 1. The shift m is a constant
    for differentiation (the result does not depend on it), hence ``detach``.
    """
    # m = max_k z_k (the result does not depend on m)
    m = z.detach().amax(dim=-1, keepdim=True)
    # z_c − m ≤ 0
    shifted = z - m
    # log p_c = (z_c − m) − log Σ_k e^{z_k − m}
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


class CrossEntropyFunction(Function):
    r"""Per-row cross-entropy between scores z (M, C) and target coefficients a (M, C).

    .. math::
        \ell_n = -\sum_c a_{n,c} \log p_{n,c}, \qquad
        \frac{\partial \ell_n}{\partial z_{n,c}} = \Big(\sum_k a_{n,k}\Big)\, p_{n,c} - a_{n,c}, \qquad
        \frac{\partial \ell_n}{\partial a_{n,c}} = -\log p_{n,c} .

    When the coefficients of a row sum to 1 (a distribution), the gradient is *softmax minus target*,
    :math:`p_n - a_n`: bounded by 1 however large the scores, and zero only when p matches the target.
    The backward recomputes :math:`\log p` from the saved z with differentiable operations, so autograd
    can differentiate it again (``gradgradcheck``).
    """

    @staticmethod
    def forward(ctx, z: Tensor, a: Tensor) -> Tensor:
        ctx.save_for_backward(z, a)
        # ℓ_n = −Σ_c a_{n,c} log p_{n,c}
        return -(a * log_softmax_rows(z)).sum(dim=-1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, a = ctx.saved_tensors
        log_p = log_softmax_rows(z)
        g = grad.unsqueeze(-1)
        grad_z = grad_a = None
        if ctx.needs_input_grad[0]:
            # ∂ℓ_n/∂z_{n,c} = (Σ_k a_{n,k}) p_{n,c} − a_{n,c}
            grad_z = g * (a.sum(dim=-1, keepdim=True) * log_p.exp() - a)
        if ctx.needs_input_grad[1]:
            # ∂ℓ_n/∂a_{n,c} = −log p_{n,c}
            grad_a = -g * log_p
        return grad_z, grad_a


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Softmax cross-entropy, torch's way. With ε = ``label_smoothing`` and C classes:

    .. math::
        \text{class index } y_n:\quad
        a_{n,c} &= (1-\varepsilon)\, w_{y_n} [c = y_n] + \tfrac{\varepsilon}{C}\, w_c
        \ (0 \text{ if } y_n \text{ is ignored}), \quad
        \ell = \frac{\sum_n \ell_n}{\sum_n w_{y_n}} \ \text{(mean)} \\
        \text{class probabilities } t_n:\quad
        a_{n,c} &= w_c \big((1-\varepsilon)\, t_{n,c} + \tfrac{\varepsilon}{C}\big), \quad
        \ell = \tfrac{1}{M}\textstyle\sum_n \ell_n \ \text{(mean)}

    A target with the input's shape holds probabilities; otherwise class indices. As in torch, a
    negative ε means no smoothing.
    """
    check_reduction(reduction)
    if label_smoothing > 1.0:
        raise RuntimeError(
            f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}"
        )
    eps = max(float(label_smoothing), 0.0)
    if input.shape == target.shape:
        return _with_probabilities(input, target, weight, ignore_index, reduction, eps)
    rows = class_rows(input, target, weight, ignore_index)
    classes = rows.scores.shape[1]
    w_y = target_weights(rows, weight)
    w = (
        torch.ones(classes, dtype=input.dtype, device=input.device)
        if weight is None
        else weight.to(input.dtype)
    )
    one_hot = (
        torch.arange(classes, device=input.device) == rows.index.unsqueeze(1)
    ).to(input.dtype)
    # a_{n,c} = (1 − ε) w_{y_n} [c = y_n] + (ε / C) w_c, zero on ignored rows
    a = (1 - eps) * w_y.unsqueeze(1) * one_hot + (
        eps / classes
    ) * w * rows.kept.unsqueeze(1)
    loss = CrossEntropyFunction.apply(rows.scores, a)
    return reduce_rows(loss, rows, w_y, reduction)


def _with_probabilities(input, target, weight, ignore_index, reduction, eps):
    """The class-probability form: ``target`` holds one distribution per position."""
    if ignore_index != -100:
        raise RuntimeError("ignore_index is not supported for floating point target")
    if not target.is_floating_point():
        raise RuntimeError(
            f"Expected floating point type for target with class probabilities, got {type_name(target.dtype)}"
        )
    classes = (
        input.shape[1]
        if input.dim() >= 2
        else input.shape[0]
        if input.dim() == 1
        else 1
    )
    check_class_weight(weight, classes, prefix="cross_entropy: ")
    t = (
        as_rows(target.to(input.dtype))
        if input.dim()
        else target.to(input.dtype).reshape(1, 1)
    )
    if eps > 0:
        # t ← (1 − ε) t + ε / C
        t = (1 - eps) * t + eps / classes
    # a_{n,c} = w_c t_{n,c}
    a = t if weight is None else t * weight.to(input.dtype)
    scores = as_rows(input) if input.dim() else input.reshape(1, 1)
    loss = CrossEntropyFunction.apply(scores, a)
    return reduce(
        loss.reshape(input.shape[:1] + input.shape[2:] if input.dim() > 1 else ()),
        reduction,
    )


class CrossEntropyLoss(WeightedLoss):
    """Softmax cross-entropy, like ``torch.nn.CrossEntropyLoss``; the math is :func:`cross_entropy`."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )
