"""Dropout, written from scratch with the contract of ``torch.nn.Dropout``, and the original
"scale at test time" convention for comparison."""

import torch
from torch import Tensor, nn

from companion.core.checks import check


def check_p(p: float) -> None:
    """torch's check and message for a dropout probability."""
    check(0 <= p <= 1, f"dropout probability has to be between 0 and 1, but got {p}")


def keep_mask(input: Tensor, keep: float) -> Tensor:
    r"""A Bernoulli(``keep``) mask shaped like ``input``: :math:`r_i = \mathbb 1[u_i < q]`, with one
    uniform :math:`u_i \sim U[0, 1)` drawn in double precision per element, in ``input``'s memory order.

    This is how PyTorch's CPU ``bernoulli_(q)`` samples, so on the CPU the mask equals the one
    ``torch.nn.Dropout`` draws from the same seed, bit for bit (checked in ``tests/test_dropout.py``).
    On CUDA torch uses a fused kernel with another random stream: the masks have the same law but differ.
    """
    # u_i ~ U[0, 1) in float64, laid out like the input (empty_like keeps its strides)
    u = torch.empty_like(input, dtype=torch.float64).uniform_()
    # r_i = 1[u_i < q], in the input's dtype
    return (u < keep).to(input.dtype)


def dropout(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    r"""Inverted dropout, like ``torch.nn.functional.dropout``:

    .. math::
        y_i = \frac{r_i}{1 - p}\, x_i, \qquad r_i \sim \text{Bernoulli}(1 - p)\ \text{independently},

    so that :math:`\mathbb E[y_i] = x_i` and the layer is the identity at evaluation (``training=False``).
    The gradient is the same mask times the incoming gradient; autograd derives it from the product.
    """
    check_p(p)
    # identity: evaluation, nothing to drop, or nothing to draw (and no random number is used)
    if p == 0 or not training or input.numel() == 0:
        return input
    # p = 1 drops everything: y = x · 0 (so inf and nan inputs give nan, as in torch)
    if p == 1:
        zero = torch.zeros((), dtype=input.dtype, device=input.device)
        return input.mul_(zero) if inplace else input * zero
    # m_i = r_i / (1 − p) with r_i ~ Bernoulli(1 − p)
    noise = keep_mask(input, 1 - p).div_(1 - p)
    # y = m ⊙ x
    return input.mul_(noise) if inplace else input * noise


def dropout_scaled_at_test(
    input: Tensor, p: float = 0.5, training: bool = True
) -> Tensor:
    r"""Dropout in the convention of the original papers (Hinton et al. 2012, Srivastava et al. 2014):

    .. math::
        \text{training: } y_i = r_i\, x_i, \qquad \text{test: } y_i = (1 - p)\, x_i ,

    i.e. no rescaling while training, and every unit multiplied by its keep probability at test time.
    Both conventions give :math:`\mathbb E[y_{\text{train}}] = y_{\text{test}}`; inverted dropout
    (:func:`dropout`) moves the factor :math:`1/(1-p)` into training so that testing needs no change.
    The mask is drawn exactly as in :func:`dropout`.
    """
    check_p(p)
    if not training:
        # test: y = (1 − p) x
        return input * (1 - p)
    # training: y = r ⊙ x with r_i ~ Bernoulli(1 − p)
    return input * keep_mask(input, 1 - p)


class Dropout(nn.Module):
    r"""During training, zero each element with probability ``p`` and scale the survivors by
    :math:`1/(1-p)`; in eval mode, the identity. Like ``torch.nn.Dropout``: the same arguments,
    defaults, ValueError and repr, and on the CPU the same masks from the same seed.
    The computation is :func:`dropout`.
    """

    __constants__ = ["p", "inplace"]
    p: float
    inplace: bool

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        check_p(p)
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class DropoutScaledAtTest(nn.Module):
    r"""Dropout in the original convention: multiply by the mask while training (no rescaling) and by
    the keep probability :math:`1 - p` in eval mode. See :func:`dropout_scaled_at_test`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_p(p)
        self.p = p

    def forward(self, input: Tensor) -> Tensor:
        return dropout_scaled_at_test(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
