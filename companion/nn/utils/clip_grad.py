r"""Gradient clipping with the contract of ``torch.nn.utils``: rescale all gradients together when
their joint norm is too large (:func:`clip_grad_norm_`), or clamp every entry (:func:`clip_grad_value_`).

Pascanu, Mikolov and Bengio (2013) proposed the first for recurrent networks, whose gradients explode
along the steps of a long sequence: it keeps the gradient's *direction* and bounds its length, where
clamping each entry changes the direction too.
"""

import math
import types
import warnings
from typing import Iterable

import torch
from torch import Tensor

Tensors = Tensor | Iterable[Tensor]


def _refuse_foreach(foreach: bool | None) -> None:
    """``foreach`` only picks torch's batched kernels, not the result: accepted, but it must stay off."""
    if foreach:
        raise ValueError(
            "foreach=True is not supported: companion.nn.utils implements only the readable per-tensor "
            "loop; leave foreach at its default"
        )


def _as_list(parameters: Tensors) -> list[Tensor]:
    """A single tensor or an iterable of them, as a list (torch's warning for an empty generator)."""
    if isinstance(parameters, Tensor):
        return [parameters]
    is_generator = isinstance(parameters, types.GeneratorType)
    parameters = list(parameters)
    if is_generator and not parameters:
        warnings.warn(
            "`parameters` is an empty generator, no gradient clipping will occur.",
            stacklevel=3,
        )
    return parameters


def vector_norm(x: Tensor, p: float) -> Tensor:
    r"""The p-norm of all entries of ``x`` as one vector.

    .. math::
        \|x\|_p = \Big(\sum_i |x_i|^p\Big)^{1/p}, \qquad \|x\|_\infty = \max_i |x_i|, \qquad
        \|x\|_{-\infty} = \min_i |x_i|, \qquad \|x\|_0 = \#\{i : x_i \ne 0\}.
    """
    a = x.abs()
    if p == math.inf:
        # ‖x‖_∞ = max_i |x_i|  (0 for no entries)
        return a.amax() if a.numel() else a.sum()
    if p == -math.inf:
        # ‖x‖_{−∞} = min_i |x_i|
        return a.amin()
    if p == 0:
        # ‖x‖_0 = number of non-zero entries
        return (a != 0).to(a.dtype).sum()
    if p == 2:
        # ‖x‖_2 = √(Σ_i x_i²)
        return (a * a).sum().sqrt()
    # ‖x‖_p = (Σ_i |x_i|^p)^{1/p}
    return (a**p).sum() ** (1 / p)


@torch.no_grad()
def clip_grad_norm_(
    parameters: Tensors,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    r"""Rescale the gradients of ``parameters`` in place so that their joint p-norm is at most ``max_norm``.

    .. math::
        \nu = \big\|\big(\|g_1\|_p, \dots, \|g_k\|_p\big)\big\|_p = \|(g_1, \dots, g_k)\|_p, \qquad
        g_j \leftarrow g_j \cdot \min\Big(1, \frac{\mathtt{max\_norm}}{\nu + 10^{-6}}\Big).

    Parameters without a gradient are skipped. Returns the total norm ν *before* clipping (a 0-d
    tensor; 0. in float32 when no parameter has a gradient). ``error_if_nonfinite`` raises instead of
    scaling by a nan or infinite norm.
    """
    _refuse_foreach(foreach)
    parameters = _as_list(parameters)
    norm_type = float(norm_type)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    first_device = grads[0].device
    # ν = ‖(‖g_1‖_p, …, ‖g_k‖_p)‖_p
    total = vector_norm(
        torch.stack([vector_norm(g, norm_type).to(first_device) for g in grads]),
        norm_type,
    )
    if error_if_nonfinite and (total.isnan() | total.isinf()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
            "anyway, set `error_if_nonfinite=False`"
        )
    # c = min(1, max_norm / (ν + 10⁻⁶))
    coef = (float(max_norm) / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        # g_j ← c g_j
        g.mul_(coef.to(g.device))
    return total


@torch.no_grad()
def clip_grad_value_(
    parameters: Tensors, clip_value: float, foreach: bool | None = None
) -> None:
    r"""Clamp every gradient entry of ``parameters`` to [−clip_value, clip_value], in place.

    .. math::
        g_i \leftarrow \max(-c, \min(c, g_i)).

    Unlike :func:`clip_grad_norm_` this changes the gradient's direction whenever some entries are
    clamped and others are not.
    """
    _refuse_foreach(foreach)
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad
            # g_i ← max(−c, min(c, g_i))
            g.copy_(
                torch.where(
                    g > clip_value,
                    clip_value,
                    torch.where(g < -clip_value, -clip_value, g),
                )
            )


__all__ = ["clip_grad_norm_", "clip_grad_value_", "vector_norm"]
