"""Wall time of grading a batch of ordinary submissions, with the kernel limits and without.

Builds a batch from an assignment's instructor notebook (half of it the model answer, half the wrong
variant its ``meta.toml`` names), then grades it repeatedly, alternating a run with the per-submission
cgroups and one without (``COMPANION_NO_CGROUP=1``), so that a busy machine slows both alike; prints the
median wall time of each and their ratio. It measures and asserts nothing:

    python benchmarks/grading_time.py                   # adamax, 20 submissions, 3 repeats
    python benchmarks/grading_time.py --assignment rmsnorm --repeats 5

It grades under bubblewrap where it can run, and otherwise with ``--unsafe-no-sandbox``'s fallback (the
output says which).
"""

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from companion.coursework import assignment as asg
from companion.coursework import grader, sandbox


def submission(a: asg.Assignment, wrong: bool) -> dict:
    nb = copy.deepcopy(a.notebook)
    if wrong:
        cell = next(c for c in nb["cells"] if "answer" in asg.tags(c))
        w = a.meta["wrong"]
        cell["source"] = asg.cell_source(cell).replace(w["old"], w["new"])
    return nb


def grade_once(a: asg.Assignment, paths: list, out: Path, cgroup: bool) -> float:
    if cgroup:
        os.environ.pop("COMPANION_NO_CGROUP", None)
    else:
        os.environ["COMPANION_NO_CGROUP"] = "1"
    start = time.perf_counter()
    results = grader.grade(a.name, paths, out, allow_unsandboxed=True)
    wall = time.perf_counter() - start
    assert not any(r.grader_error for r in results), "a grader error: see grades.csv"
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="adamax")
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    a = asg.load(args.assignment)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.submissions):
            path = Path(tmp) / f"s{i:02d}.ipynb"
            path.write_text(json.dumps(submission(a, wrong=i % 2 == 1)))
            paths.append(path)
        times = {True: [], False: []}
        grade_once(
            a, paths[:2], Path(tmp) / "warm", True
        )  # torch's files in the page cache
        for r in range(args.repeats):
            for cgroup in (True, False) if r % 2 == 0 else (False, True):
                out = Path(tmp) / f"out{r}{cgroup}"
                times[cgroup].append(grade_once(a, paths, out, cgroup))
        os.environ.pop("COMPANION_NO_CGROUP", None)
        last = grader.grade(
            a.name, paths[:1], Path(tmp) / "last", allow_unsandboxed=True
        )
        kernel = last[0].kernel_limits
    with_, without = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"{args.assignment}: {args.submissions} submissions, {os.cpu_count()} CPUs, "
        f"{sandbox.sandbox_kind()}, median of {args.repeats}"
    )
    print(f"  with cgroups    {with_:6.1f} s   ({kernel})")
    print(f"  without         {without:6.1f} s   (rlimits only)")
    print(f"  ratio           {with_ / without:6.2f}")


if __name__ == "__main__":
    main()
