"""After the book build: every chapter whose notebook draws a figure has figures in its built page.

A kernel that renders off screen (``MPLBACKEND=Agg``) builds a site without a single figure and no
warning; this check fails such a build. A notebook draws if a code cell calls ``plt.show()``,
``plt.subplots``/``plt.figure`` or a ``companion.core.plot`` helper; its page must then hold at least
one image from the notebook's outputs (``_images/*.png``).
"""

import json
import pathlib
import re
import sys

import yaml

DRAWS = re.compile(
    r"plt\.(show|subplots|figure|plot)\(|\bplot\.(contour|plot_trajectories|plot_curves)\("
)
IMAGE = re.compile(r"<img[^>]+src=\"[^\"]*_images/[^\"]+\.png\"")


def chapters(toc: dict) -> list[str]:
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def main(root: pathlib.Path) -> int:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    missing, checked = [], 0
    for name in chapters(toc):
        notebook = root / f"{name}.ipynb"
        if not notebook.exists():
            continue
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "code"
        )
        if not DRAWS.search(code):
            continue
        checked += 1
        page = (root / "_build" / "html" / f"{name}.html").read_text()
        if not IMAGE.search(page):
            missing.append(name)
    print(
        f"{checked} chapters draw figures; {checked - len(missing)} have them in their built page"
    )
    if missing:
        print("no figure in the built page of: " + ", ".join(missing), file=sys.stderr)
    return 1 if missing or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
