"""The student edition of the book: its configuration, and the scan that proves no solution is left in it.

``.ci/student-edition`` builds the book with sphinx-exercise's ``hide_solutions``, without page sources
(``html_copy_source: false``, no download, launch or edit buttons, which all lead to the notebooks with their
solutions) and then runs ``python -m companion.coursework.student_edition scan HTML BOOK``, which fails if any
sentence of any ``{solution}`` block of the book appears in any file of the built site, or if a page source
(``_sources/``, ``.ipynb``) was copied there.

The scan compares *runs of plain words*: the text between math, roles, code and punctuation, at least
``MIN_WORDS`` words long, lower-cased, from the solution's source and from the site's files with tags removed.
A translated edition (``--language zh_CN``) is scanned for the solutions' translations too, taken from the
page's catalog (``book/locale/<language>/LC_MESSAGES/<page>.po``): runs of at least ``MIN_HANZI`` Chinese
characters between punctuation and markup.
"""

import html
import json
import re
import sys
from pathlib import Path

MIN_WORDS = 6
MIN_HANZI = 8
_HANZI = "\u3400-\u4dbf\u4e00-\u9fff"
_NOT_ALPHABET = re.compile(f"[^A-Za-z0-9{_HANZI}\\s]+")
_BLOCK = re.compile(
    r"^(`{3,}|:{3,})\{(solution|exercise)\}[^\n]*\n(.*?)^\1\s*$", re.M | re.S
)
_MARKUP = [
    re.compile(p, re.S)
    for p in (
        r"\$\$.*?\$\$",
        r"\$[^$\n]*\$",
        r"\{[\w:-]+\}`[^`]*`",
        r"`[^`]*`",
        r"\]\([^)]*\)",
        r"<[^>]+>",
    )
]


def _markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]
            if c["cell_type"] == "markdown"
        )
    return path.read_text(encoding="utf-8")


def _runs(text: str) -> list[str]:
    for pattern in _MARKUP:
        text = pattern.sub("|", text)
    text = re.sub(r"[^A-Za-z0-9\s]+", "|", text)
    runs = (" ".join(part.split()).lower() for part in text.split("|"))
    return [r for r in runs if len(r.split()) >= MIN_WORDS]


def _hanzi_runs(text: str) -> list[str]:
    for pattern in _MARKUP:
        text = pattern.sub("|", text)
    return re.findall(f"[{_HANZI}]{{{MIN_HANZI},}}", text)


def _catalog(book: Path, page: Path, language: str) -> dict[str, str]:
    """``{English paragraph: translation}`` of a page, from its catalog under ``book/locale``."""
    po = book / "locale" / language / "LC_MESSAGES" / "book" / page.with_suffix(".po")
    if not po.exists():
        return {}
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id and m.string}


def _translated(body: str, catalog: dict[str, str]) -> list[str]:
    """The translations of the catalog's paragraphs that stand in ``body``."""
    flat = " ".join(body.split())
    return [t for e, t in catalog.items() if t != e and " ".join(e.split()) in flat]


def blocks(
    book: Path, kind: str = "solution", language: str | None = None
) -> dict[str, list[str]]:
    """``{file: [word runs]}`` of every ``{solution}`` (or ``{exercise}``) block under ``book``; with a
    ``language``, the runs of the blocks' translations as well."""
    found = {}
    for path in sorted([*book.rglob("*.ipynb"), *book.rglob("*.md")]):
        if {"_build", ".ipynb_checkpoints"} & set(path.relative_to(book).parts):
            continue
        runs = []
        catalog = _catalog(book, path.relative_to(book), language) if language else {}
        for m in _BLOCK.finditer(_markdown_of(path)):
            if m.group(2) == kind:
                body = "\n".join(
                    ln for ln in m.group(3).splitlines() if not ln.startswith(":")
                )
                runs += _runs(body)
                runs += [r for t in _translated(body, catalog) for r in _hanzi_runs(t)]
        if runs:
            found[str(path.relative_to(book))] = runs
    return found


def site_text(site: Path) -> dict[str, str]:
    """Every text file of the built site, tags removed and reduced to the same word runs' alphabet."""
    texts = {}
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        if path.suffix.lower() in {
            ".png",
            ".jpg",
            ".jpeg",
            ".gif",
            ".svg",
            ".woff",
            ".woff2",
            ".ttf",
            ".ico",
            ".eot",
        }:
            continue
        raw = path.read_bytes().decode("utf-8", errors="ignore")
        raw = html.unescape(re.sub(r"<[^>]+>", " ", raw)).replace("\\n", " ")
        texts[str(path.relative_to(site))] = " | ".join(
            " ".join(p.split()).lower() for p in _NOT_ALPHABET.sub("|", raw).split("|")
        )
    return texts


def public_text(
    book: Path, package: Path | None = None, language: str | None = None
) -> str:
    """Everything a student may read anyway, reduced to the word runs' alphabet: every page source under
    ``book`` (its prose with the solution blocks removed, its code and, in executed copies, what the code
    printed) and the package's source (whose
    docstrings the API reference shows). A solution sentence that also stands here is not a leak."""
    prose, code = [], []
    for path in sorted([*book.rglob("*.ipynb"), *book.rglob("*.md")]):
        if {"_build", ".ipynb_checkpoints"} & set(path.relative_to(book).parts):
            continue
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            for c in (c for c in cells if c["cell_type"] == "code"):
                code.append(
                    "".join(c["source"])
                    if isinstance(c["source"], list)
                    else c["source"]
                )
                # what the cell printed, in an executed copy: the student's own run prints it too
                for out in c.get("outputs", []):
                    for text in (
                        out.get("text"),
                        out.get("data", {}).get("text/plain"),
                    ):
                        code.append(
                            "".join(text) if isinstance(text, list) else text or ""
                        )
        body = _BLOCK.sub(
            lambda m: "" if m.group(2) == "solution" else m.group(0),
            _markdown_of(path),
        )
        prose.append(body)
        if language:
            catalog = _catalog(book, path.relative_to(book), language)
            prose += _translated(body, catalog)
    if package is not None and package.is_dir():
        code += [py.read_text(encoding="utf-8") for py in sorted(package.rglob("*.py"))]
    text = "\n".join(prose)
    for pattern in (
        _MARKUP
    ):  # the same markup removal as the solutions' runs get; code is taken as it is
        text = pattern.sub("|", text)
    text += "\n" + "\n".join(code)
    return " | ".join(
        " ".join(part.split()).lower()
        for part in _NOT_ALPHABET.sub("|", text).split("|")
    )


def scan(
    site: Path, book: Path, package: Path | None = None, language: str | None = None
) -> list[str]:
    """What leaks: page sources in the site, and solution sentences found in its files that are not also
    in the public text (:func:`public_text`; ``package`` defaults to the ``companion`` folder beside ``book``)."""
    site, book = Path(site), Path(book)
    leaks = [
        f"page source copied: {p.relative_to(site)}"
        for p in site.rglob("*")
        if p.is_file() and ("_sources" in p.parts or p.suffix == ".ipynb")
    ]
    texts = site_text(site)
    public = public_text(
        book, package if package is not None else book.parent / "companion", language
    )
    for source, runs in blocks(book, language=language).items():
        for run in runs:
            if run in public:
                continue  # the chapter's body or a docstring says it too
            for name, text in texts.items():
                if run in text:
                    leaks.append(f"solution text from {source} in {name}: {run!r}")
    return leaks


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    language = None
    if len(argv) == 5 and argv[3] == "--language":
        language, argv = argv[4], argv[:3]
    if len(argv) != 3 or argv[0] != "scan":
        print(
            "usage: python -m companion.coursework.student_edition scan HTML_DIR BOOK_DIR"
            " [--language LANG]",
            file=sys.stderr,
        )
        return 2
    leaks = scan(Path(argv[1]), Path(argv[2]), language=language)
    for leak in leaks[:50]:
        print(leak)
    n = sum(len(r) for r in blocks(Path(argv[2]), language=language).values())
    print(
        f"student edition: {len(leaks)} leaks ({n} solution sentences checked in {argv[1]})"
    )
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
