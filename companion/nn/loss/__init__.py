"""Losses written from scratch with the contract of ``torch.nn``'s: same names, arguments, defaults,
``weight`` buffers, reductions and errors. The math of each is a function of the same name as torch's
functional form (``cross_entropy``, ``nll_loss``, ...), with its equation in the docstring."""

from companion.nn.loss.cross_entropy import (
    CrossEntropyFunction,
    CrossEntropyLoss,
    cross_entropy,
    log_softmax_rows,
)
from companion.nn.loss.divergence import KLDivLoss, kl_div
from companion.nn.loss.margin import MultiMarginLoss, multi_margin_loss
from companion.nn.loss.nll import NLLLoss, nll_loss
from companion.nn.loss.regression import HuberLoss, MSELoss, huber_loss, mse_loss

__all__ = [
    "MSELoss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "KLDivLoss",
    "MultiMarginLoss",
    "mse_loss",
    "huber_loss",
    "cross_entropy",
    "nll_loss",
    "kl_div",
    "multi_margin_loss",
    "CrossEntropyFunction",
    "log_softmax_rows",
]
