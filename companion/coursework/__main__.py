"""``python -m companion.coursework``: list the assignments, release them, grade a batch."""

import argparse
import json
import sys
import time
from pathlib import Path

from companion.coursework import assignment as asg
from companion.coursework import grader, release, sandbox


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m companion.coursework", description=__doc__
    )
    parser.add_argument(
        "--assignments",
        type=Path,
        default=None,
        help="the assignments folder (default: the repository's)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the assignments, one per line, name first")
    rel = sub.add_parser(
        "release", help="write the student release and the Gradescope autograders"
    )
    rel.add_argument("out", type=Path)
    g = sub.add_parser(
        "grade", help="grade submitted notebooks into DIR/grades.csv and DIR/feedback/"
    )
    g.add_argument("name")
    g.add_argument("submissions", nargs="+", type=Path)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="submissions graded at a time (default: up to 4)",
    )
    g.add_argument(
        "--wall",
        type=float,
        default=sandbox.Limits.wall_s,
        help="seconds per submission",
    )
    g.add_argument(
        "--check-time",
        type=float,
        default=sandbox.Limits.check_s,
        help="seconds per check",
    )
    g.add_argument(
        "--memory",
        type=int,
        default=sandbox.Limits.memory_mb,
        help="MB of address space per submission",
    )
    g.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="grade even where bubblewrap cannot run (weaker isolation: answers can read your files); "
        "the feedback and grades.csv record it",
    )
    g.add_argument(
        "--gradescope",
        type=Path,
        default=None,
        help="also write Gradescope's results.json (first submission)",
    )
    for p in (listing, rel, g):  # also accepted after the command
        p.add_argument(
            "--assignments",
            type=Path,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    args = parser.parse_args(argv)
    root = args.assignments

    if args.command == "list":
        for name in asg.names(root):
            a = asg.load(name, root)
            m = a.meta
            print(f"{name}\t{m['chapter']}\t~{m['minutes']} min\t{m['title']}")
        return 0
    if args.command == "release":
        files = release.release(args.out, root)
        print(
            f"wrote {len(files)} files under {args.out} (students: {args.out}/<name>/; Gradescope: {args.out}/gradescope/)"
        )
        return 0

    limits = sandbox.Limits(
        wall_s=args.wall,
        check_s=args.check_time,
        answer_s=args.check_time,
        memory_mb=args.memory,
    )
    start = time.perf_counter()
    try:
        results = grader.grade(
            args.name,
            args.submissions,
            args.out,
            jobs=args.jobs,
            limits=limits,
            root=root,
            allow_unsandboxed=args.unsafe_no_sandbox,
        )
    except sandbox.SandboxUnavailable as exc:
        print(f"refusing to grade without a sandbox: {exc}", file=sys.stderr)
        return 2
    if args.gradescope:
        a = asg.load(args.name, root)
        args.gradescope.parent.mkdir(parents=True, exist_ok=True)
        args.gradescope.write_text(
            json.dumps(grader.gradescope(a, results[0]), indent=1) + "\n"
        )
    errors = [r for r in results if r.grader_error]
    for r in errors:
        print(f"grader error for {r.submission}: {r.grader_error}", file=sys.stderr)
    print(
        f"graded {len(results)} submissions in {time.perf_counter() - start:.1f} s "
        f"({sum(r.cpu_s for r in results):.1f} s CPU in the sandboxes; {sandbox.sandbox_kind()}): {args.out / 'grades.csv'}"
    )
    for held in sorted({r.kernel_limits for r in results if r.kernel_limits}):
        print(f"kernel limits: {held}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
