"""The from-scratch rule, enforced twice: in the answer's source (AST) and at run time.

Static: every dotted name the answer reaches (``torch.optim.Adamax``, ``F.rms_norm`` with ``F`` bound by
``import torch.nn.functional as F``, ``from torch.optim import Adamax as A``, ``getattr(torch.optim,
"Adamax")``) is resolved through the imports of the setup cell and of the answer and compared with the
assignment's ``forbidden`` prefixes.

Run time: each object named in ``guard`` is replaced, inside the grading process only, by a wrapper that
raises :class:`Forbidden` when the call comes from the answer (a frame compiled from an answer cell, or a
method of a class the answer defined) and otherwise calls the original, so the hidden checks can still use
torch as the oracle. A guarded class cannot be subclassed at all. Every refusal is recorded.
"""

import ast
import functools
import importlib
import sys

ANSWER_MODULE = "__answer__"
ANSWER_FILE = "<answer cell"


class Forbidden(Exception):
    """The answer used the torch implementation it has to replace."""


def _dotted(node: ast.AST, aliases: dict) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        root = aliases.get(node.id, node.id)
        return ".".join([root, *reversed(parts)])
    return None


def _aliases(tree: ast.AST, aliases: dict) -> dict:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _matches(name: str, forbidden: list[str]) -> str | None:
    for f in forbidden:
        if name == f or name.startswith(f + "."):
            return f
    return None


def static_violations(
    setup: str, answers: list[str], forbidden: list[str]
) -> list[str]:
    """Forbidden names the answer's source reaches, each as 'torch.optim.Adamax (line 3 of answer cell 1)'."""
    if not forbidden:
        return []
    aliases = _aliases(ast.parse(setup), {})
    found = []
    for i, source in enumerate(answers, 1):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # reported when the cell runs
        _aliases(tree, aliases)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, (ast.Attribute, ast.Name)):
                names.append(_dotted(node, aliases))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
            ):
                base = _dotted(node.args[0], aliases)
                names.append(f"{base}.{node.args[1].value}" if base else None)
            for name in names:
                hit = name and _matches(name, forbidden)
                if hit:
                    found.append(f"{name} (line {node.lineno} of answer cell {i})")
    return sorted(set(found), key=found.index)


def _from_answer() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(ANSWER_FILE):
            return True
        owner = frame.f_locals.get("self")
        if (
            owner is not None
            and getattr(type(owner), "__module__", None) == ANSWER_MODULE
        ):
            return True
        frame = frame.f_back
    return False


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:-1]:
            obj = getattr(obj, attr)
        return obj, parts[-1]
    raise ValueError(f"cannot resolve {dotted}")


def _guarded(dotted: str, original, record: list):
    def refuse():
        record.append(dotted)
        raise Forbidden(f"the from-scratch rule: the answer uses {dotted}")

    if isinstance(original, type):

        def init_subclass(cls, **kwargs):
            refuse()

        def init(self, *args, **kwargs):
            if _from_answer():
                refuse()
            original.__init__(self, *args, **kwargs)

        return type(
            original.__name__,
            (original,),
            {
                "__init_subclass__": classmethod(init_subclass),
                "__init__": init,
                "__module__": original.__module__,
                "__qualname__": original.__qualname__,
            },
        )

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if _from_answer():
            refuse()
        return original(*args, **kwargs)

    return wrapper


def install(guarded: list[str], record: list[str]) -> None:
    """Replace each dotted name in ``guarded`` by its guarded version; refusals are appended to ``record``."""
    for dotted in guarded:
        owner, attr = _resolve(dotted)
        setattr(owner, attr, _guarded(dotted, getattr(owner, attr), record))
