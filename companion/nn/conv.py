"""Convolution from scratch with the contract of ``torch.nn.Conv1d`` and ``torch.nn.Conv2d``.

A convolution is a linear map whose matrix is sparse (each output reads one window of the input) and shared
(every window meets the same kernel). Written out, it is one matrix product between the input's windows
(:func:`companion.nn.windows.sliding_windows`) and the kernel reshaped to a matrix:

.. math::

    y_{n, o, j} = b_o + \\sum_{c \\in G(o)} \\sum_{i} w_{o, c, i}\\; x_{n, c,\\, j s + i d - p},

with ``groups`` splitting the channels into G independent blocks (channel c feeds output o only within the same
group). Autograd differentiates the product and the strided view, so the backward is exact.
"""

import collections.abc
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.common_types import _size_1_t, _size_2_t

from companion import init
from companion.core.checks import check
from companion.nn.windows import sliding_windows

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


def ntuple(value, n: int) -> tuple:
    """torch's ``_single`` / ``_pair``: an iterable becomes a tuple as it is (whatever its length), a number n copies."""
    return tuple(value) if isinstance(value, collections.abc.Iterable) else (value,) * n


def conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Tensor:
    """The convolution of ``x`` ``(N, C_in, *L)`` with ``weight`` ``(C_out, C_in / groups, *k)``, zero padding given
    as one (left, right) pair per spatial dimension; returns ``(N, C_out, *L_out)``."""
    n_spatial = weight.dim() - 2
    c_out, c_group, *k = weight.shape
    windows = sliding_windows(
        x, tuple(k), stride, padding, dilation
    )  # (N, C_in, *L_out, *k)
    n, out_shape = x.shape[0], windows.shape[2 : 2 + n_spatial]
    P, K = math.prod(out_shape), math.prod(k)
    # X_g: (G, N · P, C_in/G · Πk), one row per example and output position, one matrix per group
    X = (
        windows.reshape(n, groups, c_group, P, K)
        .permute(1, 0, 3, 2, 4)
        .reshape(groups, n * P, c_group * K)
    )
    # W_g: (G, C_in/G · Πk, C_out/G), the kernel of each group as a matrix
    W = weight.reshape(groups, c_out // groups, -1).transpose(1, 2)
    # y = X_g W_g: (G, N · P, C_out/G) → (N, C_out, *L_out)
    y = (
        (X @ W)
        .reshape(groups, n, P, c_out // groups)
        .permute(1, 0, 3, 2)
        .reshape(n, c_out, *out_shape)
    )
    # in torch's memory layout (channels first): later layers run several times faster on it
    y = y.contiguous()
    if bias is not None:
        # y += b_o at every position
        y = y + bias.reshape(1, c_out, *([1] * n_spatial))
    return y


def _raise(valid: bool, message: str) -> None:
    """torch raises these at run time as RuntimeError (its C++ checks), not ValueError."""
    if not valid:
        raise RuntimeError(message)


def shape_str(t: Tensor) -> str:
    """A shape as torch's C++ errors print it: [a, b, c]."""
    return f"[{', '.join(map(str, t.shape))}]"


def check_conv_input(
    x: Tensor, weight: Tensor, padding_pairs, stride, dilation, groups: int
) -> None:
    """torch's run-time checks of a batched input against the layer, in torch's order and words."""
    _raise(
        all(p >= 0 for pair in padding_pairs for p in pair),
        "negative padding is not supported",
    )
    _raise(all(s > 0 for s in stride), "non-positive stride is not supported")
    _raise(all(d >= 0 for d in dilation), "dilation should be greater than zero")
    _raise(
        weight.shape[0] >= 1,
        f"Given groups={groups}, expected weight to be at least 1 at dimension 0, "
        f"but got weight of size {shape_str(weight)} instead",
    )
    _raise(
        x.shape[1] == weight.shape[1] * groups,
        f"Given groups={groups}, weight of size {shape_str(weight)}, expected input{shape_str(x)} to have "
        f"{weight.shape[1] * groups} channels, but got {x.shape[1]} channels instead",
    )
    _raise(all(d > 0 for d in dilation), "non-positive dilation is not supported")
    # the padded length L + p_left + p_right against the dilated kernel's span d (k − 1) + 1
    padded = [n + left + right for n, (left, right) in zip(x.shape[2:], padding_pairs)]
    spans = [d * (k - 1) + 1 for k, d in zip(weight.shape[2:], dilation)]
    _raise(
        all(s <= p for s, p in zip(spans, padded)),
        f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
        f"Kernel size: ({' x '.join(map(str, spans))}). Kernel size can't be greater than actual input size",
    )


class _ConvNd(nn.Module):
    """The bookkeeping shared by :class:`Conv1d` and :class:`Conv2d`: torch's checks, attributes, parameters,
    initialization and padding rules. Subclasses give ``n_spatial`` and turn sizes into tuples."""

    __constants__ = [
        "stride",
        "padding",
        "dilation",
        "groups",
        "padding_mode",
        "output_padding",
        "in_channels",
        "out_channels",
        "kernel_size",
    ]
    n_spatial = 0

    def _setup(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple,
        stride: tuple,
        padding,
        dilation: tuple,
        groups: int,
        bias: bool,
        padding_mode: str,
        device,
        dtype,
    ) -> None:
        # torch's constructor checks, in its order and words (ValueError)
        check(groups > 0, "groups must be a positive integer")
        check(in_channels % groups == 0, "in_channels must be divisible by groups")
        check(out_channels % groups == 0, "out_channels must be divisible by groups")
        valid_padding_strings = {
            "same",
            "valid",
        }  # sets, as in torch (printed in their hash order)
        if isinstance(padding, str):
            check(
                padding in valid_padding_strings,
                f"Invalid padding string {padding!r}, should be one of {valid_padding_strings}",
            )
            check(
                padding != "same" or all(s == 1 for s in stride),
                "padding='same' is not supported for strided convolutions",
            )
        valid_padding_modes = {"zeros", "reflect", "replicate", "circular"}
        check(
            padding_mode in valid_padding_modes,
            f"padding_mode must be one of {valid_padding_modes}, but got padding_mode='{padding_mode}'",
        )
        self.in_channels, self.out_channels, self.kernel_size = (
            in_channels,
            out_channels,
            kernel_size,
        )
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.transposed, self.output_padding = (
            False,
            (0,) * self.n_spatial,
        )  # torch's attributes (no transposed conv)
        self.groups, self.padding_mode = groups, padding_mode
        # F.pad's (left, right) pairs from the last dimension backwards, as torch keeps them (a list for strings)
        reversed_pairs = [p for pair in reversed(self.padding_pairs()) for p in pair]
        self._reversed_padding_repeated_twice = (
            reversed_pairs if isinstance(padding, str) else tuple(reversed_pairs)
        )
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *kernel_size, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""torch's initialization, weight first, then bias (so the same seed gives the same draws):

        .. math::
            w, b \sim \mathcal U\left(-\tfrac{1}{\sqrt{n_\text{in}}}, \tfrac{1}{\sqrt{n_\text{in}}}\right),
            \qquad n_\text{in} = \tfrac{C_\text{in}}{G} \prod_i k_i ,

        He's uniform with :math:`a = \sqrt 5`: gain :math:`\sqrt{2 / (1 + 5)}`, bound :math:`\sqrt 3 \cdot
        \text{gain} / \sqrt{n_\text{in}} = 1 / \sqrt{n_\text{in}}`."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            # n_in = C_in/G · Πk, the fan-in of one output
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def padding_pairs(self) -> tuple[tuple[int, int], ...]:
        """(left, right) per spatial dimension; 'same' puts the odd position on the right, as torch does."""
        if self.padding == "valid":
            return ((0, 0),) * len(self.kernel_size)
        if self.padding == "same":
            # total d (k − 1) keeps L_out = L at stride 1
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        return tuple((p, p) for p in self.padding)

    def forward(self, input: Tensor) -> Tensor:
        n = self.n_spatial
        _raise(
            input.dim() in (n + 1, n + 2),
            f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to conv{n}d, "
            f"but got input of size: {shape_str(input)}",
        )
        unbatched = input.dim() == n + 1
        x = input.unsqueeze(0) if unbatched else input
        pairs = self.padding_pairs()
        if self.padding_mode != "zeros":
            # reflect / replicate / circular: pad first, then convolve without padding
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            pairs = ((0, 0),) * n
        check_conv_input(x, self.weight, pairs, self.stride, self.dilation, self.groups)
        y = conv(
            x, self.weight, self.bias, self.stride, pairs, self.dilation, self.groups
        )
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        # torch's repr: the non-default settings only
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.padding):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class Conv1d(_ConvNd):
    """``torch.nn.Conv1d``: input (N, C_in, L) or (C_in, L); weight (C_out, C_in / groups, k)."""

    n_spatial = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_1_t,
        stride: _size_1_t = 1,
        padding: str | _size_1_t = 0,
        dilation: _size_1_t = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self._setup(
            in_channels,
            out_channels,
            ntuple(kernel_size, 1),
            ntuple(stride, 1),
            padding if isinstance(padding, str) else ntuple(padding, 1),
            ntuple(dilation, 1),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )


class Conv2d(_ConvNd):
    """``torch.nn.Conv2d``: input (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in / groups, k_H, k_W)."""

    n_spatial = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_2_t,
        stride: _size_2_t = 1,
        padding: str | _size_2_t = 0,
        dilation: _size_2_t = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self._setup(
            in_channels,
            out_channels,
            ntuple(kernel_size, 2),
            ntuple(stride, 2),
            padding if isinstance(padding, str) else ntuple(padding, 2),
            ntuple(dilation, 2),
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )
