"""Coursework: what the grader does without a usable sandbox (refuses, unless told), how it reads a child's
report (forged, duplicated or late events fail every check), and what of the answer's text reaches the feedback.
"""

import io
import os
import time
from contextlib import redirect_stderr, redirect_stdout

import pytest
from test_coursework_grading import notebook, read_grades, write

from companion.coursework import assignment as asg
from companion.coursework import grader, sandbox
from companion.coursework.__main__ import main

NAMES = ["a", "b", "c"]


def test_refuses_to_grade_without_a_sandbox(broken_bwrap, tmp_path):
    a = asg.load("adamax")
    sub = write(tmp_path / "s.ipynb", a.notebook)
    with pytest.raises(sandbox.SandboxUnavailable) as info:
        grader.grade("adamax", [sub], tmp_path / "out")
    why = str(info.value)
    assert "cannot create its namespaces" in why and "No permissions" in why, why
    assert "apt-get install bubblewrap" in why and "--unsafe-no-sandbox" in why, why
    assert not (tmp_path / "out" / "grades.csv").exists()
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(["grade", "adamax", str(sub), "--out", str(tmp_path / "cli")])
    assert code == 2 and "refusing to grade without a sandbox" in err.getvalue()
    assert not (tmp_path / "cli" / "grades.csv").exists()


def test_grades_without_a_sandbox_when_told_and_says_so(broken_bwrap, tmp_path):
    a = asg.load("adamax")
    sub = write(tmp_path / "s.ipynb", a.notebook)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        code = main(
            ["grade", "adamax", str(sub), "--out", str(tmp_path / "out")]
            + ["--unsafe-no-sandbox"]
        )
    assert code == 0
    grades = read_grades(tmp_path / "out")
    assert grades["s"]["total"] == grades["s"]["possible"] == "10", grades
    assert grades["s"]["sandbox"] == sandbox.UNSANDBOXED
    feedback = (tmp_path / "out" / "feedback" / "s.md").read_text()
    assert "Graded without a sandbox" in feedback


def test_a_working_sandbox_adds_no_column(tmp_path):
    results = [grader.Result("s", {"x": 1}, {"x": ""})]

    class A:
        title = "t"

    check = type("C", (), {"points": 1, "__doc__": "x"})()
    grader.write(A(), results, tmp_path, [("x", check)])
    assert read_grades(tmp_path)["s"].keys() == {"submission", "x", "total", "possible"}


def _events(*kinds):
    out = [{"event": "start"}]
    for k in kinds:
        if k in ("answer", "done", "forged"):
            out.append({"event": k})
        else:  # an observation the judge below accepts; "passed" is never trusted
            out.append({"event": "check", "name": k, "obs": 1, "passed": True})
    return out


class _Judge:
    """A check whose judge accepts the observation 1 (and nothing else)."""

    points = 1
    __doc__ = "a check"

    def __call__(self, obs, seed):
        assert obs == 1, "wrong observation"


@pytest.mark.parametrize(
    "events, problem",
    [
        (_events("answer", *NAMES, "done"), ""),
        (
            _events("answer", "a", "b"),
            "",
        ),  # cut short: nothing counts, but nothing forged
        (_events("a", "answer", "a", "b", "c", "done"), "before the answer"),
        (_events("answer", "a", "a", "b", "c", "done"), "reported twice"),
        (_events("answer", *NAMES, "done", "c"), "after the end"),
        (_events("answer", *NAMES, "done", "done"), "after the end"),
        (_events("answer", "a", "c", "b", "done"), "out of order"),
        (_events("answer", "a", "forged", "b", "c", "done"), "did not write"),
    ],
)
def test_the_report_is_read_in_the_one_order_the_child_writes(events, problem):
    report, tampered = grader._read_report(events, NAMES)
    assert (problem in tampered) if problem else tampered == "", tampered


def _outcome(events, returncode=0):
    return sandbox.Outcome(events, returncode, False, "", "bubblewrap")


@pytest.mark.parametrize(
    "events, returncode, total",
    [
        (_events("answer", *NAMES, "done"), 0, 3),
        (_events("answer", *NAMES, "done"), 1, 0),  # no normal exit
        (_events("answer", *NAMES), 0, 0),  # no "done"
        (_events("a", "b", "c", "answer", "done"), 0, 0),  # forged before the answer
        (_events("answer", "a", "b", "c", "done", "c"), 0, 0),
    ],
)
def test_a_check_counts_only_in_a_complete_clean_report(
    monkeypatch, tmp_path, events, returncode, total
):
    a = asg.load("adamax")
    checks = [(n, _Judge()) for n in NAMES]
    monkeypatch.setattr(
        sandbox, "run", lambda *args, **kw: _outcome(events, returncode)
    )
    sub = write(tmp_path / "s.ipynb", a.notebook)
    r = grader.grade_one(a, sub, sandbox.Limits(), tmp_path, checks)
    assert sum(r.points.values()) == total, r.reasons
    if total == 0 and "done" in str(events[-1]) and returncode == 0:
        assert all("tampered" in why for why in r.reasons.values()), r.reasons


def test_messages_from_the_answer_are_short_clean_single_lines():
    long = "\x1b[31m" + "é" * 500 + "\x07\nsecond line"
    text = grader.clean(long)
    assert len(text) == grader.MESSAGE_CHARS and text.endswith("…")
    assert all(c.isprintable() for c in text) and "second" not in text
    assert grader.clean("short\ttab") == "shorttab"
    error = {"kind": "error", "type": "Boom", "text": long, "cell": 1, "line": 7}
    said = grader._error_text(error, 20)
    assert said.startswith("Boom: [31m") and said.endswith(
        "… (line 7 of answer cell 1)"
    )
    error.update(type="not a type\n# injected", cell="1) + forged (")
    said = grader._error_text(error, 20)
    assert said.startswith("Exception: ") and "(line" not in said, said
    assert grader._error_text({"kind": "timeout"}, 20) == (
        "time limit: did not finish within 20 s"
    )
    assert grader._error_text("forged", 20) == "failed"


# the per-check alarm's exception swallowed: the child never reports, the grader's own clock ends the run
SWALLOWS_ALARM = """
import time


def _sleep():
    while True:
        try:
            time.sleep(1000)
        except BaseException:
            pass
"""


def test_the_grader_ends_a_run_whose_check_or_answer_swallows_the_alarm(tmp_path):
    a = asg.load("adamax")
    subs = {
        "in_a_check": notebook(
            a, extra=SWALLOWS_ALARM + "\nAdamax.step = lambda self, c=None: _sleep()\n"
        ),
        "in_the_answer": notebook(a, extra=SWALLOWS_ALARM + "\n_sleep()\n"),
    }
    paths = [write(tmp_path / f"{k}.ipynb", nb) for k, nb in subs.items()]
    limits = sandbox.Limits(wall_s=200, check_s=4, answer_s=4, grace_s=2)
    start = time.monotonic()
    results = {
        r.submission: r
        for r in grader.grade(
            "adamax",
            paths,
            tmp_path / "out",
            jobs=2,
            limits=limits,
            allow_unsandboxed=True,
        )
    }
    took = time.monotonic() - start
    # each run: the child's start-up, the three quick checks, then 4 s + 2 s of silence; not the wall limit
    assert took < 60, took
    check = results["in_a_check"].reasons
    assert check["first_steps"].startswith("time limit: did not finish within 4 s")
    assert all("time limit" in check[n] for n in list(check)[3:]), check
    assert sum(results["in_a_check"].points.values()) == 3, check  # those before count
    answer = results["in_the_answer"].reasons
    assert all(
        why.startswith("the answer cells failed: time limit: did not finish within 4 s")
        for why in answer.values()
    ), answer
