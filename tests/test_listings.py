"""The listings extension (book/_ext/listings.py) in a small Sphinx build: a ``literalinclude`` of the
package with ``:pyobject:`` shows the code without its docstring and, above it, the docstring rendered
(MathJax-ready math, no raw reST); other includes are left as they are."""

import ast
import html
import inspect
import os
import re
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

# the book's tools (requirements.txt); the oldest-torch environment has only the test tools
pytest.importorskip(
    "sphinx", reason="Sphinx is not installed (the book's requirements)"
)

ROOT = Path(__file__).resolve().parents[1]

FIXTURE = '''\
"""A module of the fixture package."""


def scaled_sum(x, y, *, scale=2.0):
    r"""The scaled sum :math:`s = \\alpha (x + y)`, and a reference to :func:`not_documented`.

    .. math::
        s &= \\alpha\\,(x + y) \\\\
        \\frac{\\partial s}{\\partial x} &= \\alpha

    with scale α (``scale``).
    """

    # s = α (x + y)
    total = x + y  # x + y
    return scale * total


class Plain:
    """No math here: *emphasis*, ``code`` and a list.

    - first
    - second
    """

    value = 3

    def double(self):
        return 2 * self.value


def only_docstring():
    """Nothing but a docstring."""
'''

PAGE = """\
# Listings

```{literalinclude} companion/fixture.py
:pyobject: scaled_sum
```

```{literalinclude} companion/fixture.py
:pyobject: Plain
```

```{literalinclude} companion/fixture.py
:pyobject: only_docstring
```

```{literalinclude} SGD_PATH
:pyobject: sgd_step
```
"""

UNTOUCHED = """\
# Untouched

```{literalinclude} other/fixture.py
:pyobject: scaled_sum
```

```{literalinclude} companion/fixture.py
```
"""


class Blocks(HTMLParser):
    """The page's docstring containers and code blocks, in order: (kind, inner HTML, text)."""

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.found, self.depth, self.kind, self.html = [], 0, None, []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if self.kind:
            self.html.append(self.get_starttag_text())
            self.depth += tag == "div"
        elif tag == "div" and ("docstring" in classes or "highlight" in classes):
            self.kind, self.depth, self.html = (
                "docstring" if "docstring" in classes else "code",
                1,
                [],
            )

    def handle_endtag(self, tag):
        if not self.kind:
            return
        self.depth -= tag == "div"
        if self.depth == 0:
            inner = "".join(self.html)
            text = html.unescape(re.sub(r"<[^>]+>", "", inner))
            self.found.append((self.kind, inner, text))
            self.kind = None
        else:
            self.html.append(f"</{tag}>")

    def handle_data(self, data):
        if self.kind:
            self.html.append(data)

    def handle_entityref(self, name):
        if self.kind:
            self.html.append(f"&{name};")

    def handle_charref(self, name):
        if self.kind:
            self.html.append(f"&#{name};")


def blocks(page: Path) -> list[tuple[str, str, str]]:
    parser = Blocks()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def definition(source: str, name: str) -> str:
    """The lines of the top-level definition ``name`` in ``source`` (as ``:pyobject:`` picks them)."""
    node = next(n for n in ast.parse(source).body if getattr(n, "name", None) == name)
    lines = source.splitlines(keepends=True)
    return "".join(lines[node.lineno - 1 : node.end_lineno])


def without_docstring(source: str) -> str:
    """The definition's source minus the lines of its docstring and the blank lines after it."""
    source = textwrap.dedent(source)
    first = ast.parse(source).body[0].body[0]
    lines = source.splitlines(keepends=True)
    rest = first.end_lineno
    while not lines[rest].strip():
        rest += 1
    return "".join(lines[: first.lineno - 1] + lines[rest:])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    src = tmp_path_factory.mktemp("listings")
    for folder in ("companion", "other"):
        (src / folder).mkdir()
        (src / folder / "fixture.py").write_text(FIXTURE, encoding="utf-8")
    sgd = ROOT / "companion" / "optim" / "sgd.py"
    (src / "index.md").write_text(
        "# Index\n\n```{toctree}\nlistings\nuntouched\n```\n", encoding="utf-8"
    )
    (src / "listings.md").write_text(
        PAGE.replace("SGD_PATH", os.path.relpath(sgd, src)), encoding="utf-8"
    )
    (src / "untouched.md").write_text(UNTOUCHED, encoding="utf-8")
    (src / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
        "extensions = ['myst_parser', 'listings']\n"
        # explicit: myst-nb, set up by another test in the same process, leaves '.md' mapped to its parser
        "source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}\n"
        f"listings_roots = [{str(src / 'companion')!r}]\n"
        "exclude_patterns = ['_build']\n",
        encoding="utf-8",
    )
    out = src / "_build"
    with docutils_namespace():  # the directives it registers go when it ends
        app = Sphinx(
            src,
            src,
            out / "html",
            out / "doctrees",
            "html",
            status=None,
            warningiserror=True,  # a warning from a docstring's reST fails the build
            freshenv=True,
            confoverrides={"nitpicky": True},
        )
        app.build()
    assert app.statuscode == 0
    return out / "html"


def test_docstring_rendered_with_math(site):
    found = blocks(site / "listings.html")
    assert [kind for kind, _, _ in found] == ["docstring", "code"] * 4
    doc, code = found[0][1], found[1][2]
    assert ".. math::" not in doc and ":math:" not in doc
    # MathJax-ready markup, as Sphinx writes it for $...$ and $$...$$
    assert re.search(
        r'<span class="math[^"]*">\\\(s = \\alpha \(x \+ y\)\\\)</span>', doc
    )
    display = re.search(
        r'<div class="math[^"]*">\s*\\\[(.*?)\\\]\s*</div>', doc, re.DOTALL
    )
    assert display and r"\frac{\partial s}{\partial x} &= \alpha" in html.unescape(
        display.group(1)
    )
    assert "with scale α (" in found[0][2]
    # an undocumented reference is code text, not a warning
    assert "not_documented" in found[0][2]
    # the code: the function minus its docstring, comments kept, nothing else changed
    expected = without_docstring(definition(FIXTURE, "scaled_sum"))
    assert code == expected
    assert "# s = α (x + y)" in code and 'r"""' not in code
    listed = {}
    exec(code, listed)
    assert listed["scaled_sum"](1.0, 2.0, scale=3.0) == 9.0


def test_docstring_without_math_rendered(site):
    found = blocks(site / "listings.html")
    doc, text, code = found[2][1], found[2][2], found[3][2]
    assert "<em>emphasis</em>" in doc and "<li><p>first</p></li>" in doc.replace(
        "\n", ""
    )
    assert "*emphasis*" not in text and "``code``" not in text
    assert code.startswith("class Plain:\n    value = 3\n")
    assert '"""' not in code
    # a body that was only its docstring keeps a body
    assert found[5][2] == "def only_docstring():\n    ...\n"


def test_package_function(site):
    from companion.optim.sgd import sgd_step

    found = blocks(site / "listings.html")
    doc, text, code = found[6][1], found[6][2], found[7][2]
    assert ".. math::" not in text and ":math:" not in text
    assert re.search(
        r'<div class="math[^"]*">\s*\\\[.*\\theta_t &amp;=', doc, re.DOTALL
    )
    assert code == without_docstring(inspect.getsource(sgd_step))
    assert "# θ_t = θ_{t−1} − γ d_t" in code
    assert ast.get_docstring(ast.parse(code).body[0]) is None


def test_other_includes_untouched(site):
    found = blocks(site / "untouched.html")
    assert [kind for kind, _, _ in found] == ["code", "code"]
    # another folder's file, with :pyobject:, and the package's file without it: as in the file
    assert found[0][2] == definition(FIXTURE, "scaled_sum")
    assert found[1][2] == FIXTURE
    assert ":math:" in found[0][2] and ".. math::" in found[1][2]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-n", "0"]))
