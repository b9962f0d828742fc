"""A Markdown table of each notebook's time from nbval's JUnit report: ``python .ci/gpu_table.py notebooks.xml``.

nbval reports one test per code cell; a notebook's time is the sum of its cells' times (they run one after
another in one kernel), and its outcome the worst of its cells'.
"""

import collections
import sys
import xml.etree.ElementTree as ET


def notebook_rows(path: str) -> list[tuple[str, float, str, int]]:
    """(notebook, seconds, outcome, cells) for every notebook in the report, slowest first."""
    seconds, cells = collections.Counter(), collections.Counter()
    outcome: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("file") or case.get("classname", "?").replace(".", "/")
        seconds[name] += float(case.get("time", 0))
        cells[name] += 1
        failed = case.find("failure") is not None or case.find("error") is not None
        if failed:
            outcome[name] = "failed"
        else:
            outcome.setdefault(name, "passed")
    return sorted(
        ((n, seconds[n], outcome[n], cells[n]) for n in seconds), key=lambda r: -r[1]
    )


if __name__ == "__main__":
    rows = notebook_rows(sys.argv[1])
    print("| notebook | seconds on CUDA | outcome | cells |\n|---|---:|---|---:|")
    for name, s, result, n in rows:
        print(f"| {name} | {s:.1f} | {result} | {n} |")
    print(
        f"\n{len(rows)} notebooks, {sum(r[1] for r in rows):.0f} s of cells, "
        f"{sum(r[2] == 'failed' for r in rows)} failed"
    )
