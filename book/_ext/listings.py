"""A Sphinx extension: listings of the package show its code without the docstring, and the docstring rendered.

The chapters show the package's own code with ``literalinclude`` and ``:pyobject:``. The docstrings are
reST (the API pages render them with autodoc): ``.. math::`` blocks, ``:math:`` roles, ``:func:``
references. Shown as code, the reader would see that markup raw. So for every ``literalinclude`` of a
file of the package (``companion/``, or the folders of ``listings_roots``) with ``:pyobject:``, this
``literalinclude``

- removes the object's docstring (and the blank lines right after it) from the listing; every other
  line, the line comments included, stays as it is, so the listing is the function minus its
  docstring, still runnable (a body that was only a docstring becomes ``...``);
- puts before the listing a ``docstring`` container with the docstring parsed as reST, as autodoc
  parses it: paragraphs, ``:math:`` as inline math and ``.. math::`` as display math (MathJax
  typesets both), references as links to the API pages (plain code text where the API pages are
  not part of the build, as in ``.ci/preview``).

Left as they are: includes of other files, includes without ``:pyobject:``, includes that pick
lines (``:lines:``, ``:start-after:``, ...), emphasize lines, number lines from the file or show a
diff (the line numbers would no longer match), and objects without a docstring. Only the listed
object's own docstring is rendered; docstrings of nested definitions stay in the code.
``tests/test_listings.py`` builds a small site with it.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from docutils import nodes, utils
from docutils.parsers.rst import Parser, roles
from sphinx import addnodes
from sphinx.directives.code import LiteralInclude
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docstrings import prepare_docstring

PACKAGE = Path(__file__).resolve().parents[2] / "companion"
# options that select or number lines: removing the docstring's lines would shift them
LINE_OPTIONS = (
    "lines",
    "start-at",
    "start-after",
    "end-at",
    "end-before",
    "emphasize-lines",
    "lineno-match",
    "diff",
    "prepend",
    "append",
)
# what a docutils document keeps of its ids, names and references: the docstring's own document
# shares them with the page's, so that an id made for the docstring (a citation's) is unique on the page
SHARED = (
    "ids",
    "nameids",
    "nametypes",
    "id_counter",
    "refnames",
    "refids",
    "indirect_targets",
    "substitution_defs",
    "substitution_names",
    "footnote_refs",
    "citation_refs",
    "autofootnotes",
    "autofootnote_refs",
    "symbol_footnotes",
    "symbol_footnote_refs",
    "footnotes",
    "citations",
)
CLASS = "docstring"
CSS = """\
/* Rendered docstrings above the package's listings, from book/_ext/listings.py. */
/* .docutils.container: the theme's rule for containers sets the padding */
div.docstring.docutils.container {
  border: 1px solid var(--pst-color-border, #ccc);
  border-radius: 0.25rem;
  padding: 0.2rem 0.8rem;
  margin: 0.5rem 0 0.2rem 0;
}
div.docstring.docutils.container > p.docstring-title {
  font-size: 0.8em;
  margin: 0.2rem 0;
  color: var(--pst-color-text-muted, #666);
}
div.docstring.docutils.container div.math { overflow-x: auto; }
"""
CSS_FILE = "listings.css"


def split_docstring(code: str) -> tuple[str, str, int] | None:
    """``code`` (one definition, possibly indented) without its docstring, the docstring, and the line
    (from 1, in ``code``) where the docstring starts; None when there is none or it does not stand on
    lines of its own."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(
        tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    ):
        return None
    body = tree.body[0].body
    first = body[0]
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return None
    lines = code.splitlines(keepends=True)
    start, end = first.lineno - 1, first.end_lineno  # the docstring is lines[start:end]
    dedented = textwrap.dedent(code).splitlines(keepends=True)
    before = dedented[start].encode()[: first.col_offset]
    after = dedented[end - 1].encode()[first.end_col_offset :]
    if before.strip() or after.strip():
        return None  # shares a line with other code: leave the listing as it is
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    rest = end
    while rest < len(lines) and not lines[rest].strip():
        rest += 1  # the blank lines after the docstring go with it
    filler = [f"{indent}...\n"] if len(body) == 1 else []
    return "".join(lines[:start] + filler + lines[rest:]), first.value.value, start + 1


def module_name(path: Path, root: Path) -> str:
    """``companion/optim/sgd.py`` -> ``companion.optim.sgd``, for the docstring's references."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_root(app, filename: str) -> Path | None:
    path = Path(filename).resolve()
    for root in [PACKAGE, *app.config.listings_roots]:
        root = Path(app.confdir, root).resolve()
        if path.is_relative_to(root):
            return root
    return None


class PackageListing(LiteralInclude):
    """``literalinclude``; for the package's objects, the docstring rendered above the code."""

    def run(self):
        result = super().run()
        if "pyobject" not in self.options or any(
            o in self.options for o in LINE_OPTIONS
        ):
            return result
        blocks = [
            block
            for node in result
            for block in node.findall(nodes.literal_block)
            if block.get("source")
        ]
        if len(blocks) != 1:
            return result  # a warning (file not found, ...) or something unexpected
        block = blocks[0]
        root = package_root(self.env.app, block["source"])
        split = split_docstring(block.astext()) if root else None
        if split is None:
            return result
        code, docstring, line = split
        block[:] = [nodes.Text(code)]
        block.rawsource = code
        rendered = self.render(
            docstring,
            Path(block["source"]).resolve(),
            root,
            line + self.first_line(block["source"]),
        )
        return [rendered, *result]

    def first_line(self, filename: str) -> int:
        """The file's line (from 1) just before the listing's first one, as the reader found it."""
        try:
            tags = ModuleAnalyzer.for_file(filename, "").find_tags()
            return tags[self.options["pyobject"]][1] - 1
        except (KeyError, OSError, PycodeError):
            return 0  # used only for the line numbers of warnings

    def render(
        self, docstring: str, path: Path, root: Path, line: int
    ) -> nodes.Element:
        """The docstring parsed as reST (as autodoc parses it), in a ``docstring`` container."""
        obj = self.options["pyobject"]
        lines = prepare_docstring(docstring)
        leading = len(docstring.splitlines()) - len(docstring.lstrip("\n").splitlines())
        # pad with empty lines so that a warning names the docstring's line in the file
        source = "\n" * max(line - 1 + leading, 0) + "\n".join(lines)
        document = utils.new_document(str(path), self.state.document.settings)
        for (
            name
        ) in SHARED:  # ids, names and references count in the page's own document
            setattr(document, name, getattr(self.state.document, name))
        context = self.env.ref_context
        saved = {key: context.get(key) for key in ("py:module", "py:class")}
        context["py:module"] = module_name(path, root)
        context["py:class"] = obj.rpartition(".")[0] or None
        default_role = roles._roles.get("")  # the parser drops it when it ends
        try:
            Parser().parse(source, document)
        finally:
            if default_role is not None:
                roles._roles[""] = default_role
            for key, value in saved.items():
                if value is None:
                    context.pop(key, None)
                else:
                    context[key] = value
        for xref in document.findall(addnodes.pending_xref):
            xref["listings_docstring"] = True
        title = nodes.paragraph(classes=["docstring-title"])
        title += nodes.literal(obj, obj)
        title += nodes.Text(" — its docstring (left out of the code below)")
        container = nodes.container(classes=[CLASS])
        container += title
        container.extend(document.children)
        self.set_source_info(container)
        return container


def keep_text_of_unresolved(app, env, node, contnode):
    """A docstring's reference to an object the build does not document (the API pages are not part of
    ``.ci/preview``'s one-page book) shows as code text instead of a warning; the API pages, which
    render the same docstrings, catch a reference that is wrong."""
    if node.get("listings_docstring"):
        return contnode
    return None


def add_css(app, pagename, templatename, context, doctree):
    if doctree is not None and any(
        CLASS in node["classes"] for node in doctree.findall(nodes.container)
    ):
        app.add_css_file(CSS_FILE)


def write_css(app, exception):
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir, "_static")
        static.mkdir(parents=True, exist_ok=True)
        (static / CSS_FILE).write_text(CSS, encoding="utf-8")


def setup(app):
    app.add_config_value("listings_roots", [], "env")
    app.add_directive("literalinclude", PackageListing, override=True)
    app.connect("missing-reference", keep_text_of_unresolved)
    app.connect("html-page-context", add_css)
    app.connect("build-finished", write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
