"""A Sphinx extension: each claim of the ledger (book/claims.md) has an anchor on the cell that measures it.

The ledger is markdown tables whose rows read ``| verdict | claim `id` | measured | where |``, the
"where" cell a link to the notebook and the anchor, ``[](optimization/momentum.ipynb#claim-<id>)``,
optionally followed by `` · `locator` `` (see ``read_ledger``). Without a locator the row's cell is the
one with the line ``# claim: <id>``; otherwise the locator is that line (``# claim: other-id``) or the
text of an ``assert`` in the cell. ``tests/test_claims.py`` reads the ledger with the same functions.

While a notebook is read, this finds, for each row that points to it, the myst-nb code cell (a
``container`` with ``nb_element="cell_code"``) whose source matches the locator, adds ``claim-<id>`` to
its ``ids`` (the HTML ``<div class="cell">`` gets ``id="claim-<id>"``), and records the anchor among
the page's MyST slugs with the chapter's number as its text, so that the ledger's ``[](page.ipynb#claim-<id>)``
resolves to the cell, reads "5.1", and warns (as a missing heading anchor does) when the anchor is
missing. A row whose locator matches no cell, or several, is a build warning naming the row.

The ledger's own tables get the class ``claims-ledger`` and a small style sheet (``CSS`` below, on that
page only): the cells wrap (an id breaks at its hyphens), and on a narrow screen each row is a card,
verdict first, so nothing scrolls sideways on a phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LEDGER = Path(__file__).parents[1] / "claims.md"
VERDICTS = ("holds", "holds with a caveat", "does not hold here")
# a cell asserts: a line starting with `assert`, or a call of an assert_close helper
ASSERTS = re.compile(r"^\s*(assert\b|assert_close\(|.*\bassert_close\()", re.MULTILINE)
ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
LINK = re.compile(r"^\[[^\]]*\]\(([^)#\s]+\.ipynb)#claim-([^)\s]+)\)")
CHAPTER_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)*)\.?(?:\s|$)")


@dataclass(frozen=True)
class Row:
    """One claim of the ledger: ``notebook`` is relative to the ledger's folder (``book/``)."""

    id: str
    claim: str
    measured: str
    verdict: str  # the cell's text, "**holds with a caveat**: ..."
    verdict_kind: str  # one of VERDICTS, or what the cell's bold text says
    notebook: str
    locator: str  # "# claim: <id>" or the text of an assert line
    line: int  # in the ledger, from 1

    @property
    def anchor(self) -> str:
        return f"claim-{self.id}"


def _row(cells: list[str], line: int) -> Row:
    verdict, claim, measured, where = cells
    ident = re.search(r"`([^`]+)`$", claim)
    if not ident:
        raise ValueError(f"claims.md:{line}: the claim cell must end with its `id`")
    link = LINK.match(where)
    if not link:
        raise ValueError(
            f"claims.md:{line}: the where cell must start with [](notebook.ipynb#claim-<id>)"
        )
    notebook, anchor_id = link.groups()
    if anchor_id != ident.group(1) or not ID.fullmatch(anchor_id):
        raise ValueError(
            f"claims.md:{line}: the anchor claim-{anchor_id} and the id `{ident.group(1)}` "
            "must agree and be lowercase words joined by hyphens"
        )
    rest = where[link.end() :].strip()
    if rest:
        found = re.fullmatch(r"·\s*`([^`]+)`", rest)
        if not found:
            raise ValueError(
                f"claims.md:{line}: after the link, only · `# claim: ...` or · `assert ...`"
            )
        locator = found.group(1)
    else:
        locator = f"# claim: {anchor_id}"
    if not locator.startswith(("# claim: ", "assert")):
        raise ValueError(
            f"claims.md:{line}: a locator is `# claim: <id>` or `assert ...`"
        )
    kind = re.match(r"\*\*([^*]+)\*\*", verdict)
    return Row(
        id=anchor_id,
        claim=claim[: ident.start()].strip(),
        measured=measured,
        verdict=verdict,
        verdict_kind=kind.group(1) if kind else "",
        notebook=notebook,
        locator=locator,
        line=line,
    )


def read_ledger(path: Path = LEDGER) -> list[Row]:
    """Every claim row of the ledger's tables (header and separator rows skipped).

    A row is ``| verdict | claim `id` | measured | where |``, its cells separated by `` | ``; raises
    ValueError, naming the line, on a row that does not read so."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("| ") or line.startswith(("| verdict |", "|---")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) != 4:
            raise ValueError(f"claims.md:{number}: {len(cells)} cells, not 4: {line}")
        rows.append(_row(cells, number))
    return rows


def matches(source: str, locator: str) -> bool:
    """Whether a code cell's source holds the locator: a ``# claim:`` locator as a whole line
    (``# claim: x`` is not ``# claim: x-y``), an assert's text anywhere."""
    if locator.startswith("# claim:"):
        return locator in source.splitlines()
    return locator in source


def code_cells(doctree):
    """myst-nb's code cells of a doctree with their source: (container, source) pairs. A cell whose
    input is removed (tag ``remove-input``) has no source here and matches nothing."""
    from docutils import nodes

    for node in doctree.findall(nodes.container):
        if node.get("nb_element") != "cell_code":
            continue
        source = [
            child.astext()
            for child in node.children
            if isinstance(child, nodes.container)
            and child.get("nb_element") == "cell_code_source"
        ]
        yield node, "\n".join(source)


def chapter_label(title: str) -> str:
    """The text a link to a chapter shows: its number ("5.1"), or its title when it has none."""
    number = CHAPTER_NUMBER.match(title)
    return number.group(1) if number else title.strip()


def anchor_cells(doctree, rows: list[Row]) -> list[str]:
    """Add ``claim-<id>`` to the ids of the cell each row's locator finds; returns the problems."""
    cells = list(code_cells(doctree))
    problems = []
    for row in rows:
        hits = [node for node, source in cells if matches(source, row.locator)]
        if len(hits) != 1:
            problems.append(
                f"claims.md:{row.line}: claim {row.id!r}: {len(hits)} code cells of "
                f"{row.notebook} match {row.locator!r} (needs exactly one)"
            )
            continue
        if row.anchor not in hits[0]["ids"]:
            hits[0]["ids"].append(row.anchor)
            doctree.ids[row.anchor] = hits[0]
    return problems


def _ledger_path(app) -> Path | None:
    """The ledger: the config value ``claims_ledger`` (relative to the configuration's folder), by
    default book/claims.md beside this file (in a preview build, through its link to book/)."""
    path = (
        Path(app.confdir, app.config.claims_ledger)
        if app.config.claims_ledger
        else LEDGER
    )
    return path if path.is_file() else None


def _rows_for(app, docname: str) -> list[Row]:
    ledger = _ledger_path(app)
    if ledger is None:
        return []
    source = Path(app.env.doc2path(docname)).resolve()
    book = ledger.resolve().parent
    return [
        row for row in read_ledger(ledger) if (book / row.notebook).resolve() == source
    ]


def _make_transform():
    from docutils import nodes
    from sphinx.transforms import SphinxTransform
    from sphinx.util import logging

    logger = logging.getLogger(__name__)

    class ClaimAnchors(SphinxTransform):
        """Anchors the ledger's claim cells of the page being read."""

        # after the notebook is parsed, before SphinxDomains (850) and doctree-read (880)
        default_priority = 840

        def apply(self, **kwargs) -> None:
            docname = self.env.docname
            ledger = _ledger_path(self.app)
            source = Path(self.env.doc2path(docname)).resolve()
            if ledger is not None and ledger.resolve() == source:
                for table in self.document.findall(nodes.table):
                    table["classes"].append("claims-ledger")
                try:  # a malformed row is reported once, on the ledger's page
                    read_ledger(ledger)
                except ValueError as error:
                    logger.warning(f"claims ledger: {error}", location=docname)
                return
            try:
                rows = _rows_for(self.app, docname)
            except ValueError:
                return  # reported on the ledger's page
            if not rows:
                return
            for problem in anchor_cells(self.document, rows):
                logger.warning(problem, location=docname)
            title = next(iter(self.document.findall(nodes.title)), None)
            text = chapter_label(title.astext() if title else docname)
            slugs = self.env.metadata[docname].setdefault("myst_slugs", {})
            for row in rows:
                if row.anchor in self.document.ids:
                    slugs[row.anchor] = (0, row.anchor, text)

    return ClaimAnchors


CSS = """\
/* The claims ledger (book/claims.md), from book/_ext/claim_anchors.py. */
table.claims-ledger code span.pre { white-space: normal; }
table.claims-ledger code { overflow-wrap: anywhere; }  /* a long path */
@media (max-width: 720px) {
  table.claims-ledger, table.claims-ledger tbody, table.claims-ledger tr,
  table.claims-ledger td { display: block; width: auto; }
  table.claims-ledger thead { display: none; }
  table.claims-ledger tr { padding: 0.4em 0; border-top: 1px solid var(--pst-color-border, #ccc); }
  table.claims-ledger td { border: none; padding: 0.15em 0.5em; overflow-x: auto; }
  table.claims-ledger td:nth-child(3)::before { content: "measured: "; font-weight: 600; }
  table.claims-ledger td:nth-child(4)::before { content: "where: "; font-weight: 600; }
}
"""
CSS_FILE = "claims-ledger.css"


def _is_ledger_page(doctree) -> bool:
    from docutils import nodes

    return doctree is not None and any(
        "claims-ledger" in table["classes"] for table in doctree.findall(nodes.table)
    )


def _page_css(app, pagename, templatename, context, doctree):
    if _is_ledger_page(doctree):
        app.add_css_file(CSS_FILE)


def _write_css(app, exception):
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir, "_static")
        static.mkdir(parents=True, exist_ok=True)
        (static / CSS_FILE).write_text(CSS, encoding="utf-8")


def _outdated(app, env, added, changed, removed):
    """Re-read the claims' notebooks when the ledger changed since the last build."""
    ledger = _ledger_path(app)
    text = ledger.read_text(encoding="utf-8") if ledger else ""
    if getattr(env, "claim_anchors_ledger", None) == text:
        return []
    env.claim_anchors_ledger = text
    try:
        rows = read_ledger(ledger) if ledger else []
    except ValueError:
        return []
    book = ledger.resolve().parent if ledger else None
    wanted = {(book / row.notebook).resolve() for row in rows}
    return [
        docname
        for docname in env.found_docs
        if Path(env.doc2path(docname)).resolve() in wanted
    ]


def setup(app):
    app.add_config_value("claims_ledger", "", "env")
    app.add_transform(_make_transform())
    app.connect("env-get-outdated", _outdated)
    app.connect("html-page-context", _page_css)
    app.connect("build-finished", _write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
