"""What an assignment's hidden ``checks.py`` is written with: the ``@check(points)`` decorator, and
comparisons with torch that say *where* an answer differs (for the feedback).

A check is a function of the answer's namespace (a dict: ``ns["Adamax"]``) that returns on success and
raises (an AssertionError with a readable message) on failure. The course's own contract checks
(``companion.testing.optim_contract.check_*``) are used as they are; :func:`contract` runs one and
puts what it checked in front of its message.
"""

import importlib.util
import inspect
from pathlib import Path

import torch

from companion.testing.tolerances import PLAIN_TENSORS, mismatch, refuse_subclass


def check(points: float):
    """Mark a function as a graded check worth ``points``; its docstring's first line names it in feedback."""
    if points <= 0:
        raise ValueError(f"points must be positive, got {points}")

    def mark(fn):
        fn.points = points
        return fn

    return mark


def load_checks(path) -> object:
    """Import an assignment's checks file as a module (named after its folder)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"checks_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checks_of(module) -> list[tuple[str, object]]:
    """The module's checks in the order they are written."""
    return [
        (name, fn)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn)
        and hasattr(fn, "points")
        and fn.__module__ == module.__name__
    ]


def summary(fn) -> str:
    return (inspect.getdoc(fn) or fn.__name__).splitlines()[0]


def contract(what: str, fn, *args, **kwargs) -> None:
    """Run a contract check; on failure say what was checked and the check's own message."""
    try:
        fn(*args, **kwargs)
    except AssertionError as exc:
        detail = (
            " ".join(line.strip() for line in str(exc).strip().splitlines())[:400]
            or "does not hold"
        )
        raise AssertionError(f"{what}: {detail}") from None


def close(actual, expected, *, ulps: float, what: str) -> None:
    """Like tolerances.assert_close, with the message made for a student. ``actual`` comes from the answer:
    anything but a plain ``torch.Tensor`` or ``nn.Parameter`` (a subclass could lie about its values) fails
    before any operation on it."""
    try:
        refuse_subclass(actual)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None
    if type(actual) not in PLAIN_TENSORS:
        raise AssertionError(f"{what}: expected a tensor, got {type(actual).__name__}")
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what}: shape {tuple(actual.shape)}, torch gives {tuple(expected.shape)}"
        )
    if actual.dtype != expected.dtype:
        raise AssertionError(
            f"{what}: dtype {actual.dtype}, torch gives {expected.dtype}"
        )
    m = mismatch(actual, expected)
    if not m.ulps <= ulps:
        raise AssertionError(f"{what} differs from torch: {m}")


def trace_optimizer(
    ours, theirs, options: dict, *, steps: int = 30, ulps: float = 1e4, seed: int = 0
) -> None:
    """Feed both optimizers one fixed sequence of gradients; fail at the first step where the parameters or
    the state differ, naming the step, the tensor and the index (float64).

    ``ulps`` is loose on purpose (1e4 ε·scale after 30 steps): an answer that writes the formula in another
    order drifts by a few ε per step, a wrong formula by many orders of magnitude more."""
    gen = torch.Generator().manual_seed(seed)
    shapes = ((3, 4), (5,))
    init = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [
        [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        for _ in range(steps)
    ]
    params = [[t.clone().requires_grad_() for t in init] for _ in range(2)]
    opts = [ours(params[0], **options), theirs(params[1], **options)]
    for t in range(steps):
        for ps, opt in zip(params, opts):
            for p, g in zip(ps, grads[t]):
                p.grad = g.clone()
            opt.step()
        for i, (a, b) in enumerate(zip(*params)):
            m = mismatch(a, b)
            if not m.ulps <= ulps:
                raise AssertionError(
                    f"with {options or 'the defaults'}, after step {t + 1} parameter {i} "
                    f"differs from torch: {m}"
                )
            sa, sb = opts[0].state.get(a, {}), opts[1].state.get(b, {})
            if set(sa) != set(sb):
                raise AssertionError(
                    f"after step {t + 1} the state keys are {sorted(sa)}, torch has {sorted(sb)}"
                )
            for key in sb:
                _plain_state(sa[key], f"after step {t + 1} state[{key!r}]")
                m = mismatch(
                    torch.as_tensor(sa[key]).to(torch.float64),
                    torch.as_tensor(sb[key]).to(torch.float64),
                )
                if not m.ulps <= ulps:
                    raise AssertionError(
                        f"after step {t + 1} state[{key!r}] of parameter {i} differs from torch: {m}"
                    )


def _plain_state(value, what: str) -> None:
    """An optimizer state value the comparison accepts: a plain tensor or a Python number (exact types)."""
    if type(value) in (int, float, bool):
        return
    try:
        refuse_subclass(value)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None
    if type(value) not in PLAIN_TENSORS:
        raise AssertionError(f"{what} is a {type(value).__name__}, not a tensor")


def raises_like(ours, theirs, *args, **kwargs) -> None:
    """Both raise ValueError with the same message for these arguments (without pytest)."""

    def error(f):
        try:
            f(*args, **kwargs)
        except ValueError as exc:
            return str(exc)
        return None

    want, got = error(theirs), error(ours)
    if want is None:
        raise RuntimeError(f"torch accepts {args} {kwargs}: the check itself is wrong")
    if got != want:
        shown = ", ".join(
            [*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())]
        )
        raise AssertionError(
            f"with ({shown}) torch raises ValueError({want!r}); yours "
            + ("raises nothing" if got is None else f"raises ValueError({got!r})")
        )


def refuses_switches(
    cls, switches: tuple[str, ...], group_keys: tuple[str, ...]
) -> None:
    """``switches`` are accepted off and refused on with a ValueError naming them, and a parameter group
    holds torch's ``group_keys``."""
    p = [torch.zeros(2, requires_grad=True)]
    opt = cls(p, **{name: None if name == "foreach" else False for name in switches})
    for key in group_keys:
        assert key in opt.param_groups[0], (
            f"the parameter group has no {key!r} (torch's has)"
        )
    for name in switches:
        try:
            cls(p, **{name: True})
        except ValueError as exc:
            assert name in str(exc), (
                f"the ValueError for {name}=True does not name {name!r}: {exc}"
            )
        else:
            raise AssertionError(
                f"{name}=True is accepted; it should raise a ValueError naming it"
            )
