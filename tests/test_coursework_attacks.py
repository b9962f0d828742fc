"""Coursework: submissions that try to steal points (issue 20), graded in one batch beside a right and a buggy
answer. Each attack earns no more than it deserves, the controls keep their scores, no hidden file is read or
changed, and the feedback carries no text the answer chose beyond a short, clean message.

One grading process per submission, so this runs once, not in the reruns under other ATen kernels.
"""

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pytest
from test_coursework_grading import notebook, read_grades, write

from companion.coursework import assignment as asg
from companion.coursework import grader, sandbox

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


def test_attacks_earn_no_more_than_they_deserve(tmp_path, secret_beside_repo):
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
        "z_model": (a.notebook, 10),
    }
    paths = [write(tmp_path / f"{k}.ipynb", nb) for k, (nb, _) in cases.items()]
    out = tmp_path / "out"
    limits = sandbox.Limits(wall_s=60, check_s=20, answer_s=15, memory_mb=2048)
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
    # what the answer says reaches the feedback short, on one line, printable
    loud = reasons["huge_message"]["replay"]
    assert loud.startswith("RuntimeError: ") and "…" in loud, loud
    assert len(loud) < 240 and all(c.isprintable() for c in loud), loud
    assert "second line" not in loud and "\x1b" not in feedback["huge_message"]
    assert earned["huge_message"] == CONSTRUCTOR, reasons["huge_message"]
    if sandbox.bwrap_works():
        # hidden files do not exist in the sandbox (without it they are readable: the opt-out's risk)
        for k in cases:
            assert "read:" not in feedback[k] and "TOPSECRET" not in feedback[k], k
            assert "Hidden checks" not in feedback[k], k
        # the scratch folder's cap holds
        assert "FileNotFoundError" in reasons["reads_hidden_files"]["signature"]
        assert earned["fills_scratch"] == 10, reasons["fills_scratch"]
