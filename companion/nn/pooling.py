"""Max and average pooling from scratch, with the contract of ``torch.nn.MaxPool1d/2d`` and ``AvgPool1d/2d``.

Pooling reduces each window of the input (:func:`companion.nn.windows.sliding_windows`) to one number, channel by
channel. For a window :math:`W_j` of the padded input (positions :math:`j s + i d - p`),

.. math::

    \\text{max: } y_j = \\max_{i} x_{j s + i d - p}, \\qquad
    \\text{average: } y_j = \\frac{1}{|W_j|} \\sum_{i} x_{j s + i - p},

max pooling padding with :math:`-\\infty` (a pad never wins) and average pooling with zeros. The divisor
:math:`|W_j|` counts the window's positions inside the padded input (``count_include_pad=True``, torch's
default), or inside the input only (``False``), or is ``divisor_override``. In ceil mode the last window may
run past the padded input: those positions count in neither divisor.

The gradient of max pooling goes to the arg-max of each window: the first maximum in the window's row-major
order (torch's rule on ties); ``return_indices`` gives that position as a flat index into the input's spatial
plane (``h * W + w``), as torch does. Autograd differentiates the gather and the strided view, so the backward
is exact; overlapping windows add their gradients. A NaN in a window is its maximum, and of several NaNs the
last one wins, as in torch's CPU kernel.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.common_types import _size_1_t, _size_2_t, _size_any_t

from companion.nn.conv import ntuple
from companion.nn.pooling_checks import (
    check_max_pool1d,
    check_pool1d_as_2d,
    check_pool2d,
    expand,
    runtime_check,
)
from companion.nn.windows import sliding_windows


def _pads(sizes, out, k, stride, pad, dilation) -> tuple[tuple[int, int], ...]:
    """(p, p + e) per dimension: in ceil mode the last window reaches e positions past the padded input."""
    pairs = []
    for n, o, kk, s, p, d in zip(sizes, out, k, stride, pad, dilation):
        # the padded length the windows need, (L_out − 1) s + d (k − 1) + 1, beyond L + 2p
        extra = max(0, (o - 1) * s + d * (kk - 1) + 1 - (n + 2 * p))
        pairs.append((p, p + extra))
    return tuple(pairs)


def max_pool(
    input: Tensor, k, stride, pad, dilation, out, return_indices: bool = False
):
    """Max pooling over the last ``len(k)`` dimensions of ``input`` (arguments checked, ``out`` the output sizes)."""
    n = len(k)
    sizes = input.shape[-n:]
    pairs = _pads(sizes, out, k, stride, pad, dilation)
    # the windows of the input padded with −∞, flattened: (..., *L_out, Πk)
    windows = sliding_windows(
        input, k, stride, pairs, dilation, pad_value=-math.inf
    ).flatten(-n)
    # each window position's flat index h W + w into the input plane, −1 on padding
    plane = torch.arange(math.prod(sizes), device=input.device).reshape(sizes)
    where = sliding_windows(plane, k, stride, pairs, dilation, pad_value=-1).flatten(-n)
    # y_j = max_i x_{j, i}: the first input position that holds the maximum (argmax returns the first of ties)
    top = windows.amax(-1, keepdim=True)
    first = ((windows == top) & (where >= 0)).to(torch.uint8).argmax(-1, keepdim=True)
    # a NaN is the maximum: torch's kernel keeps the last NaN it scans
    nan = windows.isnan()
    last_nan = nan.shape[-1] - 1 - nan.flip(-1).to(torch.uint8).argmax(-1, keepdim=True)
    first = torch.where(nan.any(-1, keepdim=True), last_nan, first)
    output = windows.gather(-1, first).squeeze(-1)
    if not return_indices:
        return output
    return output, where.expand(windows.shape).gather(-1, first).squeeze(-1)


def avg_pool(
    input: Tensor,
    k,
    stride,
    pad,
    out,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Average pooling over the last ``len(k)`` dimensions of ``input`` (arguments checked, ``out`` the output
    sizes)."""
    n = len(k)
    sizes, ones = input.shape[-n:], (1,) * n
    pairs = _pads(sizes, out, k, stride, pad, ones)
    # Σ_i x_{j s + i − p} over each window of the zero-padded input
    total = sliding_windows(input, k, stride, pairs, ones).sum(tuple(range(-n, 0)))
    if divisor_override is not None:
        # y_j = Σ / divisor_override
        return total / divisor_override
    # |W_j| = Σ_i m_{j s + i − p}, with m = 1 on the input (and on its padding with count_include_pad)
    mask = input.new_ones(sizes)
    if count_include_pad:
        mask = F.pad(mask, [q for p in reversed(pad) for q in (p, p)], value=1.0)
        pairs = tuple((0, right - left) for left, right in pairs)
    count = sliding_windows(mask, k, stride, pairs, ones).sum(tuple(range(-n, 0)))
    # y_j = Σ / |W_j|
    return total / count


def _one_int(name: str):
    """torch's message for a 1-D argument of the wrong length in the paths run as 2-D pooling."""
    return lambda arg, size: (
        f"{name}() argument '{arg}' should contain one int (got {size})"
    )


def _sizes(values: dict, n: int, message) -> list[tuple[int, ...]]:
    """Each of ``values`` ({argument: value}) as n ints: an int or a tuple of 1 or n ints, else torch's
    RuntimeError ``message(argument, length)``. An omitted stride (None or ()) is the kernel size."""
    if values.get("stride") is None or values["stride"] == ():
        values["stride"] = values["kernel_size"]
    out = []
    for arg, value in values.items():
        size = 1 if isinstance(value, int) else len(value)
        out.append(expand(value, n, message(arg, size)))
    return out


def max_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """``torch.nn.functional.max_pool1d``: input (N, C, L) or (C, L)."""
    values = {
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }
    if return_indices:  # torch runs this as 2-D pooling over a height of 1
        k, s, p, d = _sizes(values, 1, _one_int("max_pool1d"))
        out = check_pool1d_as_2d(input, "max_pool1d", k, s, p, d, ceil_mode)
    else:
        wording = {
            "kernel_size": "an int, list of ints",
            "stride": "None, an int, list of ints,",
            "padding": "an int, list of ints,",
            "dilation": "an int, list of ints",
        }
        k, s, p, d = _sizes(
            values,
            1,
            lambda arg, size: (
                f"max_pool1d() {arg} must be {wording[arg]} or tuple of "
                f"ints of size 1 but got size {size}"
            ),
        )
        out = check_max_pool1d(input, k[0], s[0], p[0], d[0], ceil_mode)
    return max_pool(input, k, s, p, d, (out,), return_indices)


def _two_ints(name: str):
    """torch's message for a 2-D argument of the wrong length (with its wording for each argument)."""
    wording = {
        "stride": "must either be omitted, a single int,",
        "dilation": "must be either a single int,",
    }
    return lambda arg, size: (
        f"{name}: {arg} {wording.get(arg, 'must either be a single int,')} or a tuple of two ints"
    )


def max_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """``torch.nn.functional.max_pool2d``: input (N, C, H, W) or (C, H, W)."""
    values = {
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }
    k, s, p, d = _sizes(values, 2, _two_ints("max_pool2d"))
    runtime_check(
        input.dim() in (3, 4),
        "non-empty 3D or 4D (batch mode) tensor expected for input",
    )
    out = check_pool2d(input.shape, k, s, p, d, ceil_mode)
    return max_pool(input, k, s, p, d, out, return_indices)


def avg_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """``torch.nn.functional.avg_pool1d``: input (N, C, L) or (C, L)."""
    values = {"kernel_size": kernel_size, "stride": stride, "padding": padding}
    k, s, p = _sizes(values, 1, _one_int("avg_pool1d"))
    out = check_pool1d_as_2d(input, "avg_pool1d", k, s, p, (1,), ceil_mode)
    return avg_pool(input, k, s, p, (out,), count_include_pad)


def avg_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """``torch.nn.functional.avg_pool2d``: input (N, C, H, W) or (C, H, W)."""
    k, s, p = _sizes(
        {"kernel_size": kernel_size, "stride": stride, "padding": padding},
        2,
        _two_ints("avg_pool2d"),
    )
    runtime_check(
        divisor_override is None or divisor_override != 0, "divisor must be not zero"
    )
    input.size(
        -3
    )  # torch reads the channel count first: an input of fewer than 3 dimensions raises its IndexError
    out = check_pool2d(input.shape, k, s, p, (1, 1), ceil_mode)
    return avg_pool(input, k, s, p, out, count_include_pad, divisor_override)


class _MaxPoolNd(nn.Module):
    """torch's attributes and repr for max pooling; the sizes are kept as given (ints or tuples)."""

    __constants__ = [
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "return_indices",
        "ceil_mode",
    ]
    return_indices: bool
    ceil_mode: bool

    def __init__(
        self,
        kernel_size: _size_any_t,
        stride: _size_any_t | None = None,
        padding: _size_any_t = 0,
        dilation: _size_any_t = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    """``torch.nn.MaxPool1d``: input (N, C, L) or (C, L); with ``return_indices`` also the arg-max positions."""

    def forward(self, input: Tensor):
        return max_pool1d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class MaxPool2d(_MaxPoolNd):
    """``torch.nn.MaxPool2d``: input (N, C, H, W) or (C, H, W); indices are flat positions ``h * W + w``."""

    def forward(self, input: Tensor):
        return max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class _AvgPoolNd(nn.Module):
    """torch's constants and repr for average pooling."""

    __constants__ = [
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
    ]

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """``torch.nn.AvgPool1d``: input (N, C, L) or (C, L). Like torch it keeps its sizes as 1-tuples."""

    def __init__(
        self,
        kernel_size: _size_1_t,
        stride: _size_1_t = None,
        padding: _size_1_t = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = ntuple(kernel_size, 1)
        self.stride = ntuple(stride if stride is not None else kernel_size, 1)
        self.padding = ntuple(padding, 1)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return avg_pool1d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )


class AvgPool2d(_AvgPoolNd):
    """``torch.nn.AvgPool2d``: input (N, C, H, W) or (C, H, W); ``divisor_override`` replaces every window's
    divisor."""

    __constants__ = [
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ]

    def __init__(
        self,
        kernel_size: _size_2_t,
        stride: _size_2_t | None = None,
        padding: _size_2_t = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = (
            count_include_pad,
            divisor_override,
        )

    def forward(self, input: Tensor) -> Tensor:
        return avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )
