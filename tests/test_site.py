"""The built website as a reader gets it: every page of `_toc.yml` opened in headless Chromium with
the network blocked, so that anything the site needs from outside (a CDN's MathJax, a web font) fails.

For every page: the math is typeset (MathJax's `mjx-container`s where the page has math, no TeX error,
no raw ``\\(`` or ``\\[`` left in the text), every image has loaded (natural width > 0), every internal
link points to a page that exists and, for ``#anchor`` links, to an id on it, and the console shows no
error. And the search page finds "Adam" in the Adam chapter.

Run after the book build (`jupyter-book build . -W -n --keep-going`):  `pytest -s tests/test_site.py`.
It skips, saying why, when `_build/html` is missing or when Chromium or Playwright is not installed
(`apt-get install chromium`, `pip install playwright`; Playwright drives the system's Chromium through
its `executable_path` and downloads no browser). `COMPANION_BOOK_ROOT` points it at another book
folder (with its `_toc.yml` and `_build/html`); `CHROMIUM` at another browser binary.
`COMPANION_SITE_TEST_REQUIRED=1` (set by `.ci/run`) turns those skips into failures.
"""

import functools
import http.server
import json
import os
import pathlib
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
  if (document.querySelector('script[src*="mathjax"]')) {
    for (let i = 0; i < 600 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
      await new Promise(r => setTimeout(r, 50));
    if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
  }
  for (const img of document.images) img.loading = 'eager';
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  const skip = el => el.closest('pre, code, script, style, textarea, mjx-container, .highlight');
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.textContent;
    if ((t.includes('\\\\(') || t.includes('\\\\[')) && !skip(n.parentElement)) raw.push(t.trim().slice(0, 80));
  }
  return {
    title: (document.querySelector('h1') || {}).textContent || '',
    mathjax: !!(window.MathJax && MathJax.version), math_nodes: document.querySelectorAll('.math').length,
    typeset: document.querySelectorAll('mjx-container').length,
    untypeset: [...document.querySelectorAll('.math')].filter(m => !m.querySelector('mjx-container')).length,
    tex_errors: document.querySelectorAll('mjx-merror').length, raw,
    images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  };
}"""


@pytest.fixture(scope="module")
def site():
    """A localhost server for `_build/html` and a Chromium that may reach nothing else."""
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

    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=exe,
            headless=True,
            args=FLAGS,
            chromium_sandbox=False,
            service_workers="block",
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", only_localhost)
        page = context.new_page()
        yield {"page": page, "base": base, "blocked": blocked}
        context.close()
    server.shutdown()
    server.server_close()
    print(
        "\n[site] " + json.dumps(COUNTS)
    )  # what was checked, also kept next to the site
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


def visit(site, url):
    """Open ``url``; return what the page showed and every console error and blocked request on the way."""
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
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_error)
    return seen, errors, list(site["blocked"])


def broken_link(href: str, base: str) -> str | None:
    """Why an internal link is broken (no such file, or no such anchor on it), or None."""
    parts = urllib.parse.urlsplit(href)
    path = urllib.parse.unquote(parts.path[len(urllib.parse.urlsplit(base).path) :])
    target = SITE / path
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href}: no file {target.relative_to(SITE)}"
    fragment = urllib.parse.unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in ids_of(target):
        return f"{href}: no id {fragment!r} on {target.relative_to(SITE)}"
    return None


@pytest.mark.parametrize("name", PAGES)
def test_page(site, name):
    url = site["base"] + name + ".html"
    assert (SITE / f"{name}.html").is_file(), (
        f"{name} is in _toc.yml but {name}.html was not built"
    )
    seen, errors, blocked = visit(site, url)
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
