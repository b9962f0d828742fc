"""Coursework, the fast part: solution regions, the release (no solution leaks), the from-scratch rule's
static check and run-time guard, the command line. The grading runs are in test_coursework_grading.py."""

import io
import json
import re
import subprocess
import sys
import types
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from companion.coursework import assignment as asg
from companion.coursework import child, guard, release
from companion.coursework.__main__ import main

NAMES = asg.names()
PARTS = {
    "Regularization",
    "Optimization",
    "Initialization, activations and normalization",
}


def test_six_assignments_cover_every_part():
    assert len(NAMES) >= 6
    assert {asg.load(n).meta["part"] for n in NAMES} == PARTS
    assert {"adamax", "rmsnorm"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_assignment_is_complete(name):
    a = asg.load(name)
    for key in (
        "title",
        "chapter",
        "minutes",
        "required",
        "forbidden",
        "remove",
        "question",
        "wrong",
    ):
        assert key in a.meta, key
    book_page = re.search(r"\(book/([\w/]+)\)", a.meta["chapter"]).group(1)
    assert (Path(__file__).parents[1] / "book" / f"{book_page}.ipynb").is_file()
    cells = a.notebook["cells"]
    assert "Learning goals" in "".join(
        asg.cell_source(c) for c in cells if c["cell_type"] == "markdown"
    )
    assert sum("setup" in asg.tags(c) for c in cells) == 1 and any(
        "answer" in asg.tags(c) for c in cells
    )
    assert a.meta["question"]["rubric"].strip() and a.meta["question"]["points"] > 0
    regions = [r for c in cells for r in asg.solution_regions(asg.cell_source(c))]
    assert any(a.meta["wrong"]["old"] in r for r in regions), (
        "the wrong answer patches a solution line"
    )


def test_strip_solutions():
    text = (
        "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n\n"
        "class A:\n    # BEGIN SOLUTION\n    def g(self, a, b=2):\n        pass\n"
        "    # STUB def g(self, *args):\n    # STUB     raise NotImplementedError\n    # END SOLUTION\n"
        "<!-- BEGIN SOLUTION -->\nmodel answer\n<!-- END SOLUTION -->\n"
    )
    out = asg.strip_solutions(text)
    assert out == (
        "def f(x):\n    y = 1\n    raise NotImplementedError  # your code here\n\nclass A:\n"
        "    def g(self, *args):\n        raise NotImplementedError\n"
    )
    assert asg.solution_regions(text) == [
        "    return x + y\n",
        "    def g(self, a, b=2):\n        pass\n",
        "model answer\n",
    ]
    with pytest.raises(ValueError, match="without END"):
        asg.strip_solutions("# BEGIN SOLUTION\nx = 1\n")


def _solution_lines(name):
    """Every non-trivial line of every solution region (and of the hidden checks) of an assignment."""
    a = asg.load(name)
    regions = [
        r for c in a.notebook["cells"] for r in asg.solution_regions(asg.cell_source(c))
    ]
    # a line that the notebook also shows outside its solutions (a signature argument the stub
    # repeats, once the formatter puts one argument per line) gives nothing away
    public = ""
    for c in a.notebook["cells"]:
        text = asg.cell_source(c)
        for r in asg.solution_regions(text):
            text = text.replace(r, "")
        public += text + "\n"
    lines = {
        ln.strip()
        for r in regions
        for ln in r.splitlines()
        if len(ln.strip()) >= 24 and ln.strip() not in public
    }
    hidden = {  # the judges (trusted side only)
        f"def {n}(obs, seed)"
        for n in re.findall(r"^def (\w+)\(obs, seed\)", a.checks_path.read_text(), re.M)
    }
    assert hidden, "the checks file has judges"
    return regions, lines, hidden


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    with redirect_stdout(io.StringIO()):
        assert main(["release", str(out)]) == 0
    return out


def test_release_has_no_solutions_no_hidden_checks_no_markers(released):
    student_files = [
        p for p in released.rglob("*") if p.is_file() and "gradescope" not in p.parts
    ]
    assert sorted(p.relative_to(released).as_posix() for p in student_files) == sorted(
        f"{n}/{n}.ipynb" for n in NAMES
    )
    zips = {p.stem: p for p in (released / "gradescope").glob("*.zip")}
    assert set(zips) == set(NAMES)
    for name in NAMES:
        regions, lines, hidden = _solution_lines(name)
        texts = {f"{name}.ipynb": (released / name / f"{name}.ipynb").read_text()}
        with zipfile.ZipFile(zips[name]) as zf:
            texts.update(
                {
                    f"zip:{n}": zf.read(n).decode()
                    for n in zf.namelist()
                    if not n.startswith("companion/")
                }
            )
        for where, text in texts.items():
            for region in regions:
                assert region.strip() not in text, (where, region[:80])
            for line in lines:
                assert line not in text, (where, line)
            for marker in asg.MARKERS:
                assert marker not in text, (where, marker)
        student = texts[f"{name}.ipynb"]
        for fn in hidden:
            assert fn not in student, fn
        nb = json.loads(student)
        assert all(not c.get("outputs") for c in nb["cells"])
        assert any(
            "raise NotImplementedError" in "".join(c["source"])
            for c in nb["cells"]
            if c["cell_type"] == "code"
        )


def test_adamax_stub_is_the_class_with_its_equations(released):
    nb = json.loads((released / "adamax" / "adamax.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "answer" in c["metadata"].get("tags", [])]
    src = "".join(cell["source"])
    assert src.startswith("class Adamax(torch.optim.Optimizer):\n")
    assert ".. math::" in src and "raise NotImplementedError" in src


def test_gradescope_zip(released, tmp_path):
    with zipfile.ZipFile(released / "gradescope" / "adamax.zip") as zf:
        names = zf.namelist()
        assert {
            "setup.sh",
            "run_autograder",
            "assignments/adamax/checks.py",
            "assignments/adamax/meta.toml",
            "assignments/adamax/spec.json",
            "companion/coursework/grader.py",
            "companion/coursework/probes.py",
            "companion/coursework/optim_judges.py",
            "companion/testing/optim_contract.py",
        } <= set(names)
        assert (zf.getinfo("run_autograder").external_attr >> 16) & 0o111
        assert "/autograder/results/results.json" in zf.read("run_autograder").decode()
        zf.extractall(tmp_path)
    bundled = asg.load("adamax", tmp_path / "assignments")
    assert bundled.notebook is None and bundled.spec() == asg.load("adamax").spec()


def test_release_is_reproducible(released, tmp_path):
    release.release(tmp_path)
    for p in released.rglob("*.*"):
        assert p.read_bytes() == (tmp_path / p.relative_to(released)).read_bytes(), p


SETUP = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"


@pytest.mark.parametrize(
    "source, hit",
    [
        ("class Adamax(torch.optim.Adamax): pass", "torch.optim.Adamax"),
        ("from torch.optim import Adamax as A", "torch.optim.Adamax"),
        ("import torch.optim._functional as Fn\nFn.adamax", "torch.optim._functional"),
        ("opt = getattr(torch.optim, 'Adamax')", "torch.optim.Adamax"),
        ("y = F.rms_norm(x, (3,))", "torch.nn.functional.rms_norm"),
        ("m = nn.RMSNorm(3)", "torch.nn.RMSNorm"),
        (
            "from torch.nn import functional as G\nG.rms_norm",
            "torch.nn.functional.rms_norm",
        ),
    ],
)
def test_static_rule_finds_the_torch_implementation(source, hit):
    forbidden = [
        "torch.optim.Adamax",
        "torch.optim._functional",
        "torch.nn.functional.rms_norm",
        "torch.nn.RMSNorm",
    ]
    found = guard.static_violations(SETUP, [source], forbidden)
    assert found and found[0].startswith(
        f"the from-scratch rule: the answer uses {hit}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "class Adamax(torch.optim.Optimizer): pass",
        "y = torch.maximum(a, b); F.softplus(x)",
        "class RMSNorm(nn.Module): pass",
        "def broken(:",
    ],
)
def test_static_rule_allows_the_building_blocks(source):
    forbidden = [
        "torch.optim.Adamax",
        "torch.optim._functional",
        "torch.nn.functional.rms_norm",
        "torch.nn.RMSNorm",
    ]
    assert guard.static_violations(SETUP, [source], forbidden) == []


@pytest.mark.parametrize(
    "source, rule",
    [
        ("A = getattr(torch.optim, 'Ada' + 'max')", "getattr with a computed name"),
        ("setattr(torch, name, 1)", "setattr with a computed name"),
        (
            "import functools\nfunctools.reduce(getattr, ['optim'], torch)",
            "getattr with a computed name",
        ),
        ("A = eval('torch.optim.SGD')", "eval"),
        ("exec(compile(src, 'torch/optim/sgd.py', 'exec'))", "exec"),
        ("m = __import__('torch')", "__import__"),
        ("import importlib\nimportlib.import_module('torch.optim')", "importlib"),
        ("import sys\nsys.modules['torch']", "sys.modules"),
        ("from sys import modules", "sys.modules"),
        ("torch.sys.modules['torch']", ".sys"),
        ("import gc\ngc.get_objects()", "gc"),
        ("import sys\nf = sys._getframe(1)", "sys._getframe"),
        ("caller = frame.f_back.f_globals", ".f_back"),
        ("import inspect\ninspect.currentframe()", "inspect"),
        ("import ctypes", "ctypes"),
        ("import pickle as p", "pickle"),
        ("from marshal import loads", "marshal"),
        ("from operator import attrgetter", "operator.attrgetter"),
        ("import operator\noperator.methodcaller('step')", "operator.methodcaller"),
        ("check.__code__ = (lambda ns: None).__code__", ".__code__"),
        ("g = fn.__globals__", ".__globals__"),
        ("b = fn.__builtins__", ".__builtins__"),
        ("f = F.softplus.__wrapped__", ".__wrapped__"),
        ("Base = torch.optim.SGD.__bases__[0]", ".__bases__"),
        ("object.__subclasses__()", ".__subclasses__"),
        ("type(x).__mro__", ".__mro__"),
        ("A = torch.optim.__dict__['Ada' + 'max']", "a module's __dict__"),
        ("f = torch._C._VariableFunctions.rms_norm", "torch._C"),
        ("f = torch.ops.aten.rms_norm", "torch.ops"),
        (
            "class A(torch.optim.SGD):\n    __module__ = 'torch.optim'",
            "an assignment to __module__",
        ),
        ("import os\nos.write(5, b'{}')", "os.write"),
        ("from os import fdopen", "os.fdopen"),
        ("import os\nos.dup2(1, 2)", "os.dup2"),
        ("p = '/proc/self/fd/' + str(n)", "a path under /proc or /dev/fd"),
        ("v = vars(torch.optim)", "vars()"),
        ("g = globals()", "globals()"),
    ],
)
def test_static_rule_refuses_dynamic_access_naming_the_rule(source, rule):
    (found,) = guard.static_violations(SETUP, [source], [])
    assert found.startswith("the no-dynamic-access rule"), found
    assert f" {rule} (line " in found, found


@pytest.mark.parametrize(
    "source",
    [
        "x = getattr(self, 'weight', None)",
        "self.modules(); self.__dict__; torch.nn.modules.Linear",
        "import math\nimport numbers\ny = math.sqrt(2)",
        "import os\nos.getpid()",
        "s = 'proc'",
    ],
)
def test_static_rule_allows_plain_code(source):
    assert guard.static_violations(SETUP, [source], []) == []


def test_remove_takes_out_every_alias_and_the_module(monkeypatch):
    fake = types.ModuleType("fake_torch_impl")
    other = types.ModuleType("fake_torch_other")

    class Impl:
        pass

    fake.Impl, fake.impl, fake.kept = Impl, (lambda x: 2 * x), (lambda x: x)
    other.Alias, other.Mine = Impl, type("Mine", (), {})
    monkeypatch.setitem(sys.modules, "fake_torch_impl", fake)
    monkeypatch.setitem(sys.modules, "fake_torch_other", other)
    refused = []
    guard.remove(["fake_torch_impl.Impl", "fake_torch_impl.impl"], refused)
    assert type(other.Alias) is guard.Removed and other.Mine.__name__ == "Mine"
    assert fake.kept(3) == 3
    for source in ("fake.impl(3)", "other.Alias()", "class Mine(fake.Impl): pass"):
        with pytest.raises(guard.Forbidden, match="from-scratch rule"):
            exec(source, {"fake": fake, "other": other})
    with pytest.raises(guard.Forbidden):
        fake.Impl.step  # an attribute of a removed class: refused, not found
    assert not hasattr(fake.Impl, "__wrapped__")  # nothing behind it
    assert refused == ["fake_torch_impl.impl"] + ["fake_torch_impl.Impl"] * 3
    guard.remove(["fake_torch_other"], [])
    with pytest.raises(ImportError):
        import fake_torch_other  # noqa: F401


# every route to each assignment's forbidden implementation, tried in a process where remove() ran (it
# changes torch for good, so not in the test process); then what answers use still works
ROUTES = r"""
import json, sys, torch
import torch.nn.functional as F
from companion.coursework import assignment as asg, guard

refused = []
for name in asg.names():
    guard.remove(asg.load(name).spec()["remove"], refused)
x = torch.randn(3, 4, requires_grad=True)
routes = {
    "torch.optim.Adamax": lambda: torch.optim.Adamax([x]),
    "class A(torch.optim.Rprop)": lambda: exec("class A(torch.optim.Rprop): pass"),
    "import torch.optim.adamax": lambda: __import__("torch.optim.adamax"),
    "torch.optim._functional.rprop": lambda: torch.optim._functional.rprop([x]),
    "Optimizer.__subclasses__": lambda: len(
        [c for c in torch.optim.Optimizer.__subclasses__() if c.__name__ == "Adamax"]
    ),
    "F.mish": lambda: F.mish(x),
    "torch._C._nn.mish": lambda: torch._C._nn.mish(x),
    "torch.ops.aten.mish": lambda: torch.ops.aten.mish(x),
    "torch.ops.aten.mish_.default": lambda: torch.ops.aten.mish_.default(x.detach()),
    "F.rms_norm": lambda: F.rms_norm(x, [4]),
    "torch._C._VariableFunctions.rms_norm": lambda: torch._C._VariableFunctions.rms_norm(
        x, [4]
    ),
    "rms_norm under inference_mode": lambda: torch.inference_mode()(
        lambda: torch.rms_norm(x.detach(), [4])
    )(),
    "torch.nn.RMSNorm": lambda: torch.nn.RMSNorm(4),
    "torch._VF.alpha_dropout": lambda: torch._VF.alpha_dropout(x, 0.5, True),
    "F.alpha_dropout": lambda: F.alpha_dropout(x, 0.5, True),
    "torch._C._jit_get_operation": lambda: torch._C._jit_get_operation(
        "aten::feature_alpha_dropout"
    )[0](x, 0.5, True),
    "torch.nn.init.trunc_normal_": lambda: torch.nn.init.trunc_normal_(x.detach()),
}
out = {}
for name, route in routes.items():
    try:
        value = route()
        out[name] = "ran" if value != 0 else "absent"
    except guard.Forbidden:
        out[name] = "forbidden"
    except ImportError:
        out[name] = "import refused"
y = x * torch.tanh(F.softplus(x)) + F.layer_norm(x, [4]) + F.dropout(x, 0.5)
y.sum().backward()
torch.optim.Adam([x]).step()
torch.nn.init.normal_(x.detach())
out["what answers use"] = "ran"
print(json.dumps(out))
"""


def test_the_answers_process_holds_no_forbidden_implementation():
    done = subprocess.run(
        [sys.executable, "-c", ROUTES], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out.pop("what answers use") == "ran"
    assert out.pop("import torch.optim.adamax") == "import refused"
    assert out.pop("Optimizer.__subclasses__") == "absent"
    assert set(out.values()) == {"forbidden"}, out


def test_code_from_the_installation_runs_wherever_it_lies(tmp_path, monkeypatch):
    """The audit hook refuses code from the folders the answer can write (its scratch folder, the temporary
    folder), but not from the installation on the import path, which may lie in the temporary folder too (a
    checkout in /tmp: CI's clone)."""
    installed = tmp_path / "checkout" / ".venv" / "site-packages"
    installed.mkdir(parents=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(sys, "path", [str(installed), str(scratch)])
    hook = child._audit(str(scratch), False)
    hook("compile", (b"", str(installed / "torch" / "m.py")))
    hook("open", (str(installed / "torch" / "m.py"), "r", 0))
    for written in (
        scratch / "m.py",
        tmp_path / "m.py",
        tmp_path / "checkout" / "m.py",
    ):
        with pytest.raises(PermissionError, match="no code the answer wrote"):
            hook("compile", (b"", str(written)))
        with pytest.raises(PermissionError, match="no code the answer wrote"):
            hook("open", (str(written), "r", 0))


def test_list_prints_one_assignment_per_line_name_first():
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["list"]) == 0
    lines = buf.getvalue().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == NAMES
    assert all("min" in ln for ln in lines)
