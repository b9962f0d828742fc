"""Coursework: the grader survives broken and hostile submissions. Each one loses the checks it breaks, with the
reason in its feedback, and changes nothing else: not the batch, not the other grades, not the grader's files.

One grading process per submission, so this runs once, not in the reruns under other ATen kernels.
"""

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from test_coursework_grading import notebook, read_grades, write

from companion.coursework import assignment as asg
from companion.coursework import grader, sandbox

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPANION_KERNEL_RERUN") == "1",
    reason="grading runs subprocesses; once is enough (not per ATen kernel)",
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_grader_survives_hostile_submissions(tmp_path):
    root = tmp_path / "assignments"
    shutil.copytree(
        asg.default_root() / "adamax", root / "adamax"
    )  # the grader's files a submission attacks
    a = asg.load("adamax", root)
    out = tmp_path / "out"
    out.mkdir()
    (out / "grades.csv").write_text("submission,total\nvictim,100\n")
    checks_file, before = a.checks_path, _sha(a.checks_path)
    good = a.notebook
    cases = {
        "a_good": good,
        "syntax_error": notebook(a, extra="\ndef broken(:\n"),
        "raises": notebook(a, extra="\nraise RuntimeError('boom at import')\n"),
        "step_raises": notebook(
            a, extra="\nAdamax.step = lambda self, closure=None: 1 / 0\n"
        ),
        "loops_forever": notebook(a, extra="\nwhile True:\n    pass\n"),
        "ignores_alarms": notebook(
            a,
            extra="\nimport time\nwhile True:\n    try:\n        time.sleep(100)\n"
            "    except BaseException:\n        pass\n",
        ),
        "eats_memory": notebook(
            a, extra="\nhog = []\nwhile True:\n    hog.append(bytearray(50_000_000))\n"
        ),
        "exits": notebook(a, extra="\nimport os\nos._exit(0)\n"),
        "kills_itself": notebook(
            a, extra="\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
        ),
        "network": notebook(
            a,
            extra="\nimport socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n",
        ),
        "rewrites_files": notebook(
            a,
            extra=(
                f"\nfor path in ({str(checks_file)!r}, {str(out / 'grades.csv')!r}):\n"
                "    try:\n        open(path, 'w').write('submission,total\\nrewrites_files,999\\n')\n"
                "    except OSError:\n        pass\n"
                f"open({str(out / 'grades.csv')!r}, 'a').write('x')\n"
            ),
        ),
        "subclasses_torch": notebook(
            a, answer="class Adamax(torch.optim.Adamax):\n    pass\n"
        ),
        "hides_torch": notebook(
            a,
            answer="Base = getattr(torch.optim, 'Ada' + 'max')\n\n"
            "class Adamax(Base):\n    pass\n",
        ),
        "calls_functional": notebook(
            a,
            extra="\n_orig = Adamax.step\n\ndef step(self, closure=None):\n"
            "    getattr(torch.optim, 'Ada' + 'max')(self.param_groups[0]['params']).step()\n"
            "    return _orig(self, closure)\n\nAdamax.step = step\n",
        ),
        "z_good": good,
    }
    paths = [write(tmp_path / f"{k}.ipynb", nb) for k, nb in cases.items()]
    # generous enough that the two good submissions finish on a loaded 2-core machine (CI runs this beside the
    # notebooks); the hostile ones are stopped by these same limits
    limits = sandbox.Limits(wall_s=60, check_s=20, answer_s=8, memory_mb=1536)
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
    assert _sha(checks_file) == before, "a submission rewrote the hidden checks"
    assert set(grades) == set(cases), "grades.csv holds exactly the batch"
    assert all(r.grader_error is None for r in results.values()), {
        k: r.grader_error for k, r in results.items()
    }
    full = grades["a_good"]["possible"]
    assert grades["a_good"]["total"] == grades["z_good"]["total"] == full
    zero = {k for k in cases if k not in ("a_good", "z_good", "step_raises")}
    for k in zero:
        assert float(grades[k]["total"]) == 0, (k, results[k].reasons)
    why = {k: next(iter(results[k].reasons.values())) for k in cases}
    assert "SyntaxError" in why["syntax_error"]
    assert "boom at import" in why["raises"]
    assert "time limit" in why["loops_forever"]
    assert "time limit" in why["ignores_alarms"]
    assert "memory" in why["eats_memory"].lower() or "MemoryError" in why["eats_memory"]
    assert "ended early" in why["exits"] and "signal 9" in why["kills_itself"]
    assert "from-scratch rule" in why["subclasses_torch"], why["subclasses_torch"]
    assert "torch.optim.Adamax" in why["subclasses_torch"]
    # a computed name is refused in the source (the run-time guard is tested in test_coursework.py)
    for k in ("hides_torch", "calls_functional"):
        assert "no-dynamic-access rule" in why[k], why[k]
        assert "getattr with a computed name" in why[k], why[k]
    # a broken step costs exactly the checks that step: the constructor's checks still pass
    step_lost = {n for n, r in results["step_raises"].reasons.items() if r}
    assert step_lost == {
        "first_steps",
        "options",
        "replay",
        "state_dict",
        "missing_grad",
    }
    assert "ZeroDivisionError" in results["step_raises"].reasons["replay"]
    feedback = (out / "feedback" / "eats_memory.md").read_text()
    assert "0 / 10 points" in feedback and "What went wrong" in feedback
