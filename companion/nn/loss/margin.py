r"""The multi-class hinge loss with the contract of ``torch.nn.MultiMarginLoss``."""

import torch
from torch import Tensor

from companion.nn.loss._base import WeightedLoss, reduce


def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""The multi-class hinge (Weston–Watkins / Crammer–Singer style, torch's form) for scores x (N, C) or (C).

    .. math::
        \ell_n = \frac{1}{C} \sum_{i \ne y_n} w_{y_n} \max\big(0,\ \text{margin} - x_{n,y_n} + x_{n,i}\big)^p,
        \qquad p \in \{1, 2\}.

    A row costs nothing once its target's score beats every other score by the margin: unlike
    cross-entropy, the hinge stops pushing correctly classified examples. (As torch computes it, the
    weight multiplies the p-th power.)
    """
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    if not (
        input.dim() == 2
        and input.shape[1] != 0
        or input.dim() == 1
        and input.shape[0] != 0
    ):
        raise RuntimeError(
            f"Expected non-empty vector or matrix with optional 0-dim batch size, but got: {list(input.shape)}"
        )
    x = input if input.dim() == 2 else input.unsqueeze(0)
    n, classes = x.shape
    if target.dim() > 1 or target.numel() != n:
        raise RuntimeError(
            "multi_margin_loss: target tensor should be 1-D with size equal to the number of input samples "
            f"(batch size). Expected target size [{n}], but got {list(target.shape)}. "
            f"Input has shape {list(input.shape)}."
        )
    y = target.reshape(-1)
    if ((y < 0) | (y >= classes)).any():
        raise RuntimeError("target out of range")
    if weight is not None and weight.numel() != classes:
        raise RuntimeError(
            f"inconsistent weight size, expected {classes} but got {list(weight.shape)}"
        )
    # z_{n,i} = margin − x_{n,y_n} + x_{n,i}
    z = margin - x.gather(1, y.unsqueeze(1)) + x
    # max(0, z)^p, counting only i ≠ y_n (and, as torch, z = 0 passes no gradient)
    other = torch.arange(classes, device=x.device) != y.unsqueeze(1)
    h = torch.where((z > 0) & other, z, torch.zeros_like(z)) ** p
    if weight is not None:
        # w_{y_n} max(0, z)^p
        h = h * weight.to(x.dtype)[y].unsqueeze(1)
    # ℓ_n = (1/C) Σ_{i≠y_n} ...
    loss = h.sum(dim=1) / classes
    return reduce(loss if input.dim() == 2 else loss.squeeze(0), reduction)


class MultiMarginLoss(WeightedLoss):
    """The multi-class hinge loss, like ``torch.nn.MultiMarginLoss``; the math is :func:`multi_margin_loss`."""

    def __init__(
        self,
        p: int = 1,
        margin: float = 1.0,
        weight: Tensor | None = None,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        if p != 1 and p != 2:
            raise ValueError("only p == 1 and p == 2 supported")
        if weight is not None and weight.dim() != 1:
            raise ValueError(
                f"MultiMarginLoss: expected weight to be None or 1D tensor, got {weight.dim()}D instead"
            )
        self.p = p
        self.margin = margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return multi_margin_loss(
            input,
            target,
            p=self.p,
            margin=self.margin,
            weight=self.weight,
            reduction=self.reduction,
        )
