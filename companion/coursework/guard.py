"""The from-scratch rule, enforced twice: in the answer's source (AST) and at run time.

Static: every dotted name the answer reaches (``torch.optim.Adamax``, ``F.rms_norm`` with ``F`` bound by
``import torch.nn.functional as F``, ``from torch.optim import Adamax as A``, ``getattr(torch.optim,
"Adamax")``) is resolved through the imports of the setup cell and of the answer and compared with the
assignment's ``forbidden`` prefixes.

Static, for every assignment: the answer may not reach objects dynamically (:func:`dynamic_violations`):
no ``getattr``/``setattr``/``delattr`` with a computed name, no ``eval``/``exec``/``compile``/``__import__``,
no ``importlib``, ``sys.modules``, ``gc``, frames (``sys._getframe``, ``f_back``, ``tb_frame``, ...),
``inspect``, ``ctypes``, ``pickle``, ``marshal``, ``operator.attrgetter``/``methodcaller``, no attributes
such as ``__code__``, ``__globals__``, ``__builtins__``, ``__wrapped__``, ``__bases__``, ``__subclasses__``,
``__mro__`` or a module's ``__dict__``, no ``torch._C`` or ``torch.ops``, and nothing that writes to a file
descriptor (``os.write``, ``os.fdopen``, ``os.dup``, ``/proc/self/fd``), no ``torch.overrides`` or dispatch
modes. (``signal`` stays allowed: the grader times the checks itself, see ``sandbox``.)

Static, for every assignment: the answer may not change what the checks run with (:func:`patching_violations`):
no import of the course's checks (``companion.testing``, ``companion.coursework`` and what is under them), no
assignment or ``del`` of an attribute of an imported module or of a name bound to one (``torch.Tensor.x = ...``,
``T = type(p); T.x = ...``, ``setattr(mod, "x", ...)``), no assignment to ``__class__``, ``__dict__`` or a
function's defaults. Each is reported with the rule's name, so the student knows what to change.

Run time, by construction (:func:`remove`): in the answer's process (the sandbox, which holds no check and
no reference: the grader judges in its own process), the torch implementations named in the assignment's
``remove`` list are taken out, with every alias, and their ATen kernels replaced by refusals; what the
answer finds in their place raises :class:`Forbidden`, naming the rule. Every refusal is recorded.
"""

import ast
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


DYNAMIC = (
    "the no-dynamic-access rule (write plain names: no getattr, eval, frames, ...)"
)
# names the answer may not use at all (built-ins and modules, matched on the resolved dotted name)
BLOCKED_NAMES = {
    "eval": "eval",
    "exec": "exec",
    "compile": "compile",
    "__import__": "__import__",
    "globals": "globals()",
    "locals": "locals()",
    "vars": "vars()",
    "breakpoint": "breakpoint()",
    "importlib": "importlib",
    "gc": "gc",
    "inspect": "inspect",
    "ctypes": "ctypes",
    "_ctypes": "ctypes",
    "pickle": "pickle",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "dill": "pickle",
    "copyreg": "copyreg",
    "marshal": "marshal",
    "builtins": "builtins",
    "types": "types",
    "sys.modules": "sys.modules",
    "sys._getframe": "sys._getframe",
    "sys._current_frames": "sys._current_frames",
    "sys.settrace": "sys.settrace",
    "sys.setprofile": "sys.setprofile",
    "sys.exc_info": "sys.exc_info",
    "sys.exception": "sys.exception",
    "sys.last_traceback": "sys.last_traceback",
    "sys.meta_path": "sys.meta_path",
    "sys.path_hooks": "sys.path_hooks",
    "operator.attrgetter": "operator.attrgetter",
    "operator.methodcaller": "operator.methodcaller",
    "string.Formatter": "string.Formatter",
    "pydoc": "pydoc",
    "pkgutil": "pkgutil",
    "runpy": "runpy",
    "code": "code",
    "codeop": "codeop",
    "faulthandler": "faulthandler",
    "traceback": "traceback",
    "posix": "posix",
    "_posixsubprocess": "_posixsubprocess",
    "subprocess": "subprocess",
    "multiprocessing": "multiprocessing",
    "_io": "_io",
    "io.FileIO": "io.FileIO",
    "mmap": "mmap",
    "os.write": "os.write",
    "os.writev": "os.writev",
    "os.pwrite": "os.pwrite",
    "os.pwritev": "os.pwritev",
    "os.sendfile": "os.sendfile",
    "os.splice": "os.splice",
    "os.copy_file_range": "os.copy_file_range",
    "os.fdopen": "os.fdopen",
    "os.open": "os.open",
    "os.dup": "os.dup",
    "os.dup2": "os.dup2",
    "os.fork": "os.fork",
    "os.forkpty": "os.forkpty",
    "os.setsid": "os.setsid",
    "os.setpgid": "os.setpgid",
    "os.memfd_create": "os.memfd_create",
    "torch._C": "torch._C",
    "torch.ops": "torch.ops",
    "torch._ops": "torch._ops",
    "torch.library": "torch.library",
    "torch.jit": "torch.jit",
    "torch.utils.cpp_extension": "torch.utils.cpp_extension",
    "torch.overrides": "torch.overrides",
    "torch.utils._python_dispatch": "torch.utils._python_dispatch",
    "torch._subclasses": "torch._subclasses",
    # code from elsewhere: a search path, a pickle, a hub or package archive, a compiled library
    "sys.path": "sys.path",
    "site": "site",
    "zipimport": "zipimport",
    "imp": "imp",
    "shelve": "shelve",
    "torch.load": "torch.load (a pickle)",
    "torch.serialization": "torch.serialization",
    "torch.hub": "torch.hub",
    "torch.package": "torch.package",
    "torch.classes": "torch.classes",
    "numpy.load": "numpy.load (a pickle)",
}
# attributes the answer may not read on anything: the ways into code objects, frames and namespaces
BLOCKED_ATTRIBUTES = {
    "__code__",
    "__globals__",
    "__builtins__",
    "__wrapped__",
    "__bases__",
    "__base__",
    "__subclasses__",
    "__mro__",
    "__closure__",
    "__getattribute__",
    "__import__",
    "__loader__",
    "__spec__",
    "__reduce__",
    "__reduce_ex__",
    "__self__",
    "__func__",
    "__traceback__",
    "cell_contents",
    "f_back",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_code",
    "tb_frame",
    "tb_next",
    "gi_frame",
    "cr_frame",
    "ag_frame",
    "gi_code",
    "co_consts",
    "_getframe",
    "__setattr__",
    "__delattr__",
    "__defaults__",
    "__kwdefaults__",
}
# modules reached as another module's attribute (torch.sys.modules): blocked on a module only, since
# an object of the answer's may have an attribute of the same name
MODULE_ONLY = {
    "sys",
    "os",
    "gc",
    "inspect",
    "importlib",
    "builtins",
    "ctypes",
    "pickle",
}
MODULE_ONLY |= {"marshal", "subprocess", "_posixsubprocess", "_C", "ops"}
BLOCKED_ATTRIBUTES |= MODULE_ONLY
_BUILTINS = ("eval", "exec", "compile", "__import__", "globals", "locals", "vars")
_BUILTINS += ("breakpoint",)
_SPOOFED = {"__module__", "__qualname__"}
_FD_PATHS = ("/proc/", "/dev/fd")


def _module_root(node: ast.AST, aliases: dict) -> bool:
    """True if ``node`` is a dotted name that starts at an imported module (not ``self`` or a local)."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in aliases


def _blocked(name: str | None) -> str | None:
    if not name:
        return None
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        hit = BLOCKED_NAMES.get(".".join(parts[:cut]))
        if hit:
            return hit
    return None


def dynamic_violations(setup: str, answers: list[str]) -> list[str]:
    """The ways the answer's source reaches objects dynamically, each as
    'getattr with a computed name (line 3 of answer cell 1)'."""
    aliases = _aliases(ast.parse(setup), {})
    found = []
    for i, source in enumerate(answers, 1):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # reported when the cell runs
        _aliases(tree, aliases)
        literal_getattr = set()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "delattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and node.args[1].value not in BLOCKED_ATTRIBUTES
            ):
                literal_getattr.add(id(node.func))
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.Name) and node.id in (
                "getattr",
                "setattr",
                "delattr",
            ):
                if id(node) not in literal_getattr:
                    what = f"{node.id} with a computed name"
            elif isinstance(node, ast.Name) and node.id in _SPOOFED:
                if isinstance(node.ctx, ast.Store):
                    what = f"an assignment to {node.id}"
            elif isinstance(node, ast.Name) and node.id in _BUILTINS:
                what = BLOCKED_NAMES[node.id]
            elif isinstance(node, ast.Name) and node.id in aliases:
                what = _blocked(aliases[node.id])
            elif isinstance(node, ast.Attribute):
                what = _blocked(_dotted(node, aliases))
                if what:
                    pass
                elif node.attr in _SPOOFED and isinstance(node.ctx, ast.Store):
                    what = f"an assignment to .{node.attr}"
                elif node.attr in BLOCKED_ATTRIBUTES and (
                    node.attr not in MODULE_ONLY or _module_root(node.value, aliases)
                ):
                    what = f".{node.attr}"
                elif node.attr == "__dict__" and _module_root(node.value, aliases):
                    what = "a module's __dict__"
            elif isinstance(node, ast.Import):
                what = next(filter(None, (_blocked(a.name) for a in node.names)), None)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                what = _blocked(node.module) or next(
                    filter(
                        None,
                        (_blocked(f"{node.module}.{a.name}") for a in node.names),
                    ),
                    None,
                )
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if any(p in node.value for p in _FD_PATHS):
                    what = "a path under /proc or /dev/fd"
            if what:
                found.append(f"{what} (line {node.lineno} of answer cell {i})")
    return sorted(set(found), key=found.index)


PATCHING = (
    "the no-patching rule (the course's checks are not the answer's to import, "
    "and imported modules are not the answer's to change)"
)
COURSE_CHECKS = ("companion.testing", "companion.coursework")
# attributes whose assignment changes what an object is or does, on anything
_REBINDS = {"__class__", "__dict__", "__defaults__", "__kwdefaults__"}


def _course_checks(name: str | None) -> str | None:
    return _matches(name, list(COURSE_CHECKS)) if name else None


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _imported(node: ast.AST, bound: set) -> bool:
    """True if ``node`` (an object expression) is an imported module or a name bound to one, something
    reached from one by attributes or subscripts, a ``type(...)`` call, or reached through ``__class__``."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute) and node.attr == "__class__":
            return True
        node = node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "type"
    return isinstance(node, ast.Name) and node.id in bound


def patching_violations(setup: str, answers: list[str]) -> list[str]:
    """The ways the answer's source imports the course's checks or changes an imported module, each as
    'an import of companion.testing (line 1 of answer cell 1)'."""
    aliases = _aliases(ast.parse(setup), {})
    found = []
    for i, source in enumerate(answers, 1):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # reported when the cell runs
        _aliases(tree, aliases)
        bound = set(aliases)
        # names bound to an import, to something reached from one (T = torch.Tensor) or to a type
        changed = True
        while changed:
            changed = False
            for node in ast.walk(tree):
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                    targets = (
                        node.targets if isinstance(node, ast.Assign) else [node.target]
                    )
                    if node.value is not None and _imported(node.value, bound):
                        for t in targets:
                            for n in ast.walk(t):
                                if isinstance(n, ast.Name) and n.id not in bound:
                                    bound.add(n.id)
                                    changed = True
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.Import):
                hit = next(
                    filter(None, (_course_checks(a.name) for a in node.names)), None
                )
                what = hit and f"an import of {hit}"
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                hit = next(filter(None, map(_course_checks, names)), None)
                what = hit and f"an import of {hit}"
            elif isinstance(node, ast.Attribute) and not _course_checks(
                _dotted(node.value, aliases)
            ):  # companion.testing reached from an import of companion (once per chain)
                hit = _course_checks(_dotted(node, aliases))
                what = hit and f"a use of {hit}"
            if what:
                pass
            elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(
                node.ctx, (ast.Store, ast.Del)
            ):
                verb = (
                    "a del of" if isinstance(node.ctx, ast.Del) else "an assignment to"
                )
                if isinstance(node, ast.Attribute) and node.attr in _REBINDS:
                    what = f"{verb} .{node.attr}"
                elif _imported(node.value, bound):
                    what = f"{verb} {_dotted(node, aliases) or 'an attribute'}"
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("setattr", "delattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
            ):  # with a computed name: the no-dynamic-access rule's
                name = node.args[1] if len(node.args) > 1 else None
                literal = isinstance(name, ast.Constant) and name.value
                if literal in _REBINDS or _imported(node.args[0], bound):
                    what = f"{node.func.id} on an imported module or a type"
            if what:
                found.append(f"{what} (line {node.lineno} of answer cell {i})")
    return sorted(set(found), key=found.index)


def static_violations(
    setup: str, answers: list[str], forbidden: list[str]
) -> list[str]:
    """What the answer's source breaks, each rule with its name: 'the from-scratch rule: the answer uses
    torch.optim.Adamax (line 3 of answer cell 1)', then the dynamic-access rule's findings."""
    out = []
    scratch = _forbidden_names(setup, answers, forbidden)
    if scratch:
        out.append("the from-scratch rule: the answer uses " + "; ".join(scratch))
    patching = patching_violations(setup, answers)
    if patching:
        out.append(f"{PATCHING}: the answer uses " + "; ".join(patching))
    dynamic = dynamic_violations(setup, answers)
    if dynamic:
        out.append(f"{DYNAMIC}: the answer uses " + "; ".join(dynamic))
    return out


def _forbidden_names(setup: str, answers: list[str], forbidden: list[str]) -> list[str]:
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


class Removed:
    """What the answer's process finds where the grader removed a torch implementation: calling it, reading
    one of its attributes or subclassing it raises :class:`Forbidden`, naming it. It holds no reference to
    what it replaced, so there is nothing behind it to reach (no ``__wrapped__``, no base class)."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def _refuse(self):
        _REFUSED.append(self._name)
        raise Forbidden(
            f"the from-scratch rule: the answer uses {self._name}, "
            "which is not in the grader's process"
        )

    def __call__(self, *args, **kwargs):
        self._refuse()

    def __getattr__(self, attr: str):
        # what Python's own machinery asks (copy, pickle, typing)
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        self._refuse()

    def __mro_entries__(self, bases):  # ``class A(torch.optim.Adamax)``
        self._refuse()

    def __repr__(self) -> str:
        return f"<removed by the grader: {self._name}>"


_REFUSED: list[str] = []  # the child's record of refusals (see :func:`remove`)
_LIBRARIES: list = []  # torch.library registrations stay in force while they are referenced
# the dispatch keys whose kernel an ``aten::`` entry loses (where the operator has one)
_KERNEL_KEYS = ("CPU", "CUDA", "MPS", "XPU", "Meta")
_KERNEL_KEYS += ("CompositeImplicitAutograd", "CompositeExplicitAutograd")


def remove(names: list[str], record: list[str]) -> list[str]:
    """Take the torch implementations an assignment forbids out of this process (the answer's: the grader
    holds its own torch). Each dotted name in ``names`` and every alias of it in a loaded module (found by
    identity: ``torch.optim.Adamax`` is also ``torch.optim.adamax.Adamax``) becomes a :class:`Removed`; a
    module among them cannot be imported again (``sys.modules`` maps it to None); an ``aten::op`` entry
    loses its kernels in torch's dispatcher, so that no route reaches it (``torch._C._VariableFunctions``,
    ``torch.ops.aten``, ``torch._VF``, a method). Names this torch lacks are skipped. Refusals are appended
    to ``record``. Returns the names of the modules removed (the child's audit hook refuses to import them
    again)."""
    import gc
    import types

    global _REFUSED
    _REFUSED = record
    originals, modules = {}, []
    for name in names:
        if name.startswith("aten::"):
            _remove_operator(name)
            continue
        try:
            obj = _lookup(name)
        except (ImportError, AttributeError):
            continue  # not in this release of torch
        # the first name listed is the one reported
        originals.setdefault(id(obj), (obj, name))
        if isinstance(obj, types.ModuleType):
            modules.append(obj.__name__)
    for module in list(sys.modules.values()):
        try:
            namespace = module.__dict__ if module is not None else {}
        except Exception:  # noqa: BLE001 - a lazy module that fails to load
            continue
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            hit = originals.get(id(value))
            if hit is not None and hit[0] is value:
                namespace[key] = Removed(hit[1])
    for name in modules:
        sys.modules[name] = None  # ``import`` raises ImportError
    del originals
    gc.collect()  # a removed class leaves its base class's __subclasses__()
    return modules


def _lookup(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _remove_operator(op: str) -> None:
    """Replace every kernel of the ATen operator ``op`` (``aten::mish``) by one that raises Forbidden."""
    import warnings

    import torch

    def refuse(*args, **kwargs):
        Removed(op)()

    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
        for key in _KERNEL_KEYS:
            try:
                present = torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
            except RuntimeError:  # no such operator in this release of torch
                return
            # over torch's own Python kernels too (torch 2.9 registers Meta ones)
            if present:
                library.impl(op.split("::", 1)[1], refuse, key, allow_override=True)
    _LIBRARIES.append(library)
