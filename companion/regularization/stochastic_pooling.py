r"""Stochastic pooling (Zeiler & Fergus, 2013): a pooling layer that samples instead of taking the maximum.

For a window of non-negative activations :math:`a_1, \dots, a_K` (after a ReLU), training draws one element with
probability proportional to its value and outputs it; evaluation outputs the probability-weighted average:

.. math::

    p_i = \frac{a_i}{\sum_k a_k}, \qquad
    \text{training: } s = a_I,\ I \sim \text{Categorical}(p_1, \dots, p_K), \qquad
    \text{evaluation: } s = \sum_i p_i a_i = \frac{\sum_i a_i^2}{\sum_i a_i},

with :math:`s = 0` for a window of zeros. Like max pooling, the training output is one of the window's elements, so
the gradient reaches the drawn element only; unlike max pooling, a large activation does not always win, which
regularizes much as dropout does. The evaluation rule is the paper's test-time weighting: a network with L windows
is an average over :math:`K^L` pooling choices, and replacing each drawn :math:`a_I` by its expectation
:math:`\mathbb{E}[a_I] = \sum_i p_i a_i` is a cheap approximation of that model average, as dropout's weight
scaling approximates its average over masks.

The windows are those of :func:`companion.nn.windows.sliding_windows`, with no padding and no dilation (stride
defaults to the kernel size, as in ``torch.nn.MaxPool1d``). :class:`StochasticPool1d` and :class:`StochasticPool2d`
stand where ``nn.MaxPool1d`` / ``nn.MaxPool2d`` would, with the same output shapes.
"""

import itertools
import math

import torch
from torch import Tensor, nn

from companion.core.checks import check
from companion.nn.windows import sliding_windows


def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    """``value`` as n positive ints (an int is repeated), else a ValueError naming ``name``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    check(
        len(values) == n and all(isinstance(v, int) for v in values),
        f"{name} must be an int or {n} ints, but got {value!r}",
    )
    check(
        all(v > 0 for v in values),
        f"{name} must be greater than zero, but got {value!r}",
    )
    return values


def inverse_cdf_index(weights: Tensor, u: Tensor) -> Tensor:
    r"""The index drawn from each row of non-negative ``weights`` (…, K) by the uniforms ``u`` (…) in [0, 1):

    .. math::

        I = \min\{\, i : c_i > u\, c_K \,\}, \qquad c_i = a_1 + \dots + a_i ,

    so :math:`P(I = i) = a_i / c_K`. The partial sums are added left to right, one correctly rounded addition
    each, so :math:`c` is non-decreasing on every device and the same ``u`` gives the same index everywhere. An
    element with :math:`a_i = 0` has :math:`c_i = c_{i-1}` and can never be the first to pass the threshold.
    Should :math:`u\, c_K` round up to :math:`c_K` (it can when :math:`c_K` is subnormal), the index is the last
    positive element, never a zero after it. A row of zeros gives index 0.
    """
    # c_i = c_{i-1} + a_i, left to right: (…, K)
    c = torch.stack(list(itertools.accumulate(weights.unbind(-1))), dim=-1)
    total = c[..., -1:]
    # the threshold u · c_K, in the weights' dtype
    threshold = u.unsqueeze(-1) * total
    # #{i : c_i ≤ u c_K} is the first i with c_i > u c_K (c is non-decreasing)
    first_past = (c <= threshold).sum(-1)
    # #{i : c_i < c_K} is the last positive element: a cap for u c_K = c_K, and 0 for a row of zeros
    last_positive = (c < total).sum(-1)
    return torch.minimum(first_past, last_positive)


def stochastic_pool(
    input: Tensor,
    kernel_size,
    stride=None,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Stochastic pooling of ``input`` over its last ``len(kernel_size)`` dimensions (no padding).

    ``kernel_size`` and ``stride`` are tuples (``stride=None``: the kernel size). ``input`` must be non-negative
    (a ValueError names its minimum otherwise; checking costs one reduction, and on CUDA a synchronization).
    Training draws one uniform per window, :func:`inverse_cdf_index` turns it into the drawn element, and the
    output is that element (a gather, so autograd sends the gradient to it alone). The uniforms come from
    ``generator`` on the generator's device and are moved to the input's (so one seeded CPU generator gives the
    same draws on the CPU and on a GPU), or from torch's default generator of the input's device when
    ``generator`` is None. Evaluation returns :math:`\sum_i a_i^2 / \sum_i a_i` (0 for a window of zeros).
    Half-precision inputs are pooled in float32 and returned in their own dtype.
    """
    n = len(kernel_size)
    stride = kernel_size if stride is None else stride
    if input.numel() > 0:
        smallest = input.detach().min()
        check(
            bool(smallest >= 0),
            "stochastic pooling needs non-negative input (apply it after a ReLU), "
            f"but the input's minimum is {smallest.item()}",
        )
    windows = sliding_windows(
        input, tuple(kernel_size), tuple(stride), ((0, 0),) * n, (1,) * n
    )
    # (…, L_out…, K): each window's elements in one row
    a = windows.reshape(*windows.shape[: windows.dim() - n], math.prod(kernel_size))
    # the dtype the sums and draws are made in (float32 for half precision)
    acc = torch.promote_types(input.dtype, torch.float32)
    if not training:
        weights = a.to(acc)
        # Σ a_i, with 1 in place of 0 (a window of zeros then gives 0 / 1)
        total = weights.sum(-1)
        total = torch.where(total > 0, total, torch.ones_like(total))
        # s = Σ a_i² / Σ a_i
        return ((weights * weights).sum(-1) / total).to(input.dtype)
    # u ~ U[0, 1), one per window
    device = generator.device if generator is not None else input.device
    u = torch.rand(a.shape[:-1], generator=generator, device=device, dtype=acc).to(
        input.device
    )
    # I ~ Categorical(a / Σ a)
    index = inverse_cdf_index(a.detach().to(acc), u)
    # s = a_I (a gather: ∂s/∂a_i = 1[i = I])
    return a.gather(-1, index.unsqueeze(-1)).squeeze(-1)


class _StochasticPoolNd(nn.Module):
    """The bookkeeping shared by :class:`StochasticPool1d` and :class:`StochasticPool2d`."""

    n_spatial = 0

    def __init__(
        self, kernel_size, stride=None, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        _tuple(kernel_size, self.n_spatial, "kernel_size")
        _tuple(kernel_size if stride is None else stride, self.n_spatial, "stride")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        n = self.n_spatial
        check(
            input.dim() in (n + 1, n + 2),
            f"{type(self).__name__} expects a {n + 1}-D (C, *L) or {n + 2}-D "
            f"(N, C, *L) input, but got shape {tuple(input.shape)}",
        )
        return stochastic_pool(
            input,
            _tuple(self.kernel_size, n, "kernel_size"),
            _tuple(self.stride, n, "stride"),
            self.training,
            self.generator,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class StochasticPool1d(_StochasticPoolNd):
    r"""Stochastic pooling over the last dimension of (N, C, L) or (C, L) input, in place of ``nn.MaxPool1d``.

    ``kernel_size``, ``stride`` (default: ``kernel_size``) as in ``nn.MaxPool1d``; no padding, no dilation.
    ``generator`` (keyword): a ``torch.Generator`` for the draws (default: torch's global one). The output has
    :math:`L_{out} = \lfloor (L - k) / s \rfloor + 1`. Training draws :math:`a_I` with :math:`P(I = i) = a_i /
    \sum_k a_k` in each window; ``eval()`` gives :math:`\sum_i a_i^2 / \sum_i a_i` (see :func:`stochastic_pool`).
    """

    n_spatial = 1


class StochasticPool2d(_StochasticPoolNd):
    r"""Stochastic pooling over the last two dimensions of (N, C, H, W) or (C, H, W) input, in place of
    ``nn.MaxPool2d``.

    ``kernel_size``, ``stride`` (default: ``kernel_size``): an int or a pair, as in ``nn.MaxPool2d``; no padding,
    no dilation. ``generator`` (keyword) as in :class:`StochasticPool1d`; the rule is :func:`stochastic_pool`'s.
    """

    n_spatial = 2
