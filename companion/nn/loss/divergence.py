r"""The Kullback–Leibler divergence loss with the contract of ``torch.nn.KLDivLoss``."""

import warnings

import torch
from torch import Tensor

from companion.nn.loss._base import Loss, REDUCTIONS


def kl_div(
    input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False
) -> Tensor:
    r"""The pointwise KL divergence of the target from the model, with ``input`` = log q (log-probabilities).

    .. math::
        \ell_i = t_i\,(\log t_i - x_i) \quad(\text{with } 0 \log 0 = 0), \qquad
        \ell_i = e^{t_i}\,(t_i - x_i) \ \text{if } t \text{ is given as } \log t \ (\mathtt{log\_target}).

    Summed over a row, :math:`\sum_c t_c(\log t_c - \log q_c) = \mathrm{KL}(t \,\|\, q)`. Reductions:
    ``sum``; ``batchmean`` = sum / N (the batch size, the first axis), the true mean KL divergence;
    ``mean`` = sum / (number of elements), which torch warns about, and so do we.
    """
    if reduction not in REDUCTIONS + ("batchmean",):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            stacklevel=2,
        )
    if log_target:
        # ℓ_i = e^{t_i} (t_i − x_i), t given as log t
        loss = target.exp() * (target - input)
    else:
        # t log t with 0 log 0 = 0: log is taken of 1 where t = 0 (a negative t still gives nan)
        t_log_t = (
            target * torch.where(target == 0, torch.ones_like(target), target).log()
        )
        # ℓ_i = t_i log t_i − t_i x_i
        loss = t_log_t - target * input
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / loss.numel()
    # batchmean: Σ_i ℓ_i / N
    return loss.sum() / input.shape[0] if input.dim() != 0 else loss.sum()


class KLDivLoss(Loss):
    """The KL divergence loss, like ``torch.nn.KLDivLoss``; the math is :func:`kl_div`."""

    def __init__(
        self,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
        log_target: bool = False,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return kl_div(
            input, target, reduction=self.reduction, log_target=self.log_target
        )
