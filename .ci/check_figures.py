"""After the book build: every chapter that draws has its figures in its page, and their text is legible.

1. A kernel that renders off screen (``MPLBACKEND=Agg``) builds a site without a single figure and no
   warning; this check fails such a build. A notebook draws if a code cell calls ``plt.show()``,
   ``plt.subplots``/``plt.figure`` or a ``companion.core.plot`` helper; its page must then hold at least
   one image from the notebook's outputs (``_images/*.svg``, as ``companion.core.plot.use_style`` draws
   them, or ``*.png``).
2. Each SVG figure's smallest text, at the size the page shows it, is at least ``MIN_PT`` (9 pt). The
   page shows a figure at its own width (an SVG ``width="460.8pt"`` is 614 CSS px), shrunk to the
   column (``COLUMN_PX``, 768 px at a desktop width) when wider. Matplotlib writes each text as
   outlines in a group ``scale(s -s)`` with s = font size / 100 (or, with ``svg.fonttype: none``, as
   ``font-size``), in the SVG's units, points: shown in pt = size x shown width / SVG width.

``python .ci/check_figures.py [book root]``; ``--report`` lists every figure's size and smallest text.
"""

import html
import json
import pathlib
import re
import sys

import yaml

DRAWS = re.compile(
    r"plt\.(show|subplots|figure|plot)\(|\bplot\.(contour|plot_trajectories|plot_curves)\("
)
IMAGE = re.compile(r"<img[^>]+src=\"([^\"]*_images/[^\"]+\.(?:png|svg))\"[^>]*>")
COLUMN_PX = 768  # a code cell output's width in the column at 1400 px (sphinx-book-theme), measured
MIN_PT = 9.0
CSS_PX_PER_PT = 4 / 3

SVG_WIDTH = re.compile(r"<svg[^>]*\bwidth=\"([\d.]+)(pt|px)?\"")
VIEWBOX = re.compile(r"<svg[^>]*\bviewBox=\"[\d.\-]+ [\d.\-]+ ([\d.]+) [\d.]+\"")
# text as outlines (svg.fonttype: path): a group scaled by font size / 100, y flipped
PATH_TEXT = re.compile(r"scale\(([\d.]+) -\1\)")
# text as text (svg.fonttype: none)
FONT_SIZE = re.compile(r"font(?:-size)?:[^;\"]*?([\d.]+)px")
FIGURE_ID = re.compile(r"<figure[^>]*\bid=\"([^\"]+)\"")
IMG_WIDTH = re.compile(r"\bwidth=\"([\d.]+)(px|%)?\"|width:\s*([\d.]+)(px|%)")


def chapters(toc: dict) -> list[str]:
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    files += [c["file"] for c in toc.get("chapters", [])]
    return files


def svg_text(svg: str) -> tuple[float, float, list[float]]:
    """(width in CSS px at its natural size, width in its own units, every font size in those units)."""
    width = SVG_WIDTH.search(svg)
    if width is None:
        raise ValueError("SVG without a width")
    value, unit = float(width.group(1)), width.group(2) or "px"
    natural_px = value * (CSS_PX_PER_PT if unit == "pt" else 1.0)
    box = VIEWBOX.search(svg)
    units = float(box.group(1)) if box else value
    sizes = [100 * float(s) for s in PATH_TEXT.findall(svg)]
    sizes += [float(s) for s in FONT_SIZE.findall(svg)]
    return natural_px, units, sizes


def shown_width(natural_px: float, img_tag: str, column_px: float = COLUMN_PX) -> float:
    """The width in CSS px the page shows an image at: its own, or the width the tag asks, at most the
    column."""
    asked = IMG_WIDTH.search(img_tag)
    width = natural_px
    if asked:
        value = float(asked.group(1) or asked.group(3))
        unit = asked.group(2) or asked.group(4) or "px"
        width = value * column_px / 100 if unit == "%" else value
    return min(width, column_px)


def smallest_text_pt(svg: str, img_tag: str, column_px: float = COLUMN_PX):
    """(shown width in px, natural width in px, smallest text in pt as shown), or None without text."""
    natural_px, units, sizes = svg_text(svg)
    if not sizes:
        return None
    shown = shown_width(natural_px, img_tag, column_px)
    # a size in SVG units shows as size * (shown px / units) CSS px, that is * 3/4 in pt
    return shown, natural_px, min(sizes) * shown / units / CSS_PX_PER_PT


def main(root: pathlib.Path, report: bool = False) -> int:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    site = root / "_build" / "html"
    missing, small, checked, svgs = [], [], 0, 0
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
        page_file = site / f"{name}.html"
        page = page_file.read_text()
        images = list(IMAGE.finditer(page))
        if not images:
            missing.append(name)
        for image in images:
            if not image.group(1).endswith(".svg"):
                continue
            svg_file = (page_file.parent / html.unescape(image.group(1))).resolve()
            measured = smallest_text_pt(svg_file.read_text(), image.group(0))
            svgs += 1
            if measured is None:
                continue
            shown, natural, pt = measured
            figure = FIGURE_ID.findall(page, 0, image.start())
            line = (
                f"{name}: {figure[-1] if figure else svg_file.name}: "
                f"{natural / 96:.1f} in wide ({natural:.0f} px), "
                f"shown at {shown:.0f} px, smallest text {pt:.1f} pt"
            )
            if report:
                print(line)
            if pt < MIN_PT - 0.05:
                small.append(line)
    print(
        f"{checked} chapters draw figures; {checked - len(missing)} have them in their built page; "
        f"{svgs} SVG figures, {len(small)} with text under {MIN_PT:g} pt as shown"
    )
    if missing:
        print("no figure in the built page of: " + ", ".join(missing), file=sys.stderr)
    if small:
        print(
            f"text under {MIN_PT:g} pt at the column's {COLUMN_PX} px (make the figure narrower, "
            "stack its panels, or enlarge its text):\n  " + "\n  ".join(small),
            file=sys.stderr,
        )
    return 1 if missing or small or checked == 0 else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--report"]
    sys.exit(
        main(pathlib.Path(args[0] if args else "."), report="--report" in sys.argv)
    )
