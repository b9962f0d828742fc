"""A second device for device tests: CUDA where there is one, else a CPU stand-in that catches mixing.

A function is device-correct when every tensor it creates lives on its inputs' device. On CUDA a
tensor created on the CPU next to an input on the GPU (``torch.arange(n)`` without ``device=``, a
generator's draws, a lookup table) fails with "Expected all tensors to be on the same device"; on a
CPU-only machine the same code runs silently, so CI would never see the bug. Use it as::

    with second_device() as device:
        x = x.to(device)
        out = f(x)
        assert on_device(out, device)

:func:`second_device` yields ``companion.get_device()`` when that is CUDA (``COMPANION_DEVICE=cuda``,
or a GPU present and the variable unset), and otherwise the stand-in: while the block runs, a tensor
moved or created on ``torch.device("meta")`` becomes an :class:`ElsewhereTensor` that holds real
values on the CPU (so ``.item()``, comparisons, autograd and optimizers work) but reports the device
``meta``. Every aten operation that meets an :class:`ElsewhereTensor` checks its other tensor
arguments the way CUDA's kernels do, and raises :class:`DeviceMixingError` for a CPU tensor with at
least one dimension; allowed, as on CUDA, are 0-dim CPU tensors (scalars), CPU index tensors in
``x[idx]`` and ``x[idx] = v``, and copies between devices. A CPU ``torch.Generator`` drawing on
the second device (``torch.rand(..., device=device, generator=g)``, ``x.uniform_(generator=g)``)
raises too, and ``.numpy()`` fails, as on CUDA. (CUDA also refuses CPU scalars in a few operations
that are not elementwise, such as ``torch.cat``; the stand-in lets those pass.)

The stand-in is a test tool: it runs each operation on the CPU and is meant for small tensors.
"""

import contextlib
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

import companion
from companion.testing.tolerances import trust_tensor_type

STAND_IN = torch.device("meta")  # the device an ElsewhereTensor reports
aten = torch.ops.aten
# aten operations that CUDA lets take CPU tensors beside its own: indexing with CPU indices, copies
CROSS_DEVICE_OPS = {
    aten.index.Tensor,
    aten.index_put.default,
    aten.index_put_.default,
    aten._index_put_impl_.default,
    aten.copy_.default,
    aten._to_copy.default,
}


PASS_THROUGH = {torch.Tensor.to, torch._C._nn._parse_to}


class DeviceMixingError(RuntimeError):
    """An operation met a tensor on the second device and a CPU tensor that is not a scalar."""


@trust_tensor_type  # the course's own stand-in: comparisons may read it
class ElsewhereTensor(torch.Tensor):
    """A CPU tensor (``.inner``) that reports the stand-in device and refuses to meet CPU tensors."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, inner: torch.Tensor) -> "ElsewhereTensor":
        out = torch.Tensor._make_wrapper_subclass(
            cls,
            inner.shape,
            strides=inner.stride(),
            storage_offset=inner.storage_offset(),
            dtype=inner.dtype,
            layout=inner.layout,
            device=STAND_IN,
            requires_grad=inner.requires_grad,
        )
        out.inner = inner
        return out

    def __repr__(self) -> str:
        return f"ElsewhereTensor({self.inner!r})"

    def __tensor_flatten__(self):  # lets nn.Module.to swap parameters for this subclass
        return ["inner"], None

    @staticmethod
    def __tensor_unflatten__(inner, meta, outer_size, outer_stride):
        return ElsewhereTensor(inner["inner"])

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _is_stand_in(device: Any) -> bool:
    return (
        isinstance(device, (str, torch.device))
        and torch.device(device).type == STAND_IN.type
    )


def _wrap(out: Any) -> Any:
    return tree_map(lambda t: ElsewhereTensor(t) if type(t) is torch.Tensor else t, out)


def _check_generator(kwargs: dict) -> None:
    generator = kwargs.get("generator")
    if generator is not None and generator.device.type == "cpu":
        raise DeviceMixingError(
            "a CPU generator cannot draw on the second device (CUDA says: Expected a "
            "'cuda' device type for generator but found 'cpu')"
        )


def _run(func, args: tuple, kwargs: dict) -> Any:
    """Run one aten operation: check its tensors' devices, run it on the CPU values, re-tag the result."""
    tensors = [
        t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
    ]
    elsewhere = any(isinstance(t, ElsewhereTensor) for t in tensors)
    factory = _is_stand_in(kwargs.get("device"))
    if (
        factory or elsewhere
    ):  # draws on the second device (x.uniform_(generator=g) too) need its generator
        _check_generator(kwargs)
    if factory:
        kwargs = {**kwargs, "device": torch.device("cpu")}
    if (
        func is aten._to_copy.default
        and kwargs.get("device") is not None
        and not factory
    ):
        elsewhere = False  # .to("cpu"), .cpu(): the result is an ordinary CPU tensor
    elif elsewhere and func not in CROSS_DEVICE_OPS:
        mixed = [
            t for t in tensors if not isinstance(t, ElsewhereTensor) and t.dim() > 0
        ]
        if mixed:
            shapes = ", ".join(f"{t.device.type} {tuple(t.shape)}" for t in mixed)
            raise DeviceMixingError(
                f"Expected all tensors to be on the same device, but {func} got tensors "
                f"on the second device and on another ({shapes})"
            )
    # an output that is an input (in-place operations, x.copy_(y)) is returned as that very input
    given = {id(t.inner if isinstance(t, ElsewhereTensor) else t): t for t in tensors}
    args, kwargs = tree_map(
        lambda t: t.inner if isinstance(t, ElsewhereTensor) else t, (args, kwargs)
    )
    out = func(*args, **kwargs)

    def tag(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        if id(t) in given:
            return given[id(t)]
        return ElsewhereTensor(t) if elsewhere or factory else t

    return tree_map(tag, out)


class _Factories(TorchFunctionMode):
    """Turns ``device=meta`` in a call (torch.tensor, torch.arange, ``.new_zeros``...) into CPU values
    wrapped in an ElsewhereTensor, before torch would make data-less meta tensors. (``x.to(device)``
    reaches aten's ``_to_copy``, which :class:`_Dispatch` handles, so that it stays differentiable.)"""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # x.to(device=...) and the argument parser of Module.to pass through: _to_copy is handled below
        factory = _is_stand_in(kwargs.get("device")) and func not in PASS_THROUGH
        if factory:
            _check_generator(kwargs)
            kwargs = {**kwargs, "device": torch.device("cpu")}
        if args and isinstance(args[0], ElsewhereTensor):
            if func is torch.Tensor.tolist:  # allowed on CUDA: a copy to the host
                return args[0].inner.tolist()
            if func in (torch.Tensor.numpy, torch.Tensor.__array__):
                raise TypeError(
                    "can't convert a tensor on the second device to numpy (as with cuda:0): "
                    "use Tensor.cpu() to copy the tensor to host memory first."
                )
        out = func(*args, **kwargs)
        return _wrap(out) if factory else out


class _Dispatch(TorchDispatchMode):
    """Catches aten factories with ``device=meta`` that torch's own code calls below the Python layer."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


@contextlib.contextmanager
def stand_in() -> Iterator[torch.device]:
    """Run the block with the CPU stand-in of a second device; yields the device to move inputs to."""
    with _Factories(), _Dispatch():
        yield STAND_IN


@contextlib.contextmanager
def second_device() -> Iterator[torch.device]:
    """CUDA when ``companion.get_device()`` is CUDA, else :func:`stand_in`; yields the device."""
    device = companion.get_device()
    if device.type == "cuda":
        yield device
    else:
        with stand_in() as device:
            yield device


def on_device(value: Any, device: torch.device) -> bool:
    """Whether every tensor in ``value`` (a tensor, or nested tuples, lists and dicts) is on ``device``;
    with the stand-in, whether each is an :class:`ElsewhereTensor` (a real meta tensor has no values)."""
    tensors = [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    if device.type == STAND_IN.type:
        return all(isinstance(t, ElsewhereTensor) for t in tensors)
    return all(t.device.type == device.type for t in tensors)
