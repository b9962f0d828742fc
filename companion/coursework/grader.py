"""Grade a batch of submitted notebooks: answer cells out, sandboxed run, grades and feedback in.

``grade(name, paths, out)`` writes ``out/grades.csv`` (``submission``, one column per check, ``total``,
``possible``, and ``sandbox`` when the instructor graded without one) and ``out/feedback/<submission>.md``.
Only this process writes them, after every child has ended, so nothing a submission does reaches another
submission's grade.

Two processes per submission, one trusted. The child (the answer's sandboxed process) runs the answer and
then the probes, and reports plain observations; this process alone holds the hidden checks' judges,
torch's reference and the tolerances: it decodes each observation itself (tensors rebuilt from their
bytes), judges it, and writes the feedback. The probes' inputs come from a seed that no answer can know
in advance (:func:`run_seed`: a hash of the hidden checks file and of the batch's answers; the same batch
gets the same seed, so grading twice gives the same grades; any change to a submission changes it).

The child's report is checked before it counts: every line carries the run's token, the events come in
the one order the child writes them (start, answer, each check once in order, done) and nothing follows
"done"; a check's observation is judged only if the run reached "done" and exited normally, or if the grader
itself ended the run because a later check ran past its time limit (the sandbox's own clock, which the
answer cannot stop as it can the child's SIGALRM): then that check and the ones after it fail with "time
limit". Anything else in the report is tampering, and every check fails. Text from the child reaches the feedback only as an exception's
type and at most :data:`MESSAGE_CHARS` printable characters of its message's first line.
"""

import csv
import hashlib
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from companion.coursework import assignment as asg
from companion.coursework import checks as registry
from companion.coursework import guard, sandbox


@dataclass
class Result:
    submission: str
    points: dict  # check name -> points earned
    reasons: dict  # check name -> why it failed ('' when it passed)
    cpu_s: float = (
        0.0  # CPU time of the grading process (as it reported), for the batch's timing
    )
    grader_error: str | None = None
    sandbox: str = "bubblewrap"
    kernel_limits: str = ""  # the run's cgroup limits, or "rlimits only (why)"
    seed: int = 0  # the probes' seed
    pending: list = field(default_factory=list)  # (check, observation) not judged yet


MESSAGE_CHARS = 160  # of an error message from the answer's process, in the feedback
TAMPERED = "the report was tampered with: {}; no check counts"
_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")


def clean(text, limit: int = MESSAGE_CHARS) -> str:
    """The first line of ``text``, printable characters only, at most ``limit`` of them (cut with '…')."""
    first = (str(text).strip().splitlines() or [""])[0]
    first = "".join(c for c in first if c.isprintable()).strip()
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def _error_text(error, limit_s: float) -> str:
    """The feedback's sentence for an error the child reported as fields (see child.describe)."""
    if not isinstance(error, dict):
        return "failed"
    where = ""
    cell, line = error.get("cell"), error.get("line")
    if type(cell) is int and type(line) is int and cell > 0 and line > 0:
        where = f" (line {line} of answer cell {cell})"
    kind = error.get("kind")
    if kind == "timeout":
        return f"time limit: did not finish within {limit_s:g} s"
    if kind == "memory":
        return "memory limit: MemoryError" + where
    if kind == "not_implemented":
        return "NotImplementedError (not written yet)" + where
    text = clean(error.get("text", ""))
    if kind == "assertion":
        return (text or "assertion failed") + where
    name = str(error.get("type", ""))
    name = name if _TYPE.fullmatch(name) else "Exception"
    return f"{name}: {text}" + where


def answer_cells(path: Path, spec: dict) -> list[str]:
    """The code cells tagged ``answer``, plus any code cell that defines a required name, in notebook order."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    picked = []
    for cell in cells:
        src = asg.cell_source(cell)
        if "answer" in asg.tags(cell) or _defines(src, spec["required"]):
            picked.append(src)
    return picked


def _defines(source: str, required: list[str]) -> bool:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return any(f"class {n}" in source or f"def {n}" in source for n in required)
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in required:
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in required for t in node.targets
        ):
            return True
    return False


def _stalled_text(limit_s: float, limits: sandbox.Limits) -> str:
    return (
        f"time limit: did not finish within {limit_s:g} s (the grader ended the run after "
        f"{limit_s + limits.grace_s:g} s without a report)"
    )


def _memory_text(limits: sandbox.Limits) -> str:
    return (
        f"memory limit: the submission used more than its {limits.memory_mb} MB "
        "(shared memory included)"
    )


def _why_ended(outcome: sandbox.Outcome, limits: sandbox.Limits) -> str:
    if outcome.oom:  # the kernel's OOM killer ended a process of the run
        return _memory_text(limits)
    if outcome.timed_out:
        return f"the submission ran past the grader's time limit of {limits.wall_s:g} s"
    rc = outcome.returncode
    if rc is not None and rc > 128 and outcome.sandbox == "bubblewrap":
        rc = 128 - rc  # bubblewrap exits with 128 + the signal that ended its child
    if rc is not None and rc < 0:
        return f"the grading process was killed by signal {-rc} (the submission killed it or hit a limit)"
    return f"the grading process ended early (exit code {rc}), e.g. os._exit or sys.exit in the answer"


def grade_one(
    a: asg.Assignment,
    path: Path,
    limits: sandbox.Limits,
    out: Path,
    checks=None,
    allow_unsandboxed: bool = False,
    probes_source: str | None = None,
    seed: int | None = None,
) -> Result:
    """Grade one notebook (``checks``: the assignment's checks, loaded once per batch, with
    ``probes_source``, what of them the sandbox receives; ``seed``: the batch's, see :func:`run_seed`)."""
    checks = checks or registry.checks_of(registry.load_checks(a.checks_path))
    return finish(
        run_one(a, path, limits, out, checks, allow_unsandboxed, probes_source, seed),
        checks,
    )


def finish(result: "Result", checks) -> "Result":
    """Judge the observations :func:`run_one` left pending (in this, the trusted process)."""
    points = dict((n, fn.points) for n, fn in checks)
    judges = dict(checks)
    for n, obs in result.pending:
        why = judge(judges[n], obs, result.seed)
        result.reasons[n] = why
        result.points[n] = 0 if why else points[n]
    result.pending = []
    return result


def run_one(
    a: asg.Assignment,
    path: Path,
    limits: sandbox.Limits,
    out: Path,
    checks=None,
    allow_unsandboxed: bool = False,
    probes_source: str | None = None,
    seed: int | None = None,
) -> Result:
    """Run one notebook's answer and probes in the sandbox; the observations to judge are left in
    ``result.pending`` (see :func:`finish`), so that the batch's next submission can start meanwhile."""
    if probes_source is None:
        probes_source = registry.probe_source(a.checks_path)
    names = [n for n, _ in checks]
    points = {n: fn.points for n, fn in checks}
    result = Result(path.stem, {n: 0 for n in names}, {n: "" for n in names})
    spec = a.spec()

    def fail_all(reason):
        result.reasons.update({n: reason for n in names})
        return result

    try:
        answers = answer_cells(path, spec)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return fail_all(f"the notebook could not be read: {str(exc).splitlines()[0]}")
    if not answers:
        return fail_all(
            f"no answer cell found (the cell that defines {', '.join(spec['required'])})"
        )
    static = guard.static_violations(spec["setup"], answers, spec["forbidden"])
    if static:
        return fail_all("; ".join(static))
    if seed is None:
        seed = run_seed(a.checks_path, [answers])
    result.seed = seed
    job = {
        "spec": spec,
        "answers": answers,
        "probes_source": probes_source,
        "probes": [[n, _probe_name(n, fn)] for n, fn in checks],
        "seed": seed,
    }
    outcome = sandbox.run(
        job, limits, hide=(a.folder.parent, out), allow_unsandboxed=allow_unsandboxed
    )
    result.sandbox = outcome.sandbox
    result.kernel_limits = outcome.kernel_limits
    events = outcome.events
    if not events or events[0] != {"event": "start"}:
        if any(e.get("event") == "forged" for e in events):
            return fail_all(TAMPERED.format("a line the grader did not write"))
        result.grader_error = f"the grading process failed before the answer ran: {outcome.stderr_tail[-800:]}"
        return fail_all("grader error (not your fault): the instructor has been told")
    report, tampered = _read_report(events, names)
    if tampered:
        return fail_all(TAMPERED.format(tampered))
    allowed = set(spec["remove"]) | set(spec["forbidden"])
    refused = sorted(
        {
            clean(r, 100)
            for e in events
            for r in (e.get("refused") or [])
            if isinstance(r, str) and r in allowed
        }
    )
    if refused:
        return fail_all(
            "the from-scratch rule: the answer uses "
            + ", ".join(refused)
            + " (refused at run time)"
        )
    answer = report["answer"]
    if answer is None and outcome.oom:
        return fail_all("the answer cells failed: " + _memory_text(limits))
    if answer is None and outcome.stalled == "answer":
        return fail_all(
            "the answer cells failed: " + _stalled_text(limits.answer_s, limits)
        )
    if answer is not None and answer.get("error") is not None:
        return fail_all(
            "the answer cells failed: " + _error_text(answer["error"], limits.answer_s)
        )
    finished = report["done"] is not None and outcome.returncode == 0
    finished = finished and not outcome.timed_out
    stalled = outcome.stalled == "check" and answer is not None
    counted = (
        finished or stalled
    )  # what was reported before the grader ended a stalled check
    hung = None
    for n in names:
        event = report["checks"].get(n)
        if event is None and stalled and hung is None:
            hung = n
            result.reasons[n] = _stalled_text(limits.check_s, limits)
        elif event is None and stalled:
            result.reasons[n] = (
                f"not run: time limit: an earlier check did not finish within {limits.check_s:g} s"
            )
        elif event is None:
            result.reasons[n] = "not run: " + _why_ended(outcome, limits)
        elif "obs" in event and counted:
            result.pending.append((n, event["obs"]))
        elif "obs" in event:
            result.reasons[n] = "not counted: " + _why_ended(outcome, limits)
        elif event.get("error") is not None or event.get("answer_failed"):
            result.reasons[n] = _error_text(event.get("error"), limits.check_s)
        else:
            result.reasons[n] = "malformed observation: nothing was observed"
    if finished:
        try:
            result.cpu_s = float(report["done"].get("cpu_s", 0))
        except (TypeError, ValueError):
            result.cpu_s = 0.0
    return result


def run_seed(checks_path: Path, batch: list) -> int:
    """The probes' seed for a grading batch (``batch``: each submission's answer cells): a hash of the
    hidden checks file, which no answer can read, and of every answer in the batch, so no student knows it
    in advance and any change to a submission changes it, while grading the same batch again gives the
    same grades. Every submission of a batch is probed on the same inputs (torch's runs are computed once)."""
    h = hashlib.sha256(Path(checks_path).read_bytes())
    for digest in sorted(
        hashlib.sha256("\0".join(answers).encode("utf-8", "surrogatepass")).digest()
        for answers in batch
    ):
        h.update(digest)
    return int.from_bytes(h.digest()[:6], "big")


def warm(checks, seed: int) -> None:
    """Let each judge compute what it can before any observation arrives (torch's runs, which the
    optimizer judges keep for the batch, and torch's own first-use start-up): it is given no observation,
    and fails."""
    for _, fn in checks:
        judge(fn, None, seed)


def _probe_name(name: str, fn) -> str:
    probe = getattr(fn, "probe", None)
    return getattr(probe, "__name__", name)


def judge(fn, obs, seed: int) -> str:
    """Decode one observation and judge it: '' when the check passes, else why it failed. A malformed
    observation, or one the judge cannot read, fails the check."""
    try:
        decoded = registry.decode(obs)
    except registry.Malformed as exc:
        return "malformed observation: " + clean(exc, 120)
    except RecursionError:
        return "malformed observation: nested too deeply"
    try:
        fn(decoded, seed)
    except AssertionError as exc:
        return clean(exc) or "assertion failed"
    except Exception as exc:  # noqa: BLE001 — an observation of an unexpected form
        return f"the observation could not be judged ({type(exc).__name__}: {clean(exc, 100)})"
    return ""


def _read_report(events: list, names: list) -> tuple[dict, str]:
    """The child's events, in the only order it writes them: start, answer, each check once in order,
    done. Returns ({'answer': e, 'checks': {name: e}, 'done': e}, '') or (_, what was wrong)."""
    report = {"answer": None, "checks": {}, "done": None}
    expected = ["answer", *(("check", n) for n in names), "done"]
    for i, e in enumerate(events[1:]):
        kind = e.get("event")
        if kind == "forged":
            return report, "a line the grader did not write"
        if i >= len(expected):
            return report, f"an event after the end ({clean(kind, 20)})"
        want = expected[i]
        if want == "answer" and kind == "answer":
            report["answer"] = e
        elif want == "done" and kind == "done":
            report["done"] = e
        elif isinstance(want, tuple) and kind == "check" and e.get("name") == want[1]:
            report["checks"][want[1]] = e
        elif kind == "check" and report["answer"] is None:
            return report, "a check reported before the answer had run"
        elif kind == "check" and e.get("name") in report["checks"]:
            return report, f"the check {clean(e.get('name'), 40)} reported twice"
        else:
            return report, f"an event out of order ({clean(kind, 20)})"
    return report, ""


def grade(
    name: str,
    paths: list,
    out,
    *,
    jobs: int | None = None,
    limits: sandbox.Limits | None = None,
    root: Path | None = None,
    allow_unsandboxed: bool = False,
) -> list[Result]:
    """Grade ``paths`` for assignment ``name``; write grades.csv and feedback/ under ``out``.

    Raises :class:`~companion.coursework.sandbox.SandboxUnavailable` (why, and how to fix it) where
    bubblewrap cannot run, unless ``allow_unsandboxed``: then the answers run with rlimits and an audit
    hook only, and grades.csv (a ``sandbox`` column) and each feedback file say so."""
    a = asg.load(name, root)
    limits = limits or sandbox.Limits()
    if not allow_unsandboxed and not sandbox.bwrap_works():
        raise sandbox.SandboxUnavailable(sandbox.why_no_sandbox())
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError("two submissions have the same file name (stem); rename one")
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    Path(out).mkdir(
        parents=True, exist_ok=True
    )  # exists before the sandboxes start, so they can hide it
    checks = registry.checks_of(registry.load_checks(a.checks_path))
    probes_source = registry.probe_source(a.checks_path)
    batch = []
    for p in paths:
        try:
            batch.append(answer_cells(p, a.spec()))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    seed = run_seed(a.checks_path, batch)
    with ThreadPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(
                run_one,
                a,
                p,
                limits,
                Path(out),
                checks,
                allow_unsandboxed,
                probes_source,
                seed,
            )
            for p in paths
        ]
        warm(checks, seed)  # while the first children start
        # judged here, as each child ends, while the pool starts the next ones
        results = [finish(f.result(), checks) for f in as_completed(futures)]
    results.sort(key=lambda r: r.submission)
    write(a, results, Path(out), checks)
    return results


def _fmt(x: float) -> str:
    return f"{x:g}"


def write(a: asg.Assignment, results: list[Result], out: Path, checks) -> None:
    possible = sum(fn.points for _, fn in checks)
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    unsafe = any(r.sandbox != "bubblewrap" for r in results)
    header = ["submission", *[n for n, _ in checks], "total", "possible"]
    writer.writerow(header + ["sandbox"] * unsafe)
    for r in results:
        writer.writerow(
            [
                r.submission,
                *[_fmt(r.points[n]) for n, _ in checks],
                _fmt(sum(r.points.values())),
                _fmt(possible),
            ]
            + [r.sandbox] * unsafe
        )
        _replace(
            out / "feedback" / f"{r.submission}.md", feedback(a, r, checks, possible)
        )
    _replace(out / "grades.csv", buf.getvalue())


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def feedback(a: asg.Assignment, r: Result, checks, possible) -> str:
    total = sum(r.points.values())
    lines = [
        f"# {a.title}: {r.submission}",
        "",
        f"**{_fmt(total)} / {_fmt(possible)} points** from the "
        "automatic checks. The written question is graded by your instructor.",
        "",
        "| check | points | |",
        "|---|---|---|",
    ]
    for n, fn in checks:
        mark = "passed" if not r.reasons[n] else "failed"
        lines.append(
            f"| {registry.summary(fn)} | {_fmt(r.points[n])} / {_fmt(fn.points)} | {mark} |"
        )
    if r.sandbox != "bubblewrap":
        lines += [
            "",
            f"**Graded without a sandbox**: {r.sandbox} (--unsafe-no-sandbox).",
        ]
    if r.grader_error:
        lines += [
            "",
            "**The grader failed on this submission (not the submission's fault); grade it again.**",
        ]
    failed = [(n, fn) for n, fn in checks if r.reasons[n]]
    if failed:
        lines += ["", "## What went wrong", ""]
        lines += [f"- **{registry.summary(fn)}** {r.reasons[n]}" for n, fn in failed]
    return "\n".join(lines) + "\n"


def gradescope(a: asg.Assignment, r: Result) -> dict:
    """Gradescope's results.json for one submission."""
    checks = registry.checks_of(registry.load_checks(a.checks_path))
    return {
        "score": sum(r.points.values()),
        "output": f"{a.title}: automatic checks (the written question is graded by hand).",
        "visibility": "visible",
        "tests": [
            {
                "name": registry.summary(fn),
                "score": r.points[n],
                "max_score": fn.points,
                "output": r.reasons[n] or "passed",
                "visibility": "visible",
            }
            for n, fn in checks
        ],
    }
