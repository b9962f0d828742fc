"""What every companion loss shares with torch's: the ``reduction`` argument (and the deprecated
``size_average`` / ``reduce`` pair it replaced), a ``weight`` buffer, and torch's checks and messages."""

import warnings

import torch
from torch import Tensor, nn

REDUCTIONS = ("none", "mean", "sum")

# torch's names of scalar types, as its C++ error messages print them
_TYPE_NAMES = {
    torch.float64: "Double",
    torch.float32: "Float",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    torch.int64: "Long",
    torch.int32: "Int",
    torch.int16: "Short",
    torch.int8: "Char",
    torch.uint8: "Byte",
    torch.bool: "Bool",
}


def type_name(dtype: torch.dtype) -> str:
    """``torch.int64`` → ``'Long'``: a dtype as torch's error messages name it."""
    return _TYPE_NAMES.get(dtype, str(dtype))


def legacy_reduction(size_average, reduce) -> str:
    """The ``reduction`` that the deprecated ``size_average`` and ``reduce`` stand for (None means True)."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead."
    )
    return reduction


def check_reduction(reduction: str) -> None:
    """torch's check, made when the loss is computed (not when it is built)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """Σ, mean, or the element-wise losses themselves. The mean of nothing is 0/0 = nan, as in torch."""
    check_reduction(reduction)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / loss.numel()
    return loss


class Loss(nn.Module):
    """Base of the losses: stores ``reduction``, derived from ``size_average``/``reduce`` if either is given."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            self.reduction = legacy_reduction(size_average, reduce)
        else:
            self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class WeightedLoss(Loss):
    """A loss with an optional per-class ``weight``, kept as a buffer named ``weight`` like torch's."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.weight: Tensor | None


def check_class_weight(weight: Tensor | None, classes: int, prefix: str = "") -> None:
    """A class weight must have one entry per class (torch's message, with torch's ``prefix``)."""
    if weight is not None and weight.numel() != classes:
        raise RuntimeError(
            f"{prefix}weight tensor should be defined either for all {classes} classes or no classes but got "
            f"weight tensor of shape: {list(weight.shape)}"
        )
