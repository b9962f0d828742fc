"""Assignments as the instructor writes them: a source notebook with marked solution regions, hidden
checks and metadata, in ``assignments/<name>/``.

``<name>.ipynb``  the instructor's notebook. Its first code cell (tag ``setup``) is the imports the grader
                  runs before the answer cells; answer cells carry the tag ``answer``. Inside a cell,
                  ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` marks solution lines, and lines written as
                  ``# STUB <code>`` inside the region are what the student gets in its place (without
                  stub lines the region becomes ``raise NotImplementedError``). A markdown region between
                  ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` is dropped from the release.
                  Cells tagged ``solution`` are dropped whole.
``checks.py``     the hidden graded checks: each a probe (``@probe``, sent to the answer's sandbox) and a
                  judge decorated with :func:`companion.coursework.checks.check` (its points; run by
                  the grader only); never released to students.
``meta.toml``     title, chapter, estimated minutes, the names the answer must define, the from-scratch
                  rule (``forbidden`` dotted names, checked in the source, and ``remove``: the torch
                  objects, modules and ATen operators taken out of the answer's process), and the rubric of the written question.
``wrong.py``      a typical wrong answer (for the tests), its first line ``# loses: check, check``.
"""

import json
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "# STUB", "BEGIN HIDDEN", "END HIDDEN")
_BEGIN = re.compile(r"^\s*(#|<!--)\s*BEGIN SOLUTION\b")
_END = re.compile(r"^\s*(#|<!--)\s*END SOLUTION\b")
_STUB = re.compile(r"^(\s*)# STUB ?(.*)$")


def default_root() -> Path:
    """The repository's ``assignments/`` folder (next to the ``companion`` package)."""
    return Path(__file__).resolve().parents[2] / "assignments"


@dataclass
class Assignment:
    """One assignment folder, read."""

    name: str
    folder: Path
    meta: dict
    notebook: dict | None = field(repr=False, default=None)

    @property
    def title(self) -> str:
        return self.meta["title"]

    @property
    def checks_path(self) -> Path:
        return self.folder / "checks.py"

    def spec(self) -> dict:
        """What grading needs, and nothing a student must not see: setup code, names, rules."""
        setup = self.meta.get("setup")
        if setup is None:
            setup = "".join(
                cell_source(c) for c in self.notebook["cells"] if "setup" in tags(c)
            )
        return {
            "name": self.name,
            "setup": setup,
            "required": self.meta["required"],
            "forbidden": self.meta.get("forbidden", []),
            "remove": self.meta.get("remove", []),
        }


def load(name: str, root: Path | None = None) -> Assignment:
    """Read ``root/name`` (the notebook is optional: a Gradescope bundle ships only checks and meta)."""
    folder = (root or default_root()) / name
    if not (folder / "meta.toml").is_file():
        raise ValueError(
            f"no assignment {name!r} in {folder.parent} (try `python -m companion.coursework list`)"
        )
    meta = tomllib.loads((folder / "meta.toml").read_text())
    nb_path = folder / f"{name}.ipynb"
    notebook = json.loads(nb_path.read_text()) if nb_path.is_file() else None
    if notebook is None and (folder / "spec.json").is_file():
        meta = {**meta, **json.loads((folder / "spec.json").read_text())}
    return Assignment(name, folder, meta, notebook)


def names(root: Path | None = None) -> list[str]:
    """All assignments under ``root``, in the order of their chapter and then name."""
    root = root or default_root()
    found = [load(p.parent.name, root) for p in sorted(root.glob("*/meta.toml"))]
    return [
        a.name for a in sorted(found, key=lambda a: (a.meta.get("order", 99), a.name))
    ]


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    src = "".join(src) if isinstance(src, list) else src
    return src if src.endswith("\n") or not src else src + "\n"


def strip_solutions(text: str) -> str:
    """The student's version of a cell: solution regions removed, ``# STUB`` lines uncommented.

    A code region without a stub line becomes ``raise NotImplementedError`` at its indentation."""
    out, inside, region_indent, had_stub = [], False, "", False
    for line in text.splitlines(keepends=True):
        if _BEGIN.match(line):
            if inside:
                raise ValueError("nested BEGIN SOLUTION")
            inside, had_stub = True, False
            region_indent = line[: len(line) - len(line.lstrip())]
            code = line.lstrip().startswith("#")
            continue
        if _END.match(line):
            if not inside:
                raise ValueError("END SOLUTION without BEGIN SOLUTION")
            if code and not had_stub:
                out.append(
                    f"{region_indent}raise NotImplementedError  # your code here\n"
                )
            inside = False
            continue
        stub = _STUB.match(line)
        if stub:
            had_stub = True
            out.append(f"{stub.group(1)}{stub.group(2)}".rstrip() + "\n")
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("BEGIN SOLUTION without END SOLUTION")
    return "".join(out)


def solution_regions(text: str) -> list[str]:
    """The text of every solution region in ``text`` (for the release's leak test)."""
    regions, current = [], None
    for line in text.splitlines(keepends=True):
        if _BEGIN.match(line):
            current = []
        elif _END.match(line):
            regions.append("".join(current))
            current = None
        elif current is not None and not _STUB.match(line):
            current.append(line)
    return regions
