"""The windows a convolution or a pooling layer reads, as a strided view of the padded input.

For a signal of length L padded by (p_left, p_right), a kernel of size k with dilation d and stride s, window j
reads the padded positions

.. math::

    j s + i d, \\qquad i = 0, \\dots, k - 1, \\qquad j = 0, \\dots, L_{out} - 1,

    L_{out} = \\left\\lfloor \\frac{L + p_{left} + p_{right} - d (k - 1) - 1}{s} \\right\\rfloor + 1 .

Convolution is then one matrix product of these windows with the kernel, and pooling one reduction over them.
"""

import torch
import torch.nn.functional as F


def sliding_windows(
    x: torch.Tensor,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    pad_value: float = 0.0,
) -> torch.Tensor:
    """The windows of ``x`` over its last ``len(kernel_size)`` dimensions.

    ``x`` is ``(..., L_1, ..., L_n)``; ``padding`` holds one ``(left, right)`` pair per spatial dimension, filled
    with ``pad_value``. Returns a view-like tensor ``(..., L_out_1, ..., L_out_n, k_1, ..., k_n)``: output
    position first, then the kernel offsets, so ``windows[..., j, i]`` is the padded input at ``j s + i d``.
    Gradients flow back to ``x`` (several windows overlap: their gradients add).
    """
    n = len(kernel_size)
    if not len(stride) == len(padding) == len(dilation) == n:
        raise ValueError(
            f"kernel_size, stride, padding and dilation need {n} entries each"
        )
    # F.pad lists (left, right) pairs from the last dimension backwards
    pads = [p for pair in reversed(padding) for p in pair]
    if any(pads):
        x = F.pad(x, pads, value=pad_value)
    first = x.dim() - n
    for axis, (k, s, d) in enumerate(zip(kernel_size, stride, dilation)):
        span = d * (k - 1) + 1  # the extent one dilated window covers
        if x.shape[first + axis] < span:
            raise ValueError(
                f"the kernel spans {span} positions but the padded input has {x.shape[first + axis]}"
            )
        # unfold appends the window's extent as the last dimension; keep every d-th of its positions
        x = x.unfold(first + axis, span, s)[..., ::d]
    return x
