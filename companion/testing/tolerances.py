r"""Tolerances with a reason: compare ours with torch's relative to the size of the values.

PyTorch picks its CPU kernels by processor (``default``, ``avx2``, ``avx512``), and the kernels sum and
vectorize in different orders, so a float64 result can differ in its last bits between machines. A
bound is therefore stated in units of the dtype's machine epsilon ε (2.2e-16 for float64) times the
*scale* of the values compared, the largest magnitude of the reference unless given:

.. math::
    \frac{\max_i |a_i - b_i|}{\varepsilon \cdot \text{scale}} \le \text{ulps} .

``ulps`` follows from the arithmetic: a handful for one elementwise formula written in another order,
tens to hundreds for a reduction or a layer (its rounding errors add up over the reduced axis), and
more for many optimizer steps, whose rounding errors compound. Bit-exactness (``ulps=0``) is claimed
only where the same correctly rounded operations run in the same order on every kernel: a copy, a
mask drawn from the same generator, a comparison.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

# the tensor types comparisons trust: torch's own, and the course's stand-ins (trust_tensor_type)
PLAIN_TENSORS = [torch.Tensor, torch.nn.Parameter]
_MRO = type.__dict__["__mro__"]  # a class's MRO without running its metaclass's code
_NAME = type.__dict__["__name__"]


def trust_tensor_type(cls: type) -> type:
    """Let a tensor subclass of the course's own test tools through the comparisons (a class
    decorator: ``companion.testing.devices.ElsewhereTensor``, the stand-in second device)."""
    PLAIN_TENSORS.append(cls)
    return cls


def is_tensor_subclass(x) -> bool:
    """True if ``x`` is an instance of a subclass of ``torch.Tensor`` other than ``nn.Parameter`` (and the
    course's trusted stand-ins).

    Decided from ``type(x)`` alone, before any operation on ``x``: a subclass's ``__eq__``, ``allclose`` or
    ``__torch_function__`` could otherwise say it equals anything."""
    t = type(x)
    return t not in PLAIN_TENSORS and torch.Tensor in _MRO.__get__(t)


def refuse_subclass(x) -> None:
    """Raise AssertionError if ``x`` (or, for a plain tensor, its ``.data``) is a tensor subclass (see
    :func:`is_tensor_subclass`): comparisons trust only ``torch.Tensor`` and ``nn.Parameter``."""
    bad = is_tensor_subclass(x)
    if not bad and type(x) in PLAIN_TENSORS:
        bad = is_tensor_subclass(x.data)
        x = x.data if bad else x
    if bad:
        raise AssertionError(
            f"the answer returned a tensor subclass ({_NAME.__get__(type(x))}); "
            "only torch.Tensor and nn.Parameter are compared"
        )


def eps(dtype: torch.dtype = torch.float64) -> float:
    """Machine epsilon of a floating dtype (2.2e-16 for float64, 1.2e-7 for float32)."""
    return torch.finfo(dtype).eps


@dataclass(frozen=True)
class Mismatch:
    """The largest difference between two tensors: in absolute terms, in units of ε·scale, and where."""

    abs_diff: float
    ulps: float
    index: tuple[int, ...]
    actual: float
    expected: float

    def __str__(self) -> str:
        where = f" at index {self.index}" if self.index else ""
        return (
            f"largest difference {self.abs_diff:.3g} ({self.ulps:.3g} ε·scale){where}: "
            f"got {self.actual!r}, expected {self.expected!r}"
        )


def mismatch(actual: Tensor, expected: Tensor, scale: float | None = None) -> Mismatch:
    """Where and by how much ``actual`` differs most from ``expected`` (scale: ``max |expected|`` unless given).

    NaNs must sit in the same places (a NaN against a number is an infinite difference); equal
    infinities count as equal. A tensor subclass is refused (AssertionError) before any operation on it.
    """
    refuse_subclass(actual)
    refuse_subclass(expected)
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    if actual.shape != expected.shape:
        raise AssertionError(
            f"shape {tuple(actual.shape)} differs from the expected {tuple(expected.shape)}"
        )
    a = actual.detach().to("cpu", torch.float64)
    b = expected.detach().to("cpu", torch.float64)
    if a.numel() == 0:
        return Mismatch(0.0, 0.0, (), float("nan"), float("nan"))
    same = (a == b) | (a.isnan() & b.isnan())
    diff = torch.where(
        same, torch.zeros_like(a), (a - b).abs().nan_to_num(nan=float("inf"))
    )
    if scale is None:
        finite = b[b.isfinite()].abs()
        scale = finite.max().item() if finite.numel() else 1.0
    scale = scale if scale > 0 else 1.0
    flat = int(diff.reshape(-1).argmax())
    index = (
        tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape))
        if a.dim()
        else ()
    )
    worst = diff.reshape(-1)[flat].item()
    return Mismatch(
        worst,
        worst
        / (
            eps(expected.dtype if expected.is_floating_point() else torch.float64)
            * scale
        ),
        index,
        a.reshape(-1)[flat].item(),
        b.reshape(-1)[flat].item(),
    )


def assert_close(
    actual: Tensor,
    expected: Tensor,
    *,
    ulps: float,
    scale: float | None = None,
    what: str = "",
) -> None:
    """Assert ``max|actual − expected| ≤ ulps · ε · scale`` (ε of ``expected``'s dtype; scale as in :func:`mismatch`).

    ``ulps=0`` demands bit-identical values (NaNs in the same places)."""
    m = mismatch(actual, expected, scale)
    if not m.ulps <= ulps:
        raise AssertionError(
            f"{what + ': ' if what else ''}{m} (allowed {ulps} ε·scale)"
        )
