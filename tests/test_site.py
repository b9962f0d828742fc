"""The built website as a reader gets it: every page of `_toc.yml` opened in headless Chromium with
the network blocked, so that anything the site needs from outside (a CDN's MathJax, a web font) fails.

For every page: the math is typeset (MathJax's `mjx-container`s where the page has math, no TeX error,
no raw ``\\(`` or ``\\[`` left in the text), no raw markup either (``\\_``, ``{term}``, ``{doc}``,
``.. math::``, ``:math:`` outside code), every image has loaded (natural width > 0), every internal
link points to a page that exists and, for ``#anchor`` links, to an id on it, and the console shows no
error. Figures, tables and exercises are numbered within their chapter: on the page titled "5.1 ...",
Fig. 5.1.1, 5.1.2, ... and Exercise 5.1.1, ... in order (a page without a number counts from 1), and a
``{numref}`` to a number on the same page shows that number. Nothing is wider than the page's column
(``article.bd-article``), at a desktop width (1400 px) and on a phone (400 px, the same page resized),
except inside an element that scrolls sideways (code blocks, table wrappers). And the search page
finds "Adam" in the Adam chapter.

Run after the book build (`jupyter-book build . -W -n --keep-going`):  `pytest -s tests/test_site.py`.
It skips, saying why, when `_build/html` is missing or when Chromium or Playwright is not installed
(`apt-get install chromium`, `pip install playwright`; Playwright drives the system's Chromium through
its `executable_path` and downloads no browser). `COMPANION_BOOK_ROOT` points it at another book
folder (with its `_toc.yml` and `_build/html`); `CHROMIUM` at another browser binary.
`COMPANION_SITE_TEST_REQUIRED=1` (set by `.ci/run`) turns those skips into failures.
"""

import contextlib
import functools
import http.server
import json
import os
import pathlib
import re
import shutil
import tempfile
import threading
import urllib.parse
from html.parser import HTMLParser

import pytest
import yaml

ROOT = pathlib.Path(
    os.environ.get("COMPANION_BOOK_ROOT", pathlib.Path(__file__).resolve().parents[1])
)
SITE = ROOT / "_build" / "html"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000  # one page, MathJax included, on a busy 2-core machine
DESKTOP, PHONE = 1400, 400  # viewport widths in CSS px
# Markup that leaked into the text (MyST roles left unparsed, reST from a docstring, an escaped
# underscore in math text); code, code blocks and typeset math are not searched.
RAW_MARKUP = ["\\_", "{term}", "{doc}", ".. math::", ":math:"]
REQUIRED = os.environ.get("COMPANION_SITE_TEST_REQUIRED") == "1"


def unavailable(reason: str):
    (pytest.fail if REQUIRED else pytest.skip)(reason)


def toc_pages(toc_file: pathlib.Path = ROOT / "_toc.yml") -> list[str]:
    """Every file of the table of contents, in reading order (root, parts, chapters, sections)."""
    toc = yaml.safe_load(toc_file.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(pathlib.PurePosixPath(p).with_suffix("")) for p in pages]


PAGES = toc_pages() if (ROOT / "_toc.yml").exists() else []
# The other languages' editions live in their own folder of the same site (.ci/edition); every page of
# each is checked as the English ones are.
EDITIONS = {"zh_CN": "zh"}
EDITION_PAGES = [f"{folder}/{p}" for folder in EDITIONS.values() for p in PAGES]


def chromium() -> str | None:
    return (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


class _Ids(HTMLParser):
    """The ids (and legacy ``<a name>``s) a page defines: what a ``#fragment`` may point to."""

    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value)


@functools.cache
def ids_of(path: pathlib.Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


# Runs in the page: waits for MathJax's first typesetting pass, then reports what a reader would see.
INSPECT = """async () => {
  const RAW_MARKUP = __RAW_MARKUP__;
  if (document.querySelector('script[src*="mathjax"]')) {
    for (let i = 0; i < 600 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
      await new Promise(r => setTimeout(r, 50));
    if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
  }
  for (const img of document.images) img.loading = 'eager';
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  const skip = el => el.closest('pre, code, script, style, textarea, mjx-container, .highlight');
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [], markup = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.textContent;
    if ((t.includes('\\\\(') || t.includes('\\\\[')) && !skip(n.parentElement)) raw.push(t.trim().slice(0, 80));
    const leaked = RAW_MARKUP.filter(m => t.includes(m));
    if (leaked.length && !skip(n.parentElement)) markup.push(`${leaked.join(' ')} in ${JSON.stringify(t.trim().slice(0, 80))}`);
  }
  // numbers the page defines (figure and table captions, exercise titles), in page order, and the
  // {numref}s to this page with the number they show and the number of their target
  const captions = [...document.querySelectorAll('.caption-number')].map(c => c.textContent.trim());
  const numrefs = [...document.querySelectorAll('a.reference.internal[href^="#"] .std-numref')].map(r => {
    const target = document.getElementById(decodeURIComponent(r.closest('a').hash.slice(1)));
    const number = target && target.querySelector('.caption-number');
    return {shows: r.textContent.trim(), target: number ? number.textContent.trim() : null};
  });
  return {markup, captions, numrefs,
    title: (document.querySelector('h1') || {}).textContent || '',
    mathjax: !!(window.MathJax && MathJax.version), math_nodes: document.querySelectorAll('.math').length,
    typeset: document.querySelectorAll('mjx-container').length,
    untypeset: [...document.querySelectorAll('.math')].filter(m => !m.querySelector('mjx-container')).length,
    tex_errors: document.querySelectorAll('mjx-merror').length, raw,
    images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  };
}""".replace("__RAW_MARKUP__", json.dumps(RAW_MARKUP))

# Runs in the page: the outermost elements that stick out of the column (``article.bd-article``, its
# border box) and are not inside an element that scrolls sideways, folded content included; and
# whether the page itself is wider than the window. Visually hidden copies (MathJax's assistive
# MathML) and fixed elements (buttons over the page) do not count. It opens the page's folds: run it
# last.
OVERFLOW = """() => {
  const col = document.querySelector('article.bd-article') || document.querySelector('main');
  if (!col) return {wide: [], page: document.documentElement.scrollWidth, window: innerWidth};
  // what a reader can unfold counts too: folded cells (<details>) are opened, and the content of a
  // folded solution (sphinx-togglebutton's, visibility: hidden) is measured as it lies
  for (const d of col.querySelectorAll('details')) d.open = true;
  const c = col.getBoundingClientRect();
  const out = r => r.right > c.right + 1 || r.left < c.left - 1;
  const scrolls = el => {
    for (let a = el.parentElement; a && a !== col; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const counts = el => {
    const r = el.getBoundingClientRect(), style = getComputedStyle(el);
    return r.width > 0 && style.position !== 'fixed' && !el.closest('mjx-assistive-mml')
      && out(r) && !scrolls(el);
  };
  const wide = [];
  for (const el of col.querySelectorAll('*')) {
    if (!counts(el) || (el.parentElement !== col && counts(el.parentElement))) continue;
    const r = el.getBoundingClientRect();
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + [...el.classList].slice(0, 2).map(k => '.' + k).join('');
    wide.push(`${name} spans ${Math.round(r.left)}..${Math.round(r.right)} px, the column`
      + ` ${Math.round(c.left)}..${Math.round(c.right)}: ${JSON.stringify(el.textContent.trim().slice(0, 60))}`);
  }
  return {wide, page: document.documentElement.scrollWidth, window: innerWidth};
}"""


@contextlib.contextmanager
def browser(width: int = DESKTOP, height: int = 900):
    """A localhost server for `_build/html` and a Chromium that may reach nothing else: yields
    {"page", "base", "blocked"} (skips, or fails under COMPANION_SITE_TEST_REQUIRED=1, without them)."""
    if not (SITE / "index.html").exists():
        unavailable(
            f"no built site at {SITE}: build it first with `jupyter-book build . -W -n --keep-going`"
        )
    exe = chromium()
    if exe is None:
        unavailable(
            "Chromium not found (install it: `apt-get install chromium`, or set CHROMIUM=/path/to/it)"
        )
    try:
        from playwright import sync_api
    except ImportError:
        unavailable(
            "Playwright not installed (`pip install playwright`; it uses the system's Chromium)"
        )

    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    blocked: list[str] = []

    def only_localhost(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    try:
        with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=exe,
                headless=True,
                args=FLAGS,
                chromium_sandbox=False,
                service_workers="block",
                viewport={"width": width, "height": height},
            )
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", only_localhost)
            yield {"page": context.new_page(), "base": base, "blocked": blocked}
            context.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site():
    """The browser for every page; afterwards, what was checked (also kept next to the site)."""
    with browser() as opened:
        yield opened
    print("\n[site] " + json.dumps(COUNTS))
    (SITE.parent / "site-test.json").write_text(json.dumps(COUNTS, indent=1) + "\n")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


COUNTS = {
    "pages": 0,
    "pages_with_math": 0,
    "typeset_formulas": 0,
    "images": 0,
    "internal_links": 0,
    "external_links": 0,
}


def visit(site, url, overflow_at_phone=False):
    """Open ``url``; return what the page showed (at ``DESKTOP`` width, and what sticks out of the column
    at ``PHONE`` width too if asked) and every console error and blocked request on the way."""
    page, errors = site["page"], []
    on_console = lambda msg: (
        errors.append(f"console {msg.type}: {msg.text}")
        if msg.type == "error"
        else None
    )
    on_error = lambda exc: errors.append(f"page error: {exc}")
    page.on("console", on_console)
    page.on("pageerror", on_error)
    del site["blocked"][:]
    try:
        page.goto(url, wait_until="load")
        seen = page.evaluate(INSPECT)
        seen["overflow"] = {DESKTOP: page.evaluate(OVERFLOW)}
        if overflow_at_phone:  # the same page, resized: no second load or typesetting
            page.set_viewport_size({"width": PHONE, "height": 800})
            page.evaluate(
                "() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))"
            )
            seen["overflow"][PHONE] = page.evaluate(OVERFLOW)
            page.set_viewport_size({"width": DESKTOP, "height": 900})
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_error)
    return seen, errors, list(site["blocked"])


def broken_link(href: str, base: str) -> str | None:
    """Why an internal link is broken (no such file, or no such anchor on it), or None."""
    parts = urllib.parse.urlsplit(href)
    path = urllib.parse.unquote(parts.path[len(urllib.parse.urlsplit(base).path) :])
    target = SITE / path
    folder = pathlib.PurePosixPath(path).parts[:1]
    if folder and folder[0] in EDITIONS.values() and not (SITE / folder[0]).is_dir():
        return (
            None  # another language's edition, not built here (.ci/edition builds it)
        )
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href}: no file {target.relative_to(SITE)}"
    fragment = urllib.parse.unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in ids_of(target):
        return f"{href}: no id {fragment!r} on {target.relative_to(SITE)}"
    return None


CHAPTER_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)*)\.?(?:\s|$)")
LABEL = re.compile(r"(.*?)\s*(\d+(?:\.\d+)*)$")


def numbering_problems(
    title: str, captions: list[str], numrefs: list[dict]
) -> list[str]:
    """Numbers that do not restart in this chapter: each kind ("Fig.", "Exercise", "Table") must run
    <chapter>.1, <chapter>.2, ... in page order (1, 2, ... on a page without a number in its title),
    and a reference to a number on the page must show that number."""
    chapter = CHAPTER_NUMBER.match(title)
    prefix = chapter.group(1) + "." if chapter else ""
    problems, seen = [], {}
    for caption in captions:
        label = LABEL.match(caption)
        if label is None:
            problems.append(f"caption number without a number: {caption!r}")
            continue
        kind, number = label.groups()
        seen[kind] = seen.get(kind, 0) + 1
        expected = f"{prefix}{seen[kind]}"
        if number != expected:
            problems.append(
                f"{caption} is number {seen[kind]} of its kind on the page "
                f"titled {title.strip()!r}: expected {kind} {expected}"
            )
    problems += [
        f"a reference shows {r['shows']!r} but its target is numbered {r['target']!r}"
        for r in numrefs
        if r["target"] is not None and r["shows"] != r["target"]
    ]
    return problems


@pytest.mark.parametrize("name", PAGES + EDITION_PAGES)
def test_page(site, name):
    url = site["base"] + name + ".html"
    if (
        name in EDITION_PAGES
        and not (SITE / name.split("/")[0] / "index.html").exists()
    ):
        unavailable(
            f"no {name.split('/')[0]}/ edition in {SITE}: build it with .ci/edition"
        )
    assert (SITE / f"{name}.html").is_file(), (
        f"{name} is in _toc.yml but {name}.html was not built"
    )
    seen, errors, blocked = visit(site, url, overflow_at_phone=True)
    problems = [
        f"blocked request to {u} (the site must not need the network)" for u in blocked
    ]
    problems += errors
    if seen["math_nodes"]:
        if not seen["mathjax"]:
            problems.append(f"{seen['math_nodes']} math nodes but MathJax did not load")
        if seen["untypeset"]:
            problems.append(
                f"{seen['untypeset']} of {seen['math_nodes']} math nodes not typeset"
            )
    if seen["tex_errors"]:
        problems.append(f"{seen['tex_errors']} TeX errors (mjx-merror)")
    problems += [f"raw TeX left in the text: {t!r}" for t in seen["raw"]]
    problems += [f"raw markup in the text: {m}" for m in seen["markup"]]
    problems += numbering_problems(seen["title"], seen["captions"], seen["numrefs"])
    for width, overflow in seen["overflow"].items():
        problems += [
            f"at {width} px, wider than the column: {w}" for w in overflow["wide"]
        ]
        if overflow["page"] > overflow["window"] + 1:
            problems.append(
                f"at {width} px, the page is {overflow['page']} px wide: it scrolls sideways"
            )
    problems += [
        f"image did not load: {i['src']}" for i in seen["images"] if not i["ok"]
    ]
    internal = {h.split("?")[0] for h in seen["links"] if h.startswith(site["base"])}
    problems += [
        p for p in map(lambda h: broken_link(h, site["base"]), sorted(internal)) if p
    ]
    assert seen["title"].strip(), f"{name}: the page has no <h1>"
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
    COUNTS["pages"] += 1
    COUNTS["pages_with_math"] += bool(seen["typeset"])
    COUNTS["typeset_formulas"] += seen["typeset"]
    COUNTS["images"] += len(seen["images"])
    COUNTS["internal_links"] += len(internal)
    COUNTS["external_links"] += len(
        {
            h
            for h in seen["links"]
            if h.startswith("http") and not h.startswith(site["base"])
        }
    )


def test_search_finds_adam_in_the_adam_chapter(site):
    page = site["page"]
    seen, errors, blocked = visit(site, site["base"] + "search.html?q=Adam")
    assert not errors and not blocked, errors + blocked
    page.wait_for_function(
        "() => [...document.querySelectorAll('#search-results a')].some(a => a.href.includes('optimization/adam.html'))",
        timeout=TIMEOUT_MS,
    )
    hits = page.eval_on_selector_all("#search-results li", "items => items.length")
    assert hits >= 1


@pytest.mark.parametrize("page", ["book/optimization/momentum", "book/intro"])
def test_the_language_switch_lands_on_the_same_page(site, page):
    """The header's language button leads to the same page in the other edition, and back."""
    for language, folder in EDITIONS.items():
        if not (SITE / folder / "index.html").exists():
            unavailable(f"no {folder}/ edition in {SITE}: build it with .ci/edition")
        browser_page = site["page"]
        visit(site, site["base"] + page + ".html")
        browser_page.click(f"a.language-switch[href*='{folder}/']")
        browser_page.wait_for_load_state("load")
        assert browser_page.url == site["base"] + f"{folder}/{page}.html"
        lang = browser_page.evaluate("() => document.documentElement.lang")
        assert lang.replace("-", "_").lower() == language.lower(), lang
        browser_page.click("a.language-switch")
        browser_page.wait_for_load_state("load")
        assert browser_page.url == site["base"] + page + ".html"


def test_search_finds_a_chinese_word_in_the_chinese_edition(site):
    """Search in the Chinese edition finds 动量 (momentum) in the momentum chapter."""
    folder = EDITIONS["zh_CN"]
    if not (SITE / folder / "index.html").exists():
        unavailable(f"no {folder}/ edition in {SITE}: build it with .ci/edition")
    page = site["page"]
    seen, errors, blocked = visit(site, site["base"] + f"{folder}/search.html?q=动量")
    assert not errors and not blocked, errors + blocked
    page.wait_for_function(
        "() => [...document.querySelectorAll('#search-results a')].some(a => a.href.includes('optimization/momentum.html'))",
        timeout=TIMEOUT_MS,
    )


def test_api_pages_list_every_public_module():
    """`book/api/*.md` has one section per public module: `.ci/api_pages.py` writes them."""
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[1]
    check = subprocess.run(
        [sys.executable, str(repo / ".ci" / "api_pages.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
