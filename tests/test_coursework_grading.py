"""Coursework, the grading runs: every instructor solution scores full marks, the untouched student notebook zero
(without a grader error), each prepared wrong answer loses exactly the checks it should;
grading twice gives the same grades.csv (the hostile submissions are in test_coursework_survival.py).

These start one grading process per submission, so they run once, not in the reruns under other ATen kernels.
"""

import copy
import csv
import json
import os
from pathlib import Path

import pytest

from companion.coursework import assignment as asg
from companion.coursework import grader, release, sandbox

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPANION_KERNEL_RERUN") == "1",
    reason="grading runs subprocesses; once is enough (not per ATen kernel)",
)

LIMITS = sandbox.Limits(wall_s=90, check_s=30, answer_s=10)
# grade under bubblewrap where it works, and with the weaker isolation where it cannot (a container), as before;
# the refusal without the opt-in is tested in test_coursework_sandbox.py


def notebook(
    a: asg.Assignment,
    replace: tuple[str, str] | None = None,
    extra: str = "",
    answer: str | None = None,
) -> dict:
    """The instructor's notebook as a submission: optionally one solution text replaced, code appended to the
    answer cell, or the answer cell's source replaced whole."""
    nb = copy.deepcopy(a.notebook)
    (cell,) = [c for c in nb["cells"] if "answer" in asg.tags(c)][:1]
    src = asg.cell_source(cell)
    if replace:
        assert src.count(replace[0]) == 1, replace[0]
        src = src.replace(*replace)
    cell["source"] = (answer if answer is not None else src) + extra
    return nb


def write(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb))
    return path


def read_grades(out: Path) -> dict:
    with open(out / "grades.csv", newline="") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


def check_names(a):
    from companion.coursework import checks

    return [n for n, _ in checks.checks_of(checks.load_checks(a.checks_path))]


@pytest.mark.parametrize("name", asg.names())
def test_solution_full_student_zero_wrong_loses_what_it_should(name, tmp_path):
    a = asg.load(name)
    w = a.meta["wrong"]
    subs = [
        write(tmp_path / "solution.ipynb", a.notebook),
        write(tmp_path / "student.ipynb", release.student_notebook(a.notebook)),
        write(tmp_path / "wrong.ipynb", notebook(a, (w["old"], w["new"]))),
    ]
    results = {
        r.submission: r
        for r in grader.grade(
            name, subs, tmp_path / "out", jobs=2, limits=LIMITS, allow_unsandboxed=True
        )
    }
    grades = read_grades(tmp_path / "out")
    names = check_names(a)
    unsafe = [] if sandbox.bwrap_works() else ["sandbox"]  # recorded when opted out
    assert (
        list(grades["solution"]) == ["submission", *names, "total", "possible"] + unsafe
    )
    assert all(r.grader_error is None for r in results.values()), [
        r.grader_error for r in results.values()
    ]
    assert grades["solution"]["total"] == grades["solution"]["possible"], results[
        "solution"
    ].reasons
    assert float(grades["student"]["total"]) == 0
    assert all(results["student"].reasons.values())
    lost = [n for n in names if results["wrong"].reasons[n]]
    assert lost == w["loses"], {n: results["wrong"].reasons[n] for n in names}
    feedback = (tmp_path / "out" / "feedback" / "wrong.md").read_text()
    assert (
        "What went wrong" in feedback
        and results["wrong"].reasons[w["loses"][0]] in feedback
    )
    report = grader.gradescope(a, results["solution"])
    assert report["score"] == sum(t["max_score"] for t in report["tests"]) and len(
        report["tests"]
    ) == len(names)


def test_grading_twice_gives_the_same_grades(tmp_path):
    a = asg.load("mish")
    w = a.meta["wrong"]
    subs = [
        write(tmp_path / "s1.ipynb", a.notebook),
        write(tmp_path / "s2.ipynb", notebook(a, (w["old"], w["new"]))),
    ]
    first = grader.grade(
        "mish", subs, tmp_path / "one", jobs=2, limits=LIMITS, allow_unsandboxed=True
    )
    grader.grade(
        "mish", subs, tmp_path / "two", jobs=2, limits=LIMITS, allow_unsandboxed=True
    )
    assert (tmp_path / "one" / "grades.csv").read_bytes() == (
        tmp_path / "two" / "grades.csv"
    ).read_bytes()
    for s in ("s1", "s2"):
        assert (tmp_path / "one" / "feedback" / f"{s}.md").read_text() == (
            tmp_path / "two" / "feedback" / f"{s}.md"
        ).read_text()
    assert [r.submission for r in first] == ["s1", "s2"]


def test_caches_of_the_grader_do_not_leak_into_the_sandbox(tmp_path, monkeypatch):
    """torch sets TORCHINDUCTOR_CACHE_DIR in a process that has used torch._dynamo (the grader's, in CI); a child
    inheriting it would try to create that folder outside its scratch folder and lose every optimizer check."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "outside"))
    a = asg.load("adamax")
    sub = write(tmp_path / "solution.ipynb", a.notebook)
    (result,) = grader.grade(
        "adamax", [sub], tmp_path / "out", jobs=1, limits=LIMITS, allow_unsandboxed=True
    )
    grades = read_grades(tmp_path / "out")
    assert grades["solution"]["total"] == grades["solution"]["possible"], result.reasons
