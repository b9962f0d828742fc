"""Results as HTML tables, for the chapters' output cells (Jupyter and the built book render them as tables).

``markdown_table`` in :mod:`companion.experiments.optimizer_race` formats a race's intervals; this is the
plain form: a header and rows of already formatted cells."""

import html
import re
from collections.abc import Iterable, Sequence

from IPython.display import HTML


def html_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> HTML:
    """An HTML table with one header row, then one row per entry of ``rows``; cells are shown with ``str``
    (so they may hold inline HTML or ``$...$`` math). Each cell carries its column's name
    (``data-label``), so that a narrow screen can show each row as a card of labelled cells
    (``book/_static/course.css``, ``table.results``)."""
    labels = [
        html.escape(re.sub(r"<[^>]+>|\$", "", str(h)), quote=True) for h in header
    ]
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td data-label="{label}">{c}</td>' for label, c in zip(labels, row))
        + "</tr>"
        for row in rows
    )
    return HTML(
        f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )
