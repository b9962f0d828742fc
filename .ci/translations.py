"""The book in other languages: the English pages are the one source; each translation is a set of
gettext catalogs, ``book/locale/<lang>/LC_MESSAGES/<page>.po`` (one per page, one message per paragraph,
caption, alt text, heading, list item or table cell).

    python .ci/translations.py update [--lang zh_CN]   refresh the catalogs from the English pages and list
                                                       what needs translating (new or changed paragraphs)
    python .ci/translations.py check  [--lang zh_CN]   the same, writing nothing; exit 1 if any message of
                                                       any page is untranslated or fuzzy (its English
                                                       changed since it was translated), naming each one
    python .ci/translations.py stage DIR [PAGE...] [--lang zh_CN] [--student]
                                                       a source tree for one edition (.ci/edition and
                                                       .ci/student-edition build it)

The package's docstrings (the API pages, the docstrings shown above listings) are code documentation and
stay in English. Messages are extracted by Sphinx's gettext builder from the pages as they are shown: the notebooks are
taken already executed from the English build (``_build/jupyter_execute``, left by ``jupyter-book build .``)
so that figure captions and alt texts, which come with the outputs, are extracted too. Without an executed
build the command builds the English book first. A changed English paragraph keeps its old translation
marked fuzzy until a translator revises it and removes the flag.

Uses the python on PATH (activate your venv).
"""

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import languages  # noqa: E402 - the book's extension: how a build carries translations over new numbers

LOCALE = ROOT / "book" / "locale"
EXECUTED = pathlib.Path(
    os.environ.get("EXECUTED_NOTEBOOKS", ROOT / "_build" / "jupyter_execute")
)


def toc_files(toc: dict) -> list[str]:
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    return [toc["root"]] + [c["file"] for part in parts for c in part["chapters"]]


def stage(
    dst: pathlib.Path,
    *,
    language: str = "en",
    student: bool = False,
    executed=None,
    pages: list[str] | None = None,
) -> bool:
    """A copy of the book's sources in ``dst`` for one edition (a language, with or without solutions),
    built without executing anything where it can be: the notebooks are the executed ones of the English
    build (``executed``), so every language and edition shows the outputs of one execution. ``pages``:
    only these (a quick check; not executed). Returns whether the pages are executed (when there are no
    executed copies the whole book is executed by the build, and the pages are not)."""
    executed = pathlib.Path(executed or EXECUTED).resolve()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    if pages:
        chapters = [p.rsplit(".", 1)[0] for p in pages] + ["book/references"]
        toc = {
            "format": "jb-book",
            "root": "book/intro",
            "chapters": [{"file": f} for f in chapters],
        }
    files = toc_files(toc)
    notebooks = [f for f in files if (ROOT / f"{f}.ipynb").exists()]
    reuse = executed.is_dir() and all(
        (executed / f"{f}.ipynb").exists() for f in notebooks
    )
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(
        ROOT / "book",
        dst / "book",
        ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"),
    )
    if reuse:
        for f in notebooks:
            shutil.copyfile(executed / f"{f}.ipynb", dst / f"{f}.ipynb")
    (dst / "companion").symlink_to(ROOT / "companion")
    config["execute"]["execute_notebooks"] = "off" if (reuse or pages) else "force"
    sphinx = config.setdefault("sphinx", {})
    sphinx["recursive_update"] = True
    settings = sphinx.setdefault("config", {})
    settings["language"] = language
    if student:
        config.pop("launch_buttons", None)
        config["html"].update(
            use_edit_page_button=False,
            use_issues_button=False,
            use_repository_button=False,
        )
        config["title"] += " (student edition)"
        settings.update(
            hide_solutions=True,
            html_copy_source=False,
            html_show_sourcelink=False,
            html_theme_options={"use_download_button": False},
        )
    (dst / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (dst / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    how = (
        "reused from " + str(executed)
        if reuse
        else config["execute"]["execute_notebooks"]
    )
    print(
        f"{language} edition{' (student)' if student else ''}: {len(files)} pages; notebooks {how}"
    )
    return reuse or not pages


def extract(src: pathlib.Path, out: pathlib.Path) -> dict[str, Catalog]:
    """``{page: catalog of its English messages}`` of the book staged in ``src``, as Sphinx's gettext
    builder extracts them (the build goes to ``out``)."""
    subprocess.run(
        [
            "jupyter-book",
            "build",
            str(src),
            "--builder",
            "custom",
            "--custom-builder",
            "gettext",
            "--path-output",
            str(out),
            "--quiet",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pots = out / "_build" / "gettext"
    found = {}
    for pot in sorted(pots.rglob("*.pot")):
        page = pot.relative_to(pots).with_suffix("").as_posix()
        if page.startswith("_"):
            continue  # the theme's and extensions' static files
        with pot.open("rb") as f:
            catalog = read_po(f)
        for message in list(catalog):
            if message.id and not any(
                f.endswith((".md", ".ipynb")) for f, _ in message.locations
            ):
                # a docstring of the package (the API pages, the listings' rendered docstrings): it is
                # code documentation, reST, and stays in English with the code
                del catalog[message.id]
        found[page] = catalog
    return found


def templates(workdir: pathlib.Path) -> dict[str, Catalog]:
    """The English messages of every page of the book."""
    if not EXECUTED.is_dir():
        print(
            "no executed build in _build/jupyter_execute: building the English book first"
        )
        subprocess.run(["jupyter-book", "build", str(ROOT)], check=True)
    src = workdir / "src"
    if not stage(src):
        sys.exit("no executed notebooks to extract captions and alt texts from")
    return extract(src, workdir / "out")


# A message with nothing to translate: no letters outside code, math, roles' targets and URLs.
_UNTRANSLATABLE = re.compile(
    r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\{[a-z:]+\}|<[^>]*>|https?://\S+|\[[^\]]*\]\([^)]*\)"
)


def needs_translation(text: str) -> bool:
    rest = _UNTRANSLATABLE.sub(" ", text)
    return bool(re.search(r"[A-Za-z]{2,}", rest))


def merged(page: str, template: Catalog, language: str) -> Catalog:
    """The page's catalog brought up to date with the English: new messages untranslated, changed ones
    fuzzy with their old translation, removed ones dropped; messages without words to translate are
    copied as they are."""
    path = LOCALE / language / "LC_MESSAGES" / f"{page}.po"
    if path.exists():
        with path.open("rb") as f:
            catalog = read_po(f, locale=language)
    else:
        catalog = Catalog(locale=language, project="regopt-book", fuzzy=False)
    templates = languages.number_templates(
        (m.id, m.string) for m in catalog if m.id and not m.fuzzy
    )
    catalog.update(template, update_header_comment=False)
    catalog.obsolete.clear()
    for message in catalog:
        if not message.id or (message.string and not message.fuzzy):
            continue
        if not needs_translation(message.id):
            message.string = message.id
            message.flags.discard("fuzzy")
            continue
        # new numbers in a translated message (a results table measured on another processor): the build
        # carries the translation over them (book/_ext/languages.py), and so does the catalog
        translation = languages.carried(message.id, templates)
        if translation is not None:
            message.string = translation
            message.flags.discard("fuzzy")
    catalog.fuzzy = False
    return catalog


# What a translation must keep exactly: math, inline code, the targets of roles and links, and the
# number of each role.
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
_CODE = re.compile(r"``[^`]+``|`[^`]+`")  # reST literals, then MyST code
_ROLE = re.compile(
    r"(\{[a-z:]+\}|(?<![\w`]):[a-z]+(?::[a-z]+)*:)`([^`]*)`"
)  # MyST or reST
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _role_target(role: str, text: str) -> str:
    """The part of a role's text that must survive: the target of ``title <target>``, the whole text of
    a reference role; the display text of ``{term}`` may be the Chinese term."""
    m = re.search(r"<([^>]+)>$", text)
    if role.strip("{}:") == "term":
        return "term"
    return m.group(1) if m else text


def markup_errors(english: str, translated: str) -> list[str]:
    """Why ``translated`` does not keep the markup of ``english`` (empty when it does)."""
    errors = []
    plain_en, plain_zh = _ROLE.sub(" ", english), _ROLE.sub(" ", translated)
    for name, pattern in (("math", _MATH), ("inline code", _CODE), ("link", _LINK)):
        a, b = sorted(pattern.findall(plain_en)), sorted(pattern.findall(plain_zh))
        if a != b:
            lost = [x for x in a if x not in b][:2]
            added = [x for x in b if x not in a][:2]
            errors.append(f"{name} differs (missing {lost}, new {added})")
    a = sorted((r, _role_target(r, t)) for r, t in _ROLE.findall(english))
    b = sorted((r, _role_target(r, t)) for r, t in _ROLE.findall(translated))
    if a != b:
        errors.append(f"roles differ: {a} vs {b}")
    for mark in ("**", "\n"):
        if english.count(mark) != translated.count(mark):
            errors.append(f"the number of {mark!r} differs")
    return errors


def lint(paths: list[pathlib.Path]) -> int:
    """Translated messages whose markup differs from the English (math, code, roles, links)."""
    bad = 0
    for path in paths:
        with path.open("rb") as f:
            catalog = read_po(f)
        for message in catalog:
            if message.id and message.string:
                for error in markup_errors(message.id, message.string):
                    bad += 1
                    print(f"{path}: {error}: {message.id[:100]!r}")
    print(f"{bad} markup errors")
    return 1 if bad else 0


def pending(catalog: Catalog) -> list[tuple[str, str, str]]:
    """(status, location, English) of every message that is untranslated or fuzzy."""
    out = []
    for message in catalog:
        if not message.id:
            continue
        status = (
            "untranslated" if not message.string else "fuzzy" if message.fuzzy else ""
        )
        if status:
            where = ", ".join(
                f"{pathlib.Path(f).name}:{n}" for f, n in message.locations
            )
            out.append((status, where, message.id))
    return out


def refresh(language: str, write: bool, allow_untranslated: bool = False) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        pages = templates(pathlib.Path(tmp))
    total, todo = 0, []
    for page, template in pages.items():
        catalog = merged(page, template, language)
        total += sum(1 for m in catalog if m.id)
        todo += [(page, *p) for p in pending(catalog)]
        if write:
            path = LOCALE / language / "LC_MESSAGES" / f"{page}.po"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                write_po(f, catalog, width=0, no_location=True)
    stale = sorted(
        p.relative_to(LOCALE / language / "LC_MESSAGES").with_suffix("").as_posix()
        for p in (LOCALE / language / "LC_MESSAGES").rglob("*.po")
        if p.relative_to(LOCALE / language / "LC_MESSAGES").with_suffix("").as_posix()
        not in pages
    )
    if write:
        for page in stale:
            (LOCALE / language / "LC_MESSAGES" / f"{page}.po").unlink()
    for page, status, where, text in todo:
        short = text if len(text) <= 160 else text[:157] + "..."
        print(f"{page} ({where}): {status}: {short}")
    print(
        f"{language}: {len(pages)} pages, {total} messages, "
        f"{sum(s == 'untranslated' for _, s, _, _ in todo)} untranslated, "
        f"{sum(s == 'fuzzy' for _, s, _, _ in todo)} fuzzy"
        + (
            f"; catalogs of pages no longer in the book: {stale}"
            if stale and not write
            else ""
        )
    )
    bad = [
        (page, error, m.id)
        for page, template in pages.items()
        for m in merged(page, template, language)
        if m.id and m.string
        for error in markup_errors(m.id, m.string)
    ]
    for page, error, text in bad:
        print(f"{page}: markup changed by the translation: {error}: {text[:100]!r}")
    failing = [t for t in todo if not (allow_untranslated and t[1] == "untranslated")]
    return 1 if failing or bad or (stale and not write) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("update", "check"):
        p = sub.add_parser(name)
        p.add_argument("--lang", default="zh_CN")
        p.add_argument(
            "--allow-untranslated",
            action="store_true",
            help="fail only on fuzzy messages and changed markup (a translation in progress)",
        )
    p = sub.add_parser("lint")
    p.add_argument("po", nargs="+", type=pathlib.Path)
    p = sub.add_parser("stage")
    p.add_argument("dir", type=pathlib.Path)
    p.add_argument("pages", nargs="*")
    p.add_argument("--lang", default="en")
    p.add_argument("--student", action="store_true")
    p.add_argument("--executed", default=EXECUTED)
    args = parser.parse_args()
    if args.command == "lint":
        return lint(args.po)
    if args.command == "stage":
        executed = stage(
            args.dir,
            language=args.lang,
            student=args.student,
            executed=args.executed,
            pages=args.pages,
        )
        if not executed:
            (args.dir / ".unexecuted").write_text("")
        return 0
    return refresh(
        args.lang,
        write=args.command == "update",
        allow_untranslated=args.allow_untranslated,
    )


if __name__ == "__main__":
    sys.exit(main())
