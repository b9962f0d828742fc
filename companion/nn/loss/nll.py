r"""The negative log-likelihood loss with the contract of ``torch.nn.NLLLoss``, and the shape, dtype
and range checks that it shares with :class:`~companion.nn.loss.cross_entropy.CrossEntropyLoss`.

Both losses accept an input of shape (C) with a 0-d target, (N, C) with a target (N), or
(N, C, d_1, ..., d_K) with a target (N, d_1, ..., d_K). Here the class axis is moved last and the
rest is flattened, so that every loss is computed on *rows*: a matrix (M, C) of scores and a vector
(M) of class indices.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from companion.nn.loss._base import (
    WeightedLoss,
    check_class_weight,
    check_reduction,
    type_name,
)


class ClassRows(NamedTuple):
    """An (N, C, d_1, ...) input and its class-index target as rows."""

    scores: Tensor
    """(M, C): one row of class scores per position."""
    index: Tensor
    """(M,): the target class of each row, 0 where the row is ignored (so that it can index)."""
    kept: Tensor
    """(M,) bool: rows whose target is not ``ignore_index``."""
    shape: torch.Size
    """The target's shape, that of the unreduced loss."""


def as_rows(input: Tensor) -> Tensor:
    """(C) → (1, C); (N, C, d_1, ...) → (N·d_1⋯, C): the class axis last, everything else flattened."""
    if input.dim() == 1:
        return input.unsqueeze(0)
    return input.movedim(1, -1).reshape(-1, input.shape[1])


def class_rows(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int
) -> ClassRows:
    """Check a class-index target against its input as torch does (same errors), and return the rows."""
    if input.dim() < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.dim()})")
    if input.dim() != 1 and (target.dim() == 0 or input.shape[0] != target.shape[0]):
        got = target.shape[0] if target.dim() else 1
        raise ValueError(
            f"Expected input batch_size ({input.shape[0]}) to match target batch_size ({got})."
        )
    if input.dim() <= 2 and target.dim() > 1:
        raise RuntimeError(
            "0D or 1D target tensor expected, multi-target not supported"
        )
    if input.dim() > 2 and target.shape != input.shape[:1] + input.shape[2:]:
        raise RuntimeError(
            f"size mismatch (got input: {list(input.shape)} , target: {list(target.shape)}"
        )
    if target.dtype not in (torch.int64, torch.uint8):
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {type_name(target.dtype)}"
        )
    classes = input.shape[0] if input.dim() == 1 else input.shape[1]
    check_class_weight(weight, classes)
    y = target.reshape(-1).long()
    kept = y != ignore_index
    outside = kept & ((y < 0) | (y >= classes))
    if outside.any():
        raise IndexError(f"Target {y[outside][0].item()} is out of bounds.")
    return ClassRows(as_rows(input), torch.where(kept, y, 0), kept, target.shape)


def target_weights(rows: ClassRows, weight: Tensor | None) -> Tensor:
    r"""(M,): :math:`w_{y_n}` for every kept row, 0 for an ignored one (1 for all classes without ``weight``)."""
    if weight is None:
        return rows.kept.to(rows.scores.dtype)
    return weight.to(rows.scores.dtype)[rows.index] * rows.kept


def reduce_rows(
    loss: Tensor, rows: ClassRows, weights: Tensor, reduction: str
) -> Tensor:
    r"""Reduce per-row losses: ``sum``; ``mean`` divides by :math:`\sum_n w_{y_n}` over the kept rows;
    ``none`` restores the target's shape.

    When every target is ignored, the mean is 0/0 = nan, and yet (torch's convention) its gradient is
    0, not nan: the nan is added as a constant and the sum is divided by 1 instead of 0."""
    check_reduction(reduction)
    if reduction == "none":
        return loss.reshape(rows.shape)
    if reduction == "sum":
        return loss.sum()
    total = weights.sum()
    nothing = total == 0
    # Σ_n ℓ_n / Σ_n w_{y_n}  (nan, with a zero gradient, when the denominator is 0)
    return loss.sum() / torch.where(nothing, 1.0, total) + torch.where(
        nothing, torch.nan, 0.0
    )


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""The negative log-likelihood of the target classes, given log-probabilities ``input``.

    .. math::
        \ell_n = -\,w_{y_n}\, x_{n, y_n}, \qquad
        \ell = \frac{\sum_n \ell_n}{\sum_n w_{y_n}} \ \text{(mean)},

    where rows with :math:`y_n` = ``ignore_index`` have :math:`w_{y_n} = 0` (they count in neither sum).
    """
    check_reduction(reduction)
    rows = class_rows(input, target, weight, ignore_index)
    # w_{y_n}, zero for ignored rows
    w = target_weights(rows, weight)
    # ℓ_n = −w_{y_n} x_{n, y_n}
    loss = -w * rows.scores.gather(1, rows.index.unsqueeze(1)).squeeze(1)
    return reduce_rows(loss, rows, w, reduction)


class NLLLoss(WeightedLoss):
    """The negative log-likelihood loss, like ``torch.nn.NLLLoss``; the math is :func:`nll_loss`."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
