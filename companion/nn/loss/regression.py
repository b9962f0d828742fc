r"""Regression losses with the contract of ``torch.nn``: the squared error and Huber's loss."""

import warnings

import torch
from torch import Tensor

from companion.nn.loss._base import Loss, reduce


def _broadcast(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Input and target broadcast to one shape, with torch's warning when their sizes differ."""
    if target.size() != input.size():
        warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )
    return torch.broadcast_tensors(input, target)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    r"""The squared error, element by element, then reduced.

    .. math::
        \ell_i = (x_i - y_i)^2, \qquad
        \ell = \tfrac{1}{n}\textstyle\sum_i \ell_i \ \text{(mean)}, \quad \sum_i \ell_i \ \text{(sum)}.
    """
    x, y = _broadcast(input, target)
    # ℓ_i = (x_i − y_i)²
    return reduce((x - y) ** 2, reduction)


def huber_loss(
    input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0
) -> Tensor:
    r"""Huber's loss: quadratic for errors below δ, linear (with slope δ) above.

    .. math::
        \ell_i = \begin{cases} \tfrac12 d_i^2 & |d_i| < \delta \\
                 \delta\,(|d_i| - \tfrac12\delta) & \text{otherwise} \end{cases}
        \qquad d_i = x_i - y_i .

    Its gradient is :math:`d_i` clipped to :math:`[-\delta, \delta]`: the squared error near the
    target, the absolute error (robust to outliers) far from it.
    """
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    x, y = _broadcast(input, target)
    # d_i = x_i − y_i
    d = x - y
    # ½ d² inside the band |d| < δ, δ (|d| − ½ δ) outside it
    loss = torch.where(d.abs() < delta, 0.5 * d * d, delta * (d.abs() - 0.5 * delta))
    return reduce(loss, reduction)


class MSELoss(Loss):
    """The mean squared error, like ``torch.nn.MSELoss``; the math is :func:`mse_loss`."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class HuberLoss(Loss):
    """Huber's loss, like ``torch.nn.HuberLoss``; the math is :func:`huber_loss`."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        if not isinstance(delta, (float, int)):
            raise TypeError(f"delta must be a float or int, got: {type(delta)}")
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)
