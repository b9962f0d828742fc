"""The repository's text files hold no ASCII control characters (other than tab, newline and carriage
return). A ``\\b`` or ``\\f`` written into a non-raw docstring becomes a backspace or a form feed: the
API page then shows ``eta_1`` for ``\\beta_1`` and MathJax fails on the formula, which only the browser
test at the end of CI would otherwise notice."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXT = {
    ".py",
    ".md",
    ".ipynb",
    ".yml",
    ".yaml",
    ".toml",
    ".txt",
    ".bib",
    ".cfg",
    ".css",
    ".js",
    ".html",
}
FOLDERS = ["companion", "book", "tests", "assignments", "benchmarks", ".ci"]
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text_files():
    files = [p for p in ROOT.glob("*") if p.is_file() and p.suffix in TEXT]
    for folder in FOLDERS:
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file()
            and p.suffix in TEXT
            and not any(
                part.startswith((".", "_build")) and part != ".ci"
                for part in p.relative_to(ROOT).parts
            )
        ]
    return sorted(files)


def test_the_scan_finds_files_and_sees_a_backspace(tmp_path):
    assert len(text_files()) > 100
    assert CONTROL.search("1 - \beta_1") and not CONTROL.search(r"1 - \beta_1")


@pytest.mark.parametrize("folder", FOLDERS + ["."])
def test_no_control_characters(folder):
    found = []
    for path in text_files():
        rel = path.relative_to(ROOT)
        if (rel.parts[0] if len(rel.parts) > 1 else ".") != folder:
            continue
        for n, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            if match := CONTROL.search(line):
                found.append(f"{rel}:{n}: {match.group()!r} in {line.strip()[:80]!r}")
    assert not found, (
        "control characters (a backslash escape in a non-raw string?):\n"
        + "\n".join(found)
    )


def test_no_control_characters_in_docstrings():
    """Docstrings as Python reads them: ``"\\beta"`` in a non-raw string is a backspace and ``eta``."""
    import importlib
    import inspect
    import pkgutil

    import companion

    found = []
    for info in pkgutil.walk_packages(companion.__path__, "companion."):
        module = importlib.import_module(info.name)
        objects = [module] + [
            obj
            for _, obj in vars(module).items()
            if getattr(obj, "__module__", None) == info.name
            and (inspect.isclass(obj) or inspect.isfunction(obj))
        ]
        for obj in list(objects):
            if inspect.isclass(obj):
                objects += [m for m in vars(obj).values() if inspect.isfunction(m)]
        for obj in objects:
            if (doc := obj.__doc__) and (match := CONTROL.search(doc)):
                found.append(
                    f"{getattr(obj, '__qualname__', info.name)}: {match.group()!r}"
                )
    assert not found, (
        'control characters in docstrings (write them as r"""..."""):\n'
        + "\n".join(found)
    )
