"""torch's argument checks and output sizes for pooling, in torch's order and words (RuntimeError, raised at
run time as torch's C++ kernels raise them).

The output length of a window of size k, dilation d and stride s over a signal of length L padded by p on
each side is

.. math::

    L_{out} = \\left\\lfloor \\frac{L + 2p - d (k - 1) - 1 + [\\text{ceil}] (s - 1)}{s} \\right\\rfloor + 1 ,

with, in ceil mode, one window fewer when the last would start past the input and its left padding
(:math:`(L_{out} - 1) s \\ge L + p`). torch checks 2-D pooling (and 1-D average pooling, and 1-D max pooling
with indices, which it runs as 2-D pooling over a height of 1) with :func:`check_pool2d`, and 1-D max pooling
without indices with its own :func:`check_max_pool1d`.
"""

from torch import Tensor


def runtime_check(valid: bool, message: str) -> None:
    """Raise ``RuntimeError(message)`` unless ``valid`` (torch's C++ checks raise RuntimeError)."""
    if not valid:
        raise RuntimeError(message)


def shape_str(shape) -> str:
    """A shape as torch's C++ errors print it: [a, b, c]."""
    return f"[{', '.join(map(str, shape))}]"


def expand(value, n: int, message: str) -> tuple[int, ...]:
    """An int, or a tuple of 1 or n ints, as n ints; else torch's RuntimeError ``message``."""
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    runtime_check(len(value) in (1, n), message)
    return value * n if len(value) == 1 else value


def _half(a: int) -> int:
    """a / 2 in C++ integer arithmetic (truncated toward zero)."""
    return int(a / 2)


def output_size(
    size: int, k: int, pad: int, stride: int, dilation: int, ceil_mode: bool
) -> int:
    """torch's ``pooling_output_shape``: L_out as in the module docstring, after torch's checks."""
    runtime_check(stride != 0, "stride should not be zero")
    runtime_check(pad >= 0, f"pad must be non-negative, but got pad: {pad}")
    runtime_check(
        pad <= _half((k - 1) * dilation + 1),
        "pad should be at most half of effective kernel size, "
        f"but got pad={pad}, kernel_size={k} and dilation={dilation}",
    )
    # L_out = ⌊(L + 2p − d(k − 1) − 1 [+ s − 1]) / s⌋ + 1
    out = (
        size + 2 * pad - dilation * (k - 1) - 1 + (stride - 1 if ceil_mode else 0)
    ) // stride + 1
    # ceil mode: the last window starts inside the input or its left padding
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def check_pool2d(shape, k, stride, pad, dilation, ceil_mode: bool) -> tuple[int, int]:
    """torch's checks of 2-D pooling (``pooling_output_shape`` per dimension, then ``pool2d_shape_check``) on an
    input of ``shape`` (C, H, W) or (N, C, H, W); returns (H_out, W_out)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = k, stride, pad, dilation
    planes, h, w = shape[-3:]
    oh = output_size(h, kh, ph, sh, dh, ceil_mode)
    ow = output_size(w, kw, pw, sw, dw, ceil_mode)
    runtime_check(
        kw > 0 and kh > 0,
        f"kernel size should be greater than zero, but got kH: {kh} kW: {kw}",
    )
    runtime_check(
        sw > 0 and sh > 0,
        f"stride should be greater than zero, but got dH: {sh} dW: {sw}",
    )
    runtime_check(
        dw > 0 and dh > 0,
        f"dilation should be greater than zero, but got dilationH: {dh} dilationW: {dw}",
    )
    non_empty = (
        shape[-3] != 0 and shape[-2] != 0 and shape[-1] != 0
    )  # the batch alone may be empty
    runtime_check(
        len(shape) in (3, 4) and non_empty,
        "Expected 3D or 4D (batch mode) tensor with optional 0 dim "
        f"batch size for input, but got:{shape_str(shape)}",
    )
    runtime_check(
        _half(kw) >= pw and _half(kh) >= ph,
        "pad should be smaller than or equal to half of kernel size, "
        f"but got padW = {pw}, padH = {ph}, kW = {kw}, kH = {kh}",
    )
    runtime_check(
        ow >= 1 and oh >= 1,
        f"Given input size: ({planes}x{h}x{w}). Calculated output size: "
        f"({planes}x{oh}x{ow}). Output size is too small",
    )
    return oh, ow


def check_pool1d_as_2d(
    input: Tensor, name: str, k, stride, pad, dilation, ceil_mode: bool
) -> int:
    """1-D pooling run as 2-D pooling over a height of 1 (torch's ``avg_pool1d``, ``max_pool1d_with_indices``):
    its dimension check, then :func:`check_pool2d` on (..., 1, L); returns L_out."""
    runtime_check(
        input.dim() in (2, 3),
        f"Expected 2 to 3 dimensions, but got {input.dim()}-dimensional tensor "
        f"for argument #1 'self' (while checking arguments for {name})",
    )
    shape = (*input.shape[:-1], 1, input.shape[-1])
    return check_pool2d(
        shape, (1, *k), (1, *stride), (0, *pad), (1, *dilation), ceil_mode
    )[1]


def check_max_pool1d(
    input: Tensor, k: int, stride: int, pad: int, dilation: int, ceil_mode: bool
) -> int:
    """torch's ``max_pool1d`` checks (the path without indices); returns L_out."""
    shape = input.shape
    runtime_check(
        (input.dim() == 2 and shape[0] != 0 and shape[1] != 0)
        or (input.dim() == 3 and shape[1] != 0 and shape[2] != 0),
        "max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for input, "
        f"but got:{shape_str(shape)}",
    )
    runtime_check(
        k > 0, f"max_pool1d() kernel_size must be greater than zero, but got {k}"
    )
    runtime_check(
        stride > 0, f"max_pool1d() stride must be greater than zero, but got {stride}"
    )
    runtime_check(pad >= 0, f"max_pool1d() padding must be non-negative, but got {pad}")
    runtime_check(
        pad <= _half(k),
        "max_pool1d() padding should be at most half of kernel size, "
        f"but got padding={pad} and kernel_size={k}",
    )
    runtime_check(
        dilation > 0,
        f"max_pool1d() dilation must be greater than zero, but got {dilation}",
    )
    out = output_size(shape[-1], k, pad, stride, dilation, ceil_mode)
    runtime_check(out > 0, f"max_pool1d() Invalid computed output size: {out}")
    return out
