"""What an assignment's hidden ``checks.py`` is written with, on the trusted side: the ``@check(points,
probe=...)`` decorator, the extraction of the probes that go into the sandbox, the decoding of what they
observed, and comparisons with torch that say *where* an answer differs (for the feedback).

A check is a pair. Its **probe** (decorated with :func:`companion.coursework.probes.probe`) runs in the
answer's sandboxed process: ``probe(ns, seed)`` calls the answer (``ns["Adamax"]``) on inputs drawn from
``seed`` and returns plain data (see :func:`companion.coursework.probes.encode`). Its **judge**, the
function decorated with ``@check``, runs in the grader only: ``judge(obs, seed)`` receives the decoded
observation, computes torch's answer on the same inputs and returns on success or raises an
AssertionError with a readable message. The sandbox receives the probes' source (:func:`probe_source`: the
``@probe`` functions, the file's literal constants and its imports of ``math``, ``torch``, ``torch.nn``,
``inspect`` and the probes module), never the judges, torch's reference or the tolerances.
"""

import ast
import base64
import importlib.util
import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from companion.testing.tolerances import mismatch


def check(points: float, probe=None):
    """Mark a judge as a graded check worth ``points``, observed by ``probe``; its docstring's first line
    names it in feedback."""
    if points <= 0:
        raise ValueError(f"points must be positive, got {points}")
    if probe is not None and not getattr(probe, "is_probe", False):
        raise ValueError("a check's probe must be decorated with @probe")

    def mark(fn):
        fn.points = points
        fn.probe = probe
        return fn

    return mark


def load_checks(path) -> object:
    """Import an assignment's checks file as a module (named after its folder): trusted side only."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"checks_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checks_of(module) -> list[tuple[str, object]]:
    """The module's checks (judges) in the order they are written."""
    return [
        (name, fn)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn)
        and hasattr(fn, "points")
        and fn.__module__ == module.__name__
    ]


def summary(fn) -> str:
    return (inspect.getdoc(fn) or getattr(fn, "__name__", "check")).splitlines()[0]


PROBE_IMPORTS = ("math", "inspect", "torch", "torch.nn", "companion.coursework.probes")


def _is_probe(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        (isinstance(d, ast.Name) and d.id == "probe")
        or (isinstance(d, ast.Attribute) and d.attr == "probe")
        for d in node.decorator_list
    )


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def probe_source(path) -> str:
    """The part of a checks file the sandbox receives: its imports of :data:`PROBE_IMPORTS`, its
    assignments of literal constants and its ``@probe`` functions (with their docstrings). Judges,
    references (``TorchAdamax = torch.optim.Adamax`` is not a literal) and other imports stay out."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    keep = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            if all(a.name in PROBE_IMPORTS for a in node.names):
                keep.append(node)
        elif isinstance(node, ast.ImportFrom):
            names = [f"{node.module}.{a.name}" for a in node.names]
            if not node.level and (
                node.module in PROBE_IMPORTS or all(n in PROBE_IMPORTS for n in names)
            ):
                keep.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            if node.value is not None and _literal(node.value):
                keep.append(node)
        elif _is_probe(node):
            keep.append(node)
    return ast.unparse(ast.Module(body=keep, type_ignores=[])) + "\n"


# -- what arrives from the sandbox ---------------------------------------------------------------------


class Malformed(Exception):
    """An observation that is not what :func:`companion.coursework.probes.encode` writes."""


@dataclass(frozen=True)
class Raised:
    """The answer raised ``type`` with ``message`` (its first line)."""

    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.type}({self.message!r})"


@dataclass(frozen=True)
class Unplain:
    """Something the probe would not serialize: a tensor subclass, or an object of another type."""

    kind: str  # "subclass" or "other"
    name: str

    def __str__(self) -> str:
        if self.kind == "subclass":
            return (
                f"the answer returned a tensor subclass ({self.name}); "
                "only torch.Tensor and nn.Parameter are compared"
            )
        return f"expected a plain value, got {self.name}"


DTYPES = {
    name: getattr(torch, name)
    for name in (
        *("float64", "float32", "float16", "bfloat16", "complex64", "complex128"),
        *("int64", "int32", "int16", "int8", "uint8", "bool"),
    )
}
MAX_DEPTH = 14
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ .")


def _name(text) -> str:
    if type(text) is not str:
        raise Malformed("a type name that is not a string")
    return "".join(c for c in text[:60] if c in _NAME_CHARS) or "?"


def decode(value, depth: int = 0):
    """An observation back in Python: tensors rebuilt here as plain ``torch.Tensor`` from their bytes
    (their dtype, shape and length checked), errors as :class:`Raised`, subclasses and other objects as
    :class:`Unplain`. Anything else raises :class:`Malformed`."""
    if depth > MAX_DEPTH:
        raise Malformed("nested too deeply")
    t = type(value)
    if value is None or t in (bool, int, str, float):
        return value
    if t is list:
        return [decode(v, depth + 1) for v in value]
    if t is not dict or len(value) != 1:
        raise Malformed(f"an unexpected {t.__name__}")
    ((tag, body),) = value.items()
    if tag == "tensor":
        return _tensor(body)
    if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "dict" and type(body) is list:
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise Malformed("a dict entry that is not a pair")
            key = decode(pair[0], depth + 1)
            if type(key) not in (str, int, float, bool) and key is not None:
                raise Malformed("a dict key that is not a plain value")
            out[key] = decode(pair[1], depth + 1)
        return out
    if tag == "error" and type(body) is dict and set(body) == {"type", "message"}:
        if type(body["message"]) is not str:
            raise Malformed("an error message that is not a string")
        return Raised(_name(body["type"]), body["message"][:300])
    if tag in ("subclass", "other"):
        return Unplain(tag, _name(body))
    raise Malformed(f"an unknown value ({_name(str(tag))})")


def _tensor(body) -> torch.Tensor:
    if type(body) is not dict or set(body) != {"dtype", "shape", "data"}:
        raise Malformed("a tensor without exactly dtype, shape and data")
    dtype = DTYPES.get(body["dtype"]) if type(body["dtype"]) is str else None
    shape = body["shape"]
    if dtype is None:
        raise Malformed(f"a tensor of an unknown dtype ({_name(str(body['dtype']))})")
    if (
        type(shape) is not list
        or len(shape) > 8
        or any(type(n) is not int or n < 0 for n in shape)
    ):
        raise Malformed("a tensor with an invalid shape")
    if type(body["data"]) is not str:
        raise Malformed("a tensor whose data is not a string")
    try:
        raw = base64.b64decode(body["data"], validate=True)
    except ValueError:
        raise Malformed("a tensor whose data is not base64") from None
    numel = math.prod(shape)
    size = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * size:
        raise Malformed(
            f"a tensor of shape {tuple(shape)} ({body['dtype']}) with {len(raw)} bytes"
        )
    if not raw:
        return torch.empty(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if dtype is torch.bool and bool((flat > 1).any()):
        raise Malformed("a bool tensor with bytes other than 0 and 1")
    return flat.view(dtype).reshape(shape).clone()


# -- comparisons for judges -----------------------------------------------------------------------------


def plain_tensor(actual, what: str) -> torch.Tensor:
    """``actual`` if it is a decoded tensor; else an AssertionError that says what arrived instead."""
    if isinstance(actual, (Unplain, Raised)):
        raise AssertionError(f"{what}: {actual}")
    if type(actual) is not torch.Tensor:
        raise AssertionError(f"{what}: expected a tensor, got {type(actual).__name__}")
    return actual


def close(actual, expected: torch.Tensor, *, ulps: float, what: str) -> None:
    """Like tolerances.assert_close, with the message made for a student. ``actual`` is a decoded
    observation: anything but a tensor, a wrong shape or dtype, or NaN/inf where torch's values are finite
    fails before the values are compared."""
    actual = plain_tensor(actual, what)
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what}: shape {tuple(actual.shape)}, torch gives {tuple(expected.shape)}"
        )
    if actual.dtype != expected.dtype:
        raise AssertionError(
            f"{what}: dtype {actual.dtype}, torch gives {expected.dtype}"
        )
    if expected.is_floating_point() and bool(expected.isfinite().all()):
        if not bool(actual.isfinite().all()):
            raise AssertionError(f"{what}: NaN or inf where torch's values are finite")
    m = mismatch(actual, expected)
    if not m.ulps <= ulps:
        raise AssertionError(f"{what} differs from torch: {m}")


def error_of(fn, *args, **kwargs) -> str | None:
    """torch's ValueError message (first line, as a probe records it) for these arguments, or None."""
    try:
        fn(*args, **kwargs)
    except ValueError as exc:
        text = str(exc).strip()
        return text.splitlines()[0][:300] if text else ""
    return None


def raises_like(got, want: str | None, shown: str) -> None:
    """The answer's observed outcome ``got`` is torch's ValueError ``want`` (a message)."""
    if want is None:
        raise RuntimeError(f"torch accepts {shown}: the check itself is wrong")
    if not (
        isinstance(got, Raised) and got.type == "ValueError" and got.message == want
    ):
        said = f"raises {got}" if isinstance(got, Raised) else "raises nothing"
        raise AssertionError(
            f"with ({shown}) torch raises ValueError({want!r}); yours {said}"
        )


def shown(args: tuple = (), kwargs: dict | None = None) -> str:
    return ", ".join(
        [*map(repr, args), *(f"{k}={v!r}" for k, v in (kwargs or {}).items())]
    )


def same_signature(got, want: list, what: str) -> None:
    """The observed ``signature_of`` list equals torch's."""

    def text(sig) -> str:
        if type(sig) is not list:
            return "?"
        parts = []
        for p in sig:
            if type(p) is not list or len(p) != 3 or not all(type(x) is str for x in p):
                return "?"
            parts.append(p[0] + ("" if p[2] == "<empty>" else "=" + p[2]))
        return "(" + ", ".join(parts) + ")"

    if got != want:
        raise AssertionError(f"{what}: yours is {text(got)}, torch's is {text(want)}")
