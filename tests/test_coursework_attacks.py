"""Coursework: submissions that try to steal points (issue 20), graded in one batch beside a right and a buggy
answer. Each attack earns no more than it deserves, the controls keep their scores, no hidden file is read or
changed, and the feedback carries no text the answer chose beyond a short, clean message.

One grading process per submission, so this runs once, not in the reruns under other ATen kernels.
"""

import copy
import dataclasses
import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pytest
from test_coursework_grading import notebook, read_grades, write

from companion.coursework import assignment as asg
from companion.coursework import grader, guard, sandbox

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPANION_KERNEL_RERUN") == "1",
    reason="grading runs subprocesses; once is enough (not per ATen kernel)",
)

CHECKS = [
    "signature",
    "invalid",
    "switches",
    "first_steps",
    "options",
    "replay",
    "state_dict",
    "missing_grad",
]
CONSTRUCTOR = (
    3  # signature, invalid, switches: the points an answer earns whose step is wrong
)

# writes a "passed" event for every check and "done" wherever it can reach the report, then exits cleanly:
# through /proc/self/fd (a socket cannot be reopened there), by wrapping each descriptor number with open()
# (the audit hook refuses), and with torch.save's C++ writer (no audit event)
FORGE = """
def _forge():
    import json, os
    lines = [json.dumps({"event": "check", "name": n, "passed": True}) for n in %r]
    data = "\\n" + "\\n".join(lines + [json.dumps({"event": "done", "cpu_s": 0})]) + "\\n"
    where = "/pr" + "oc/self/fd"
    for fd in sorted(os.listdir(where), key=int)[3:] + [str(n) for n in range(3, 1024)]:
        for attempt in (lambda: open(where + "/" + fd, "w"), lambda: open(int(fd), "w")):
            try:
                with attempt() as f:
                    f.write(data)
            except Exception:
                pass
        try:
            torch.save(data, where + "/" + fd)
        except Exception:
            pass
    os._exit(0)
""" % (CHECKS,)

NAN = """
_orig_step = Adamax.step

def _nan_step(self, closure=None):
    loss = _orig_step(self, closure)
    with torch.no_grad():
        for group in self.param_groups:
            for p in group["params"]:
                p.fill_(float("nan"))
                for value in self.state[p].values():
                    if value.dim():
                        value.fill_(float("nan"))
    return loss

Adamax.step = _nan_step
"""

READ = """
_found = []
for _path in %r:
    try:
        with open(_path) as _f:
            _found.append("read:" + _f.read(60).replace("\\n", " "))
    except Exception as _exc:
        _found.append(type(_exc).__name__)
raise RuntimeError(" | ".join(_found))
"""

HUGE = """
def _loud_step(self, closure=None):
    raise RuntimeError("\\x1b[31m" + "A" * 5000 + "\\x07\\r\\nsecond line")

Adamax.step = _loud_step
"""

# the scratch folder is capped in all (bubblewrap's tmpfs); were it not, this right answer would lose it all
FILLS_SCRATCH = """
_written = 0
for _i in range(12):
    try:
        with open(f"fill{_i}.bin", "wb") as _f:
            _f.write(bytes(10 * 1024 * 1024))
        _written += 10
    except OSError:
        break
assert _written < 100, f"wrote {_written} MB into the scratch folder"
"""

SGD_STEP = """
def _sgd_step(self, closure=None):
    with torch.no_grad():
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
                    st = self.state[p]
                    for key in ("step", "exp_avg", "exp_inf"):
                        st.setdefault(key, torch.zeros_like(p))

Adamax.step = _sgd_step
"""
SGD_POINTS = 4  # the constructor's 3 and missing_grad: what a plain SGD step earns

# a plain SGD step that patches the course's helpers the hidden checks call (before the no-patching rule:
# 9/10 and 10/10)
PATCHES_TOLERANCES = (
    SGD_STEP
    + """
import companion.testing.tolerances as _t
import companion.coursework.checks as _c
from companion.testing import parity as _parity

_t.mismatch = lambda *a, **k: _t.Mismatch(0.0, 0.0, (), 0.0, 0.0)
_c.mismatch = _t.mismatch
_parity.max_abs_diff = lambda *a, **k: 0.0
_parity.state_diff = lambda *a, **k: 0.0
del _t.assert_close
"""
)

PATCHES_CONTRACT = (
    SGD_STEP
    + """
import companion.testing as _ct
import companion.coursework as _cw

def _ok(*a, **k):
    return None

_ct.optim_contract.check_replay = _ok
_ct.optim_contract.check_closed_loop = _ok
_ct.optim_contract.check_state_dict_round_trip = _ok
_cw.checks.mismatch = lambda *a, **k: _ct.tolerances.Mismatch(0.0, 0.0, (), 0.0, 0.0)
"""
)

# torch's own Tensor patched through a name bound to its type, so that every difference is zero
PATCHES_TORCH = (
    SGD_STEP
    + """
_T = type(torch.zeros(1))
_T.__sub__ = lambda a, b: torch.zeros_like(a)
_T.__eq__ = lambda a, b: torch.ones_like(a, dtype=torch.bool)
"""
)

LIAR = """
class _Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("eq", "__eq__", "equal", "allclose", "isclose"):
            return torch.ones(args[0].shape, dtype=torch.bool)
        if name in ("sub", "__sub__", "__rsub__"):
            return torch.zeros(args[0].shape, dtype=torch.float64)
        return super().__torch_function__(func, types, args, kwargs or {})

    def __eq__(self, other):
        return torch.ones(self.shape, dtype=torch.bool)
"""

# the right parameter update from a private state; the state the checks see is zeros of a subclass that
# says it equals anything (before: 9/10; the same with plain zeros: 4/10)
LYING_STATE = (
    LIAR
    + """
import collections

_right_step = Adamax.step

def _lying_step(self, closure=None):
    if "_real" in self.__dict__:
        self.state = self._real
    loss = _right_step(self, closure)
    self._real = self.state
    fake = collections.defaultdict(dict)
    for p, st in self._real.items():
        fake[p] = {k: torch.zeros_like(v).as_subclass(_Liar) for k, v in st.items()}
    self.state = fake
    return loss

Adamax.step = _lying_step
"""
)
LYING_STATE_POINTS = 4  # what the same answer earns with plain zeros as its state

# plain SGD; the checks' own parameters become lying tensors
CLASS_SWAP = (
    LIAR
    + SGD_STEP
    + """
def _swap_step(self, closure=None):
    _sgd_step(self, closure)
    for group in self.param_groups:
        for p in group["params"]:
            p.__class__ = _Liar

Adamax.step = _swap_step
"""
)

# a step that sleeps where the per-check alarm cannot end it: SIGALRM ignored, or the alarm's exception
# swallowed; the grader's own clock ends the run (before: the wall limit did, 60 s, every check lost)
IGNORES_ALARM = """
import signal
import time

signal.signal(signal.SIGALRM, signal.SIG_IGN)

def _slow(self, closure=None):
    time.sleep(1000)

Adamax.step = _slow
"""

SWALLOWS_ALARM = """
import time

def _slow(self, closure=None):
    while True:
        try:
            time.sleep(1000)
        except BaseException:
            pass

Adamax.step = _slow
"""


# a constructor with a wrong default that claims the right one's signature through functools.wraps
# (``__wrapped__``, which inspect.signature follows); the probe reads the code object instead
SPOOFS_SIGNATURE = """
import functools

_right = Adamax.__init__


def _wrong(self, params, lr=0.5, **kwargs):
    _right(self, params, lr=lr, **kwargs)


Adamax.__init__ = functools.wraps(_right)(_wrong)
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def secret_beside_repo():
    """A file next to the repository (its parent folder), which no answer may read."""
    repo = asg.default_root().parent
    path = repo.parent / f"coursework-secret-{uuid.uuid4().hex}.txt"
    try:
        path.write_text("TOPSECRET beside the repository\n")
    except OSError:
        yield None
        return
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.parametrize("isolation", ["bubblewrap", "broken_bwrap"])
def test_attacks_earn_no_more_than_they_deserve(
    isolation, request, monkeypatch, tmp_path, secret_beside_repo
):
    """Under bubblewrap, and with a ``bwrap`` that fails (as in a container) and the instructor's opt-out:
    the grader's own defences (the trusted judges, removal, the audit hook, cgroups) hold without it."""
    if isolation == "bubblewrap":
        monkeypatch.delenv("COMPANION_NO_BWRAP", raising=False)
        if not sandbox.bwrap_works():
            pytest.skip(f"bubblewrap cannot run here: {sandbox.why_no_sandbox()}")
    else:
        request.getfixturevalue("broken_bwrap")
    root = tmp_path / "assignments"
    shutil.copytree(asg.default_root() / "adamax", root / "adamax")
    a = asg.load("adamax", root)
    repo = asg.default_root().parent
    hidden = [
        root / "adamax" / "checks.py",
        asg.default_root() / "adamax" / "checks.py",
    ]
    before = {p: _sha(p) for p in hidden}
    targets = [str(repo / ".git" / "HEAD"), *map(str, hidden)]
    targets += [str(secret_beside_repo)] if secret_beside_repo else []
    w = a.meta["wrong"]
    cases = {  # name: (notebook, the most points it deserves)
        "a_model": (a.notebook, 10),
        "buggy": (notebook(a, (w["old"], w["new"])), 4),
        "forges_at_import": (notebook(a, extra=FORGE + "\n_forge()\n"), 0),
        "forges_in_a_check": (
            notebook(
                a, extra=FORGE + "\nAdamax.step = lambda self, c=None: _forge()\n"
            ),
            CONSTRUCTOR,
        ),
        "nan_in_parameters": (notebook(a, extra=NAN), CONSTRUCTOR),
        "reads_hidden_files": (notebook(a, extra=READ % (targets,)), 0),
        "getattr_route": (
            notebook(
                a,
                answer="Base = getattr(torch.optim, 'Ada' + 'max')\n\n"
                "class Adamax(Base):\n    pass\n",
            ),
            0,
        ),
        "exec_compile_route": (
            notebook(
                a,
                answer="exec(compile('from torch.optim import Adamax', "
                "'/usr/lib/python3/torch/optim/x.py', 'exec'))\n",
            ),
            0,
        ),
        "frame_walk": (
            notebook(
                a,
                extra="\nimport sys\n\ndef _walk(self, closure=None):\n"
                "    f = sys._getframe(1)\n    while f is not None:\n"
                "        f.f_globals.get('check')\n        f = f.f_back\n\n"
                "Adamax.step = _walk\n",
            ),
            0,
        ),
        "huge_message": (notebook(a, extra=HUGE), CONSTRUCTOR),
        "fills_scratch": (notebook(a, extra=FILLS_SCRATCH), 10),
        "patches_tolerances": (notebook(a, extra=PATCHES_TOLERANCES), SGD_POINTS),
        "patches_contract": (notebook(a, extra=PATCHES_CONTRACT), SGD_POINTS),
        "patches_torch": (notebook(a, extra=PATCHES_TORCH), SGD_POINTS),
        "lying_state": (notebook(a, extra=LYING_STATE), LYING_STATE_POINTS),
        "class_swap": (notebook(a, extra=CLASS_SWAP), SGD_POINTS),
        "ignores_alarm": (notebook(a, extra=IGNORES_ALARM), CONSTRUCTOR),
        "swallows_alarm": (notebook(a, extra=SWALLOWS_ALARM), CONSTRUCTOR),
        "spoofs_signature": (notebook(a, extra=SPOOFS_SIGNATURE), 9),
        "z_model": (a.notebook, 10),
    }
    paths = [write(tmp_path / f"{k}.ipynb", nb) for k, (nb, _) in cases.items()]
    out = tmp_path / "out"
    # check_s: the slowest check of a right answer takes a few seconds on a loaded machine; grace_s past it
    # the grader ends a run that reported nothing (swallows_alarm), long before wall_s
    limits = sandbox.Limits(
        wall_s=60, check_s=12, answer_s=15, memory_mb=2048, grace_s=3
    )
    results = {
        r.submission: r
        for r in grader.grade(
            "adamax",
            paths,
            out,
            jobs=2,
            limits=limits,
            root=root,
            allow_unsandboxed=True,
        )
    }
    grades = read_grades(out)
    assert all(r.grader_error is None for r in results.values()), {
        k: r.grader_error for k, r in results.items()
    }
    earned = {k: float(grades[k]["total"]) for k in cases}
    reasons = {k: results[k].reasons for k in cases}
    for k, (_, deserved) in cases.items():
        assert earned[k] <= deserved, (k, earned[k], reasons[k])
    # the controls keep their scores
    assert earned["a_model"] == earned["z_model"] == 10, reasons["a_model"]
    assert earned["buggy"] == 4, reasons["buggy"]
    for p, sha in before.items():
        assert _sha(p) == sha, f"{p} changed"
    feedback = {k: (out / "feedback" / f"{k}.md").read_text() for k in cases}
    # the rules are named
    for k in ("getattr_route", "exec_compile_route", "frame_walk"):
        why = next(iter(reasons[k].values()))
        assert "no-dynamic-access rule" in why, why
    for k in ("patches_tolerances", "patches_contract", "patches_torch", "class_swap"):
        why = next(iter(reasons[k].values()))
        assert "no-patching rule" in why, why
    # the subclass is refused by the comparison itself, in each check that reads the state
    for n in ("first_steps", "options", "replay"):
        assert "tensor subclass (_Liar)" in reasons["lying_state"][n], reasons[
            "lying_state"
        ]
    # the grader's clock: the hung check and the ones after it fail with "time limit", those before count
    for k in ("ignores_alarm", "swallows_alarm"):
        hung = reasons[k]
        assert hung["first_steps"].startswith("time limit: did not finish within 12 s")
        assert all("time limit" in hung[n] for n in CHECKS[3:]), hung
        assert earned[k] == CONSTRUCTOR, hung
    assert "signature" in reasons["spoofs_signature"]["signature"], reasons[
        "spoofs_signature"
    ]
    # what the answer says reaches the feedback short, on one line, printable
    loud = reasons["huge_message"]["replay"]
    assert loud.startswith("RuntimeError: ") and "…" in loud, loud
    assert len(loud) < 240 and all(c.isprintable() for c in loud), loud
    assert "second line" not in loud and "\x1b" not in feedback["huge_message"]
    assert earned["huge_message"] == CONSTRUCTOR, reasons["huge_message"]
    if isolation == "bubblewrap":
        # hidden files do not exist in the sandbox (without it they are readable: the opt-out's risk)
        for k in cases:
            assert "read:" not in feedback[k] and "TOPSECRET" not in feedback[k], k
            assert "Hidden checks" not in feedback[k], k
        # the scratch folder's cap holds
        assert "FileNotFoundError" in reasons["reads_hidden_files"]["signature"]
        assert earned["fills_scratch"] == 10, reasons["fills_scratch"]


SETUP = "import math\n\nimport torch\nfrom torch import nn\n"
PATCHING = [  # refused by the no-patching rule
    "import companion.testing.tolerances as t\nt.mismatch = None\n",
    "from companion.testing import parity\nparity.max_abs_diff = None\n",
    "import companion.testing as ct\nct.optim_contract.check_replay = None\n",
    "import companion\ncompanion.testing.parity.max_abs_diff = None\n",
    "from companion import coursework\n",
    "from companion.coursework.checks import close\n",
    "del torch.optim.Optimizer.zero_grad\n",
    "torch.Tensor.__eq__ = None\n",
    "nn.Module.cuda = None\n",
    "T = torch.Tensor\nT.allclose = None\n",
    "def f(p):\n    type(p).__sub__ = None\n",
    "def f(p):\n    p.__class__ = int\n",
    "def f(p):\n    C = p.__class__\n    C.abs = None\n",
    "def f(p):\n    setattr(p, '__class__', int)\n",
    "setattr(torch.optim, 'SGD', None)\n",
    "import companion.optim as co\nco.Adamax = None\n",
]
ALLOWED = [  # what answers write: attributes of their own objects
    "class A:\n    def f(self, p):\n        self.x = 1\n        p.grad = None\n"
    "        p.data[0] = 1\n        self.state[p]['m'] = 2\n",
    "class A:\n    pass\n\nA.step = lambda self: None\nx = torch.zeros(2)\nx.requires_grad = True\n",
    "from companion.optim._base import PerTensorOptimizer\n",
]


@pytest.mark.parametrize("source", PATCHING)
def test_the_no_patching_rule_refuses(source):
    (why,) = guard.static_violations(SETUP, [source], [])
    assert why.startswith("the no-patching rule"), why


@pytest.mark.parametrize("source", ALLOWED)
def test_the_no_patching_rule_allows_an_answers_own_attributes(source):
    assert guard.static_violations(SETUP, [source], []) == []


# -- the two-process design: what the answer's process holds, and what the grader accepts from it --------

# run at probe time (from the optimizer's step) in the answer's process: every object the garbage collector
# and sys.modules can reach, searched for a hidden check or judge, torch's reference kept by the checks, or
# the course's comparison helpers and tolerances; the search reports what it found through its error
SEARCH = """
def _search():
    import gc, sys
    found, seen = set(), 0
    for name in sys.modules:
        if any(k in name for k in ("coursework.checks", "optim_judges", "companion.testing")):
            found.add("module " + name)
    for obj in gc.get_objects():
        seen += 1
        if callable(obj) and str(getattr(obj, "__module__", "")).startswith("checks_"):
            found.add("check " + str(getattr(obj, "__name__", "?")))
        if type(obj) is dict:
            for key in ("TorchAdamax", "optim_judges", "REPLAY_ULPS", "refuse_subclass"):
                if key in obj:
                    found.add("name " + key)
    return seen, sorted(found)
"""
SEARCH_STEP = (
    SEARCH
    + """
def _searching_step(self, closure=None):
    seen, found = _search()
    raise RuntimeError(f"searched {seen} objects; found: {', '.join(found) or 'nothing'}")

Adamax.step = _searching_step
"""
)


def _job(a: asg.Assignment, answers: list, seed: int) -> dict:
    """The job the grader sends (grader.grade_one), built here so a test can skip the static rule."""
    from companion.coursework import checks as registry

    checks = registry.checks_of(registry.load_checks(a.checks_path))
    return {
        "spec": a.spec(),
        "answers": answers,
        "probes_source": registry.probe_source(a.checks_path),
        "probes": [[n, fn.probe.__name__] for n, fn in checks],
        "seed": seed,
    }


LIMITS = sandbox.Limits(wall_s=60, check_s=20, answer_s=15)


def test_a_probe_finds_no_check_judge_or_reference_in_the_answers_process():
    """By construction, not by rule: the search uses gc and sys.modules, which the static rule refuses, so it
    runs here without that rule; in the answer's process it finds nothing. The same search in the grader's
    process (which holds the judges) finds them: the search works."""
    a = asg.load("adamax")
    answers = grader.answer_cells(
        write_tmp(a, notebook(a, extra=SEARCH_STEP)), a.spec()
    )
    assert guard.static_violations(
        a.spec()["setup"], answers, []
    )  # the rule would refuse it
    outcome = sandbox.run(
        _job(a, answers, 7), LIMITS, hide=(a.folder.parent,), allow_unsandboxed=True
    )
    events = {e.get("name"): e for e in outcome.events if e.get("event") == "check"}
    said = events["first_steps"]["error"]["text"]
    assert said.startswith("searched ") and said.endswith("found: nothing"), said
    assert int(said.split()[1]) > 10_000, (
        said
    )  # it did search (torch's objects are there)
    # the control: in the trusted process, where the checks are loaded, the same search finds them
    from companion.coursework import checks as registry

    loaded = registry.load_checks(a.checks_path)  # noqa: F841 — kept alive for the search
    ns = {}
    exec(SEARCH, ns)
    _, found = ns["_search"]()
    assert "check first_steps" in found and "name TorchAdamax" in found, found
    assert "module companion.testing.tolerances" in found, found


def write_tmp(a, nb) -> Path:
    import json
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="coursework-attack-")) / "s.ipynb"
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture(scope="module")
def streams():
    """The real reports of a right and a buggy Adamax, each graded once (seed 11), to be forged below."""
    a = asg.load("adamax")
    w = a.meta["wrong"]
    out = {}
    for kind, nb in (
        ("right", a.notebook),
        ("buggy", notebook(a, (w["old"], w["new"]))),
    ):
        path = write_tmp(a, nb)
        answers = grader.answer_cells(path, a.spec())
        outcome = sandbox.run(
            _job(a, answers, 11),
            LIMITS,
            hide=(a.folder.parent,),
            allow_unsandboxed=True,
        )
        out[kind] = (path, outcome)
    return a, out


def _first_tensor(obs):
    """The first {"tensor": ...} inside an observation (a trace's first parameter)."""
    while not (isinstance(obs, dict) and "tensor" in obs):
        obs = obs[0]
    return obs


def _forge(events, how):
    import base64

    import torch

    events = [dict(e) for e in events]
    at = {e.get("name"): i for i, e in enumerate(events) if e.get("event") == "check"}
    first = events[at["first_steps"]] = dict(events[at["first_steps"]])
    first["obs"] = copy.deepcopy(first["obs"])
    tensor = _first_tensor(first["obs"])
    body = tensor["tensor"]
    if how == "nan_bytes":
        n = len(base64.b64decode(body["data"])) // 8
        nan = torch.full((n,), float("nan"), dtype=torch.float64)
        body["data"] = base64.b64encode(nan.numpy().tobytes()).decode()
    elif how == "wrong_shape":
        body["shape"] = list(reversed(body["shape"]))
    elif how == "bytes_for_another_shape":
        body["shape"] = [body["shape"][0] + 1, *body["shape"][1:]]
    elif how == "not_base64":
        body["data"] = "!!" + body["data"]
    elif how == "unknown_dtype":
        body["dtype"] = "object"
    elif how == "another_type":
        tensor.clear()
        tensor["other"] = "FakeTensor"
    elif how == "a_subclass":
        tensor.clear()
        tensor["subclass"] = "_Liar"
    elif how == "a_list_of_numbers":
        values = torch.frombuffer(
            bytearray(base64.b64decode(body["data"])), dtype=torch.float64
        )
        tensor.clear()
        tensor["dict"] = [["data", values.tolist()]]
    elif how == "missing":
        del first["obs"]
    elif how == "passed_without_observation":
        del first["obs"]
        first["passed"] = True
    elif how == "extra":
        events.insert(at["replay"], dict(events[at["replay"]]))
    elif how == "out_of_order":
        i, j = at["first_steps"], at["options"]
        events[i], events[j] = events[j], events[i]
    return events


FORGERIES = {  # how: (the points it may keep of the right answer's 10, what the first_steps check says)
    "nan_bytes": (8, "NaN or inf where torch's values are finite"),
    "wrong_shape": (8, "shape (4, 3), torch gives (3, 4)"),
    "bytes_for_another_shape": (8, "malformed observation: a tensor of shape (4, 4)"),
    "not_base64": (8, "malformed observation: a tensor whose data is not base64"),
    "unknown_dtype": (8, "malformed observation: a tensor of an unknown dtype"),
    "another_type": (8, "expected a plain value, got FakeTensor"),
    "a_subclass": (8, "tensor subclass (_Liar)"),
    "a_list_of_numbers": (8, "expected a tensor, got dict"),
    "missing": (8, "malformed observation: nothing was observed"),
    "passed_without_observation": (8, "malformed observation: nothing was observed"),
    "extra": (0, "the report was tampered with"),
    "out_of_order": (0, "the report was tampered with"),
}


@pytest.mark.parametrize("how", ["untouched", *FORGERIES])
def test_a_forged_observation_stream_earns_nothing_it_did_not_observe(
    streams, how, monkeypatch, tmp_path
):
    """The right answer's real report, one observation forged the way a hostile process could write it
    (with the run's token): that check fails, never passes; the rest keep their points. Beside it the
    controls: the untouched right report earns 10 and the buggy one 4."""
    a, out = streams
    graded = {}
    for kind, (path, outcome) in out.items():
        events = (
            outcome.events
            if how == "untouched" or kind == "buggy"
            else _forge(outcome.events, how)
        )
        forged = dataclasses.replace(outcome, events=events)
        monkeypatch.setattr(sandbox, "run", lambda *args, _o=forged, **kw: _o)
        graded[kind] = grader.grade_one(a, path, LIMITS, tmp_path, seed=11)
    assert sum(graded["buggy"].points.values()) == 4, graded["buggy"].reasons
    right = graded["right"]
    if how == "untouched":
        assert sum(right.points.values()) == 10, right.reasons
        return
    keeps, says = FORGERIES[how]
    assert sum(right.points.values()) == keeps, right.reasons
    assert right.points["first_steps"] == 0 and says in right.reasons["first_steps"], (
        right.reasons
    )


# -- the from-scratch rule by construction: routes to torch's implementation that the static rule would
# refuse, run here without that rule; in the answer's process there is nothing at their end ---------------

ADAMAX_ROUTES = {
    "getattr": "Adamax = getattr(torch.optim, 'Ada' + 'max')\n",
    "re_import": "import sys\n\ndel sys.modules['torch.optim.adamax']\n"
    "from torch.optim.adamax import Adamax\n",
    "written_module": "import sys\n\nwith open('m.py', 'w') as f:\n"
    "    f.write('from torch.optim import Adamax\\n')\n"
    "sys.path.insert(0, '.')\nfrom m import Adamax\n",
    "subclasses": "Adamax = next(c for c in torch.optim.Optimizer.__subclasses__()\n"
    "              if c.__name__ == 'Adamax')\n",
    "wrapped": "import operator\n\n"
    "Adamax = operator.attrgetter('Adamax.__wrapped__')(torch.optim)\n",
    "functional": "import torch.optim._functional as Fo\n\n"
    "class Adamax(torch.optim.Optimizer):\n"
    "    def __init__(self, params, lr=0.002):\n"
    "        super().__init__(params, dict(lr=lr))\n\n"
    "    def step(self, closure=None):\n        Fo.adamax()\n",
    # the answer the student runs is wrong; in the grader (its scratch folder) it takes torch's
    "detects_the_grader": "import os\n\nif 'coursework-' in os.getcwd():\n"
    "    Adamax = torch.optim.Adamax\nelse:\n    Adamax = torch.optim.SGD\n",
}
RMSNORM_CALL = (
    "return RMSNormFunction.apply(x, self.weight, self.normalized_shape, eps)"
)
RMSNORM_ROUTES = {  # the C kernel, reached without torch.rms_norm
    "variable_functions": "return torch._C._VariableFunctions.rms_norm("
    "x, list(self.normalized_shape), self.weight, eps)",
    "ops_aten": "return torch.ops.aten.rms_norm.default("
    "x, list(self.normalized_shape), self.weight, eps)",
    "vf": "return torch._VF.rms_norm(x, list(self.normalized_shape), self.weight, eps)",
}


def test_routes_past_the_static_rule_find_no_torch_implementation(
    tmp_path, monkeypatch
):
    """Each route earns nothing, and the grader names the rule; the right answers beside them keep 10."""
    monkeypatch.setattr(guard, "static_violations", lambda *args: [])
    limits = sandbox.Limits(wall_s=60, check_s=12, answer_s=15, grace_s=3)
    for name, routes, as_answer in (
        ("adamax", ADAMAX_ROUTES, True),
        ("rmsnorm", RMSNORM_ROUTES, False),
    ):
        a = asg.load(name)
        cases = {"right": a.notebook}
        for k, route in routes.items():
            if as_answer:
                cases[k] = notebook(a, answer=route)
            else:
                cases[k] = notebook(a, (RMSNORM_CALL, route))
        paths = [write(tmp_path / f"{name}-{k}.ipynb", nb) for k, nb in cases.items()]
        results = {
            r.submission.split("-", 1)[1]: r
            for r in grader.grade(
                name,
                paths,
                tmp_path / f"out-{name}",
                jobs=2,
                limits=limits,
                allow_unsandboxed=True,
            )
        }
        assert sum(results["right"].points.values()) == 10, results["right"].reasons
        for k in routes:
            r = results[k]
            assert sum(r.points.values()) == 0, (name, k, r.reasons)
            why = " ".join(r.reasons.values())
            assert any(
                s in why
                for s in (
                    "from-scratch rule",
                    "StopIteration",
                    "no code the answer wrote",
                    "AttributeError: __wrapped__",
                )
            ), (name, k, why)
