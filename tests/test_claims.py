"""book/claims.md, the claims ledger: every row names a notebook and a code cell that exists, is unique and asserts;
every `# claim:` label in the book is in the ledger; every verdict is one of the three; the source articles'
list of claims is covered. No tolerance: these are checks of text."""

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
LEDGER = BOOK / "claims.md"
VERDICTS = ("holds", "holds with a caveat", "does not hold here")
ASSERTS = re.compile(r"^\s*(assert\b|assert_close\(|.*\bassert_close\()", re.MULTILINE)


def _rows():
    rows = []
    for line in LEDGER.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, line
        rows.append(dict(zip(("id", "claim", "where", "measured", "verdict"), cells)))
    return rows


def _notebook(where: str) -> Path:
    doc = re.search(r"\{doc\}`([^`]+)`", where)
    path = (
        doc.group(1) + ".ipynb"
        if doc
        else re.search(r"`([^`]+\.ipynb)`", where).group(1)
    )
    return BOOK / path


def _locator(where: str) -> str:
    found = [
        s
        for s in re.findall(r"`([^`]+)`", where)
        if s.startswith(("# claim:", "assert"))
    ]
    assert len(found) == 1, where
    return found[0]


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


ROWS = _rows()


def test_the_ledger_has_rows_and_unique_ids():
    ids = [row["id"].strip("`") for row in ROWS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("row", ROWS, ids=[row["id"].strip("`") for row in ROWS])
def test_each_row_points_to_a_cell_that_exists_and_asserts(row):
    path = _notebook(row["where"])
    assert path.is_file(), f"{row['id']}: {path} does not exist"
    locator = _locator(row["where"])
    cells = _code_cells(path)
    if locator.startswith("# claim:"):
        hits = [
            c for c in cells if locator in c.splitlines()
        ]  # a whole line: `# claim: x` is not `# claim: x-y`
    else:
        hits = [c for c in cells if locator in c]
    assert len(hits) == 1, (
        f"{row['id']}: {len(hits)} cells of {path.name} match {locator!r}"
    )
    assert ASSERTS.search(hits[0]), (
        f"{row['id']}: the cell matching {locator!r} asserts nothing"
    )
    assert row["verdict"].split(":")[0].split(" (")[0] in VERDICTS, row["verdict"]
    assert row["measured"] and row["claim"]


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
    listed = {_locator(row["where"]) for row in ROWS}
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
    assert set(seeds_claims) <= {row["id"].strip("`") for row in ROWS}
