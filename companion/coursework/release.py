"""The student release, generated from the instructor's sources.

``release(out)`` writes ``out/<name>/<name>.ipynb`` for every assignment (the source notebook without its
solution regions, ``solution``/``hidden`` cells and outputs) and, apart from them,
``out/gradescope/<name>.zip``: a Gradescope autograder (``setup.sh``, ``run_autograder``, the grader, the
hidden checks and the assignment's spec; no solution).
"""

import json
import shutil
import zipfile
from pathlib import Path

import torch

from companion.coursework import assignment as asg

DROPPED_TAGS = {"solution", "hidden"}
KEPT_TAGS = ("setup", "answer")
EPOCH = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same zip

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when the autograder image is built.
set -euo pipefail
apt-get update -q && apt-get install -y -q python3 python3-pip bubblewrap || true
pip3 install -q --break-system-packages torch=={torch} --index-url https://download.pytorch.org/whl/cpu \\
  || pip3 install -q torch=={torch} --index-url https://download.pytorch.org/whl/cpu
pip3 install -q --break-system-packages numpy matplotlib scikit-learn tqdm pytest \\
  || pip3 install -q numpy matplotlib scikit-learn tqdm pytest
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it writes /autograder/results/results.json.
set -uo pipefail
cd /autograder/source
export PYTHONPATH=/autograder/source OMP_NUM_THREADS=1
shopt -s nullglob
notebooks=(/autograder/submission/*.ipynb)
[ ${{#notebooks[@]}} -gt 0 ] || notebooks=(/autograder/submission/{name}.ipynb)
python3 -m companion.coursework grade {name} "${{notebooks[0]}}" --out /autograder/results/grading \\
  --assignments /autograder/source/assignments --gradescope /autograder/results/results.json
"""


def student_notebook(source: dict) -> dict:
    """The student's copy of an instructor notebook."""
    cells = []
    for cell in source["cells"]:
        cell_tags = asg.tags(cell)
        if DROPPED_TAGS & set(cell_tags):
            continue
        text = asg.strip_solutions(asg.cell_source(cell)).rstrip("\n")
        new = {
            "cell_type": cell["cell_type"],
            "metadata": {},
            "source": text.splitlines(keepends=True),
        }
        kept = [t for t in cell_tags if t in KEPT_TAGS]
        if kept:
            new["metadata"]["tags"] = kept
        if cell["cell_type"] == "code":
            new.update(execution_count=None, outputs=[])
        cells.append(new)
    metadata = {
        "kernelspec": {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
    }
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def _with_ids(nb: dict, name: str) -> dict:
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"{name}-{i}"
    return nb


def write_student(a: asg.Assignment, out: Path) -> Path:
    folder = out / a.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{a.name}.ipynb"
    path.write_text(
        json.dumps(
            _with_ids(student_notebook(a.notebook), a.name),
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    return path


def _add(
    zf: zipfile.ZipFile, arcname: str, data: bytes | str, executable: bool = False
) -> None:
    info = zipfile.ZipInfo(arcname, EPOCH)
    info.external_attr = (0o755 if executable else 0o644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def public_meta(a: asg.Assignment) -> str:
    """meta.toml without the parts a student must not see (the rubric, the wrong answer): top-level values only."""
    lines = [
        f"{key} = {json.dumps(value)}"
        for key, value in a.meta.items()
        if isinstance(value, (str, int, float, list)) and key not in ("setup",)
    ]
    return "\n".join(lines) + "\n"


def write_gradescope(a: asg.Assignment, out: Path) -> Path:
    """An autograder zip for Gradescope ("Autograder configuration": upload this zip)."""
    folder = out / "gradescope"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{a.name}.zip"
    package = Path(asg.__file__).resolve().parents[1]
    with zipfile.ZipFile(path, "w") as zf:
        _add(
            zf,
            "setup.sh",
            SETUP_SH.format(torch=torch.__version__.split("+")[0]),
            executable=True,
        )
        _add(zf, "run_autograder", RUN_AUTOGRADER.format(name=a.name), executable=True)
        for file in sorted(package.rglob("*.py")):
            if "__pycache__" not in file.parts:
                _add(zf, f"companion/{file.relative_to(package)}", file.read_bytes())
        base = f"assignments/{a.name}"
        _add(zf, f"{base}/meta.toml", public_meta(a))
        _add(zf, f"{base}/checks.py", a.checks_path.read_bytes())
        _add(zf, f"{base}/spec.json", json.dumps(a.spec(), indent=1) + "\n")
    return path


def release(out, root: Path | None = None) -> list[Path]:
    """Write the whole release under ``out``; return the files written."""
    out = Path(out)
    written = []
    for name in asg.names(root):
        a = asg.load(name, root)
        if (out / name).exists():
            shutil.rmtree(out / name)
        written += [write_student(a, out), write_gradescope(a, out)]
    return written
