#!/usr/bin/env python3
"""Write, or check, the install cell at the top of every chapter notebook.

A notebook opened from the book's Colab or Binder button runs where the course's package may not be
installed. Its first cell installs it from the repository when ``import companion`` fails, and does
nothing otherwise (on a laptop with the course installed, in CI, in the book build). The cell is
tagged ``remove-cell``: it runs, but the page does not show it. The repository's address is read from
``_config.yml`` (``repository.url``), the one place it is written.

    .ci/install_cell.py                  # add or update the cell in every notebook of _toc.yml
    .ci/install_cell.py --check          # exit 1, naming them, if a notebook lacks it or has an old one
    .ci/install_cell.py book/x/y.ipynb   # only these notebooks
"""

import argparse
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CELL_ID = "install-companion"
TAG = "remove-cell"


def repository_url(config: pathlib.Path = ROOT / "_config.yml") -> str:
    return yaml.safe_load(config.read_text())["repository"]["url"].rstrip("/")


def cell_source(url: str | None = None) -> str:
    """The cell's code: tiny and self-contained, so a reader can see at once what it does."""
    url = url or repository_url()
    return (
        "# On Colab or Binder: install the course's package if it is missing (does nothing otherwise).\n"
        "try:\n"
        "    import companion\n"
        "except ImportError:\n"
        f'    %pip install --quiet "git+{url}"'
    )


def install_cell(url: str | None = None) -> dict:
    source = cell_source(url).splitlines(
        keepends=True
    )  # stored as a list of lines, as Jupyter does
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": CELL_ID,
        "metadata": {"tags": [TAG]},
        "outputs": [],
        "source": source,
    }


def toc_notebooks(toc: pathlib.Path = ROOT / "_toc.yml") -> list[pathlib.Path]:
    text = yaml.safe_load(toc.read_text())
    files, stack = (
        [text["root"]],
        list(text.get("parts", [])) + list(text.get("chapters", [])),
    )
    while stack:
        entry = stack.pop(0)
        files += [entry["file"]] if "file" in entry else []
        stack += entry.get("chapters", []) + entry.get("sections", [])
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def is_install_cell(cell: dict) -> bool:
    return cell.get("id") == CELL_ID or (
        cell["cell_type"] == "code"
        and "".join(cell["source"]).lstrip().startswith("# On Colab or Binder:")
    )


def status(nb: dict, url: str | None = None) -> str:
    """'ok', 'missing' or 'stale' (present, but not the current cell, not first, or not hidden)."""
    cells = nb["cells"]
    where = [i for i, c in enumerate(cells) if is_install_cell(c)]
    if not where:
        return "missing"
    cell = cells[where[0]]
    fresh = "".join(cell["source"]) == cell_source(url) and TAG in cell.get(
        "metadata", {}
    ).get("tags", [])
    return "ok" if where == [0] and fresh else "stale"


def write(path: pathlib.Path, url: str | None = None) -> bool:
    """Put the current install cell first in ``path``; True if the file changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    if status(nb, url) == "ok":
        return False
    nb["cells"] = [install_cell(url)] + [
        c for c in nb["cells"] if not is_install_cell(c)
    ]
    nb["nbformat"], nb["nbformat_minor"] = (
        4,
        max(nb.get("nbformat_minor", 5), 5),
    )  # cell ids need 4.5
    # nbformat's own layout (sorted keys, one-space indent), so only the new cell shows in a diff
    path.write_text(
        json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=pathlib.Path,
        help="default: every notebook in _toc.yml",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if a notebook needs the cell",
    )
    args = parser.parse_args(argv)
    notebooks, url = args.notebooks or toc_notebooks(), repository_url()
    if args.check:
        bad = [
            (p, s)
            for p in notebooks
            if (s := status(json.loads(p.read_text(encoding="utf-8")), url)) != "ok"
        ]
        for p, s in bad:
            print(f"{p}: install cell {s} (run .ci/install_cell.py)")
        return 1 if bad else 0
    changed = [p for p in notebooks if write(p, url)]
    print(f"install cell written in {len(changed)} of {len(notebooks)} notebooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
