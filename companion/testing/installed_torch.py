"""What the installed torch offers, asked of torch itself.

The contract tests compare each mirror with the torch they run beside, whatever its
version in the range ``pyproject.toml`` admits. The package follows the contract of the
newest torch it was written against; an older torch in the range may lack a constructor
argument (``BatchNorm1d(bias=...)``), accept what the newer one refuses, or word an
error differently. A test then skips that comparison and says why, instead of asserting
a newer torch's behaviour.

The decision is made by feature detection: torch's signature, or torch's own call and
the message it raises; never by reading ``torch.__version__``, which appears in the
skip reasons only. :func:`accepts` and :func:`raised` need no pytest; the ``skip_*``
functions call ``pytest.skip`` and are for tests.
"""

import inspect
import warnings
from collections.abc import Callable

import torch


def accepts(target, name: str) -> bool:
    """Whether ``target`` (a function, or a class: its ``__init__``) takes an argument
    called ``name``."""
    function = target.__init__ if inspect.isclass(target) else target
    return name in inspect.signature(function).parameters


def raised(call: Callable[[], object]) -> tuple[type, str] | None:
    """``(type, message)`` of the exception ``call()`` raises (warnings silenced), or
    None if it returns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except Exception as error:  # noqa: BLE001 - whatever torch raises is compared
            return type(error), str(error)
    return None


def _skip(reason: str) -> None:
    import pytest  # only in a test: the detection above needs no pytest

    pytest.skip(f"torch {torch.__version__}: {reason}")


def skip_unless_accepts(target, *names: str) -> None:
    """Skip the test unless torch's ``target`` takes every argument in ``names``."""
    missing = [name for name in names if not accepts(target, name)]
    if missing:
        names = ", ".join(map(repr, missing))
        _skip(f"{target.__qualname__} has no argument {names}")


def skip_unless_shown(shown: str, phrase: str, what: str) -> None:
    """Skip the test unless ``phrase`` is in ``shown``, something this torch printed (a
    repr): where it is not, this torch does not show ``what``."""
    if phrase not in shown:
        _skip(f"does not show {what} (no {phrase!r})")


def skip_unless_worded(
    theirs: tuple[type, str] | None, wording: str | None, what: str
) -> None:
    """Skip a comparison with torch's error ``theirs`` (from :func:`raised` on torch's
    call) where this torch refuses ``what`` differently: it does not raise at all, or
    ``wording``, a phrase of the message the mirror implements, is not in its message.
    With ``wording=None`` only the first."""
    if theirs is None:
        _skip(f"accepts {what} (a newer torch refuses it)")
    if wording is not None and wording not in theirs[1]:
        message = f"{theirs[0].__name__}({theirs[1]!r})"
        _skip(f"words {what} differently: {message}, not {wording!r}")


def skip_unless_supported(call: Callable[[], object], what: str) -> None:
    """Skip the test unless torch's own ``call()`` runs: where it raises, this torch
    lacks ``what``."""
    error = raised(call)
    if error is not None:
        _skip(f"its own code lacks {what}: {error[0].__name__}({error[1]!r})")
