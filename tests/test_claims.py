"""book/claims.md, the claims ledger: every row names a notebook and a code cell that exists, is unique and asserts;
every `# claim:` label in the book is in the ledger; every verdict is one of the three; the source articles'
list of claims is covered. The ledger is read by the build's own parser (book/_ext/claim_anchors.py), the one
that gives each claim's cell its anchor. No tolerance: these are checks of text."""

import json
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK / "_ext"))
from claim_anchors import ASSERTS, LEDGER, VERDICTS, matches, read_ledger

ROWS = read_ledger(LEDGER)
IDS = [row.id for row in ROWS]


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_ledger_has_rows_and_unique_ids():
    # 79 rows when the ledger became tables per part; rows are added, never dropped
    assert len(IDS) >= 79 and len(set(IDS)) == len(IDS)


def test_every_table_row_is_a_claim():
    # a row the parser skipped would escape every check below
    table_rows = [
        line
        for line in LEDGER.read_text(encoding="utf-8").splitlines()
        if line.startswith("|") and not line.startswith(("| verdict |", "|---"))
    ]
    assert len(table_rows) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_each_row_points_to_a_cell_that_exists_and_asserts(row):
    path = BOOK / row.notebook
    assert path.is_file(), f"{row.id}: {path} does not exist"
    hits = [c for c in _code_cells(path) if matches(c, row.locator)]
    assert len(hits) == 1, (
        f"{row.id}: {len(hits)} cells of {path.name} match {row.locator!r}"
    )
    assert ASSERTS.search(hits[0]), (
        f"{row.id}: the cell matching {row.locator!r} asserts nothing"
    )
    assert row.verdict_kind in VERDICTS, row.verdict
    assert row.measured and row.claim


def test_every_claim_label_in_the_book_is_in_the_ledger():
    labels = set()
    for path in BOOK.rglob("*.ipynb"):
        if "_build" in path.parts:
            continue
        for cell in _code_cells(path):
            labels |= {
                line.strip()
                for line in cell.splitlines()
                if line.strip().startswith("# claim:")
            }
    listed = {row.locator for row in ROWS}
    assert labels <= listed, (
        f"labelled cells missing from book/claims.md: {sorted(labels - listed)}"
    )


def test_the_source_articles_claims_are_covered():
    # the list in shared/seeds/README.md, by the ledger id that measures each
    seeds_claims = [
        "l1-sparse-l2-shrinks",
        "l2-is-sgd-weight-decay",
        "dropout-ensemble",
        "dropconnect-generalizes-dropout",
        "early-stopping-u-curve",
        "momentum-damps-zigzag",
        "nag-rate",
        "nag-not-sgd",
        "adagrad-rate-decays",
        "adadelta-no-lr",
        "adam-bias-correction",
        "init-zero-symmetry",
        "init-xavier-tanh-he-relu",
        "linear-layers-collapse",
        "sigmoid-vanishes",
        "relu-dies",
        "bn-faster-larger-lr",
        "bn-14x",
        "random-search",
        "batch-size-epoch",
        "label-smoothing-logits",
    ]
    assert set(seeds_claims) <= set(IDS)
