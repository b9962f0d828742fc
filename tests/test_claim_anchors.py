"""book/_ext/claim_anchors.py: the ledger's parser, the cell matching on a hand-made doctree, and a
tiny Sphinx build (myst-nb, no execution) in which the ledger's links land on the claim cells and a
locator matching no cell or two cells is a warning naming the row. Checks of text, no tolerance."""

import json
import sys
import tempfile
from io import StringIO
from pathlib import Path

import pytest

# the book's tools (requirements.txt); the oldest-torch environment has only the test tools
pytest.importorskip(
    "sphinx", reason="Sphinx is not installed (the book's requirements)"
)
from docutils import nodes  # noqa: E402
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

EXT = Path(__file__).resolve().parents[1] / "book" / "_ext"
sys.path.insert(0, str(EXT))
from claim_anchors import (
    anchor_cells,
    chapter_label,
    code_cells,
    matches,
    read_ledger,
)

HEADER = "| verdict | claim | measured | where |\n|---|---|---|---|\n"


def ledger(tmp_path, *rows):
    path = tmp_path / "claims.md"
    path.write_text(
        "# Ledger\n\nSome text | with a bar.\n\n" + HEADER + "\n".join(rows)
    )
    return path


def doctree(*sources):
    """A document with one myst-nb code cell per source (None: a cell whose input is removed)."""
    document = new_document("test", get_default_settings(Parser))
    for index, source in enumerate(sources):
        cell = nodes.container(
            nb_element="cell_code", cell_index=index, classes=["cell"]
        )
        if source is not None:
            code = nodes.container(
                nb_element="cell_code_source", classes=["cell_input"]
            )
            code += nodes.literal_block(source, source)
            cell += code
        cell += nodes.container(nb_element="cell_code_output", classes=["cell_output"])
        document += cell
    return document


def test_the_ledger_parser_reads_ids_links_locators_and_verdicts(tmp_path):
    rows = read_ledger(
        ledger(
            tmp_path,
            "| **holds** | a claim `a-claim` | 3 × | [](part/ch.ipynb#claim-a-claim) |",
            "| **holds with a caveat**: narrow | b `b` | 1 | "
            "[](ch.ipynb#claim-b) · `assert x > 1` |",
            "| **does not hold here** (why) | c `c` | 2 | "
            "[](ch.ipynb#claim-c) · `# claim: other` |",
        )
    )
    assert [(r.id, r.notebook, r.locator, r.verdict_kind) for r in rows] == [
        ("a-claim", "part/ch.ipynb", "# claim: a-claim", "holds"),
        ("b", "ch.ipynb", "assert x > 1", "holds with a caveat"),
        ("c", "ch.ipynb", "# claim: other", "does not hold here"),
    ]
    assert rows[0].claim == "a claim" and rows[0].anchor == "claim-a-claim"
    assert rows[0].line == 7


@pytest.mark.parametrize(
    "row, message",
    [
        ("| **holds** | no id | 3 | [](ch.ipynb#claim-x) |", "end with its `id`"),
        ("| **holds** | c `x` | 3 | [](ch.ipynb#claim-y) |", "must agree"),
        ("| **holds** | c `X_1` | 3 | [](ch.ipynb#claim-X_1) |", "must agree"),
        ("| **holds** | c `x` | 3 | {doc}`ch` |", "must start with"),
        ("| **holds** | c `x` | 3 | [](ch.ipynb#claim-x) `assert 1` |", "only ·"),
        ("| **holds** | c `x` | 3 | [](ch.ipynb#claim-x) · `x = 1` |", "a locator"),
        ("| **holds** | c `x` | [](ch.ipynb#claim-x) |", "3 cells, not 4"),
    ],
)
def test_the_ledger_parser_names_the_line_of_a_bad_row(tmp_path, row, message):
    with pytest.raises(
        ValueError, match="claims.md:7: .*" + message.replace("(", r"\(")
    ):
        read_ledger(ledger(tmp_path, row))


def test_a_claim_locator_matches_a_whole_line_and_an_assert_anywhere():
    assert matches("x = 1\n# claim: a\nassert x", "# claim: a")
    assert not matches("# claim: a-b\nassert x", "# claim: a")
    assert not matches("y = 1  # claim: a", "# claim: a")
    assert matches("for i in r:\n    assert f(i) > 2  # why", "assert f(i) > 2")
    assert not matches("assert f(i) > 3", "assert f(i) > 2")


def test_each_row_anchors_the_one_cell_its_locator_finds():
    tree = doctree(
        "# claim: a-b\nassert 1",
        "# claim: a\nassert 2",
        None,
        "x = 1\nassert x > 0",
    )
    rows = read_ledger_rows(
        "| **holds** | a `a` | 1 | [](ch.ipynb#claim-a) |",
        "| **holds** | b `other` | 1 | [](ch.ipynb#claim-other) · `# claim: a` |",
        "| **holds** | c `c` | 1 | [](ch.ipynb#claim-c) · `assert x > 0` |",
    )
    assert anchor_cells(tree, rows) == []
    cells = [node for node, _ in code_cells(tree)]
    assert [cell["ids"] for cell in cells] == [
        [],
        ["claim-a", "claim-other"],
        [],
        ["claim-c"],
    ]
    assert tree.ids["claim-c"] is cells[3]


def test_a_locator_finding_no_cell_or_several_is_a_problem_naming_the_row():
    tree = doctree("assert x > 0", "assert x > 0 and y", None)
    rows = read_ledger_rows(
        "| **holds** | two `two` | 1 | [](ch.ipynb#claim-two) · `assert x > 0` |",
        "| **holds** | none `none` | 1 | [](ch.ipynb#claim-none) |",
    )
    problems = anchor_cells(tree, rows)
    assert len(problems) == 2
    assert "claim 'two': 2 code cells" in problems[0]
    assert "claim 'none': 0 code cells" in problems[1]
    assert all(node["ids"] == [] for node, _ in code_cells(tree))


def test_a_link_shows_the_chapters_number_or_its_title():
    assert chapter_label("5.1 From gradient descent to momentum") == "5.1"
    assert chapter_label("4.6. Regularization compared") == "4.6"
    assert chapter_label("Regularization compared") == "Regularization compared"


def read_ledger_rows(*rows):
    with tempfile.TemporaryDirectory() as tmp:
        return read_ledger(ledger(Path(tmp), *rows))


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {
        "kernelspec": {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        },
        "language_info": {"name": "python"},
    },
    "cells": [
        {
            "cell_type": "markdown",
            "id": "m",
            "metadata": {},
            "source": "# 2.3 A chapter",
        },
        *[
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {"tags": tags},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for i, (source, tags) in enumerate(
                [
                    ("# claim: one-more\nassert True", []),
                    ("# claim: one\nassert 1 + 1 == 2", ["hide-input"]),
                    ("x = 3\nassert x > 2", []),
                    ("assert x > 2  # again", []),
                ]
            )
        ],
    ],
}


def build(src: Path, builder: str, *rows: str) -> tuple[Path, list[str]]:
    """Build a two-page book in ``src``: the notebook above and a ledger of ``rows``; returns the
    output folder and the warnings. Sphinx's registry of node classes is restored afterwards, so
    that builds in one process do not warn of each other."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(EXT)!r})\n"
        "extensions = ['myst_nb', 'claim_anchors']\n"
        "nb_execution_mode = 'off'\nclaims_ledger = 'claims.md'\n"
    )
    (src / "index.md").write_text("# Index\n\n```{toctree}\nnb\nclaims\n```\n")
    (src / "nb.ipynb").write_text(json.dumps(NOTEBOOK))
    ledger(src, *rows)
    out, warnings = src / "_build", StringIO()
    with docutils_namespace():
        app = Sphinx(
            src, src, out, out / ".doctrees", builder, status=None, warning=warnings
        )
        app.build()
    return out, [line for line in warnings.getvalue().splitlines() if "WARNING" in line]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Four rows, two of them wrong."""
    return build(
        tmp_path_factory.mktemp("book"),
        "html",
        "| **holds** | one `one` | 2 | [](nb.ipynb#claim-one) |",
        "| **holds** | by assert `by-assert` | 3 | "
        "[](nb.ipynb#claim-by-assert) · `assert x > 2  # again` |",
        "| **holds** | twice `twice` | 3 | [](nb.ipynb#claim-twice) · `assert x > 2` |",
        "| **holds** | nowhere `nowhere` | 0 | [](nb.ipynb#claim-nowhere) · `assert 0` |",
    )


def test_a_build_anchors_the_claim_cells_and_links_the_ledger_to_them(built):
    out, _ = built
    page = (out / "nb.html").read_text()
    cell = page.index('id="claim-one"')
    assert page.rindex("<div", 0, cell) == page.index('<div class="cell tag_hide-input')
    next_cell = page.index('<div class="cell ', cell + 1)  # not cell_input
    assert "# claim: one</span>" in page[cell:next_cell]
    assert 'id="claim-by-assert"' in page
    ledger_page = (out / "claims.html").read_text()
    assert 'href="nb.html#claim-one"' in ledger_page
    assert 'href="nb.html#claim-by-assert"' in ledger_page
    assert '<span class="std std-ref">2.3</span>' in ledger_page
    # the ledger's tables, and only they, get the class and the style sheet that wraps them
    assert ledger_page.count('class="claims-ledger') == 1
    assert "claims-ledger.css" in ledger_page and "claims-ledger" not in page
    assert "table.claims-ledger" in (out / "_static" / "claims-ledger.css").read_text()


def test_a_build_warns_of_each_row_whose_cell_is_not_found_once(built):
    _, lines = built
    assert any("claim 'twice': 2 code cells" in line for line in lines), lines
    assert any("claim 'nowhere': 0 code cells" in line for line in lines), lines
    # the ledger's link to a missing anchor warns too; the two good rows give nothing
    assert any("claim-nowhere" in line and "not found" in line for line in lines)
    assert not [line for line in lines if "claim-one" in line or "by-assert" in line]
    assert len(lines) == 4, lines  # two rows, each: its cell and its link


def test_a_malformed_ledger_row_is_one_warning_on_the_ledger_page(tmp_path):
    _, lines = build(
        tmp_path, "dummy", "| **holds** | no id | 2 | [](nb.ipynb#claim-one) |"
    )
    ledger_lines = [line for line in lines if "claims ledger:" in line]
    assert len(ledger_lines) == 1, lines  # once, not once per page read
    assert "claims.md:7: the claim cell must end" in ledger_lines[0]
    assert len(lines) == 2 and "'claim-one'" in lines[1]  # and its link has no anchor
