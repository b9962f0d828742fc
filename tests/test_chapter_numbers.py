"""`book/_ext/chapter_numbers.py`: figures, exercises and equations numbered within their chapter.

The renumbering on a fake ``toc_fignumbers``, then a real Sphinx build of a three-page book (two
numbered chapters and an unnumbered page, with figures, sphinx-exercise exercises, labelled equations
and references across pages) whose HTML must show the chapter numbers everywhere.
"""

import importlib.util
import pathlib
import re

import pytest

EXT = pathlib.Path(__file__).resolve().parents[1] / "book" / "_ext"
spec = importlib.util.spec_from_file_location(
    "chapter_numbers", EXT / "chapter_numbers.py"
)
chapter_numbers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(chapter_numbers)
chapter_number = chapter_numbers.chapter_number


@pytest.mark.parametrize(
    "title, number",
    [
        ("5.1 From gradient descent to momentum", (5, 1)),
        ("3.2 Backpropagation by hand", (3, 2)),
        ("10.12 Later", (10, 12)),
        ("7. A part-style number", (7,)),
        ("Regularization compared", ()),
        ("Glossary (术语表)", ()),
        ("2026 in review", (2026,)),
        ("5.1x no space after the number", ()),
        ("", ()),
    ],
)
def test_chapter_number_from_title(title, number):
    assert chapter_number(title) == number


def test_renumber_restarts_in_each_chapter_with_its_prefix():
    # as Sphinx numbers them without a numbered toctree: one counter per kind across the book
    toc_fignumbers = {
        "intro": {"figure": {"fig-a": (1,)}},
        "momentum": {
            "figure": {"fig-b": (2,), "fig-c": (3,), "fig-d": (4,)},
            "exercise": {"ex-1": (7,), "ex-2": (8,)},
            "displaymath": {"equation-e1": (1,)},
        },
        "nesterov": {
            "figure": {"fig-e": (5,)},
            "exercise": {"ex-3": (9,)},
        },
        "summary": {"figure": {"fig-f": (6,), "fig-g": (7,)}},
    }
    titles = {
        "intro": "A course",
        "momentum": "5.1 Momentum",
        "nesterov": "5.2 Nesterov",
        "summary": "Regularization compared",
    }
    assert chapter_numbers.renumber(toc_fignumbers, titles) == {
        "intro": {"figure": {"fig-a": (1,)}},
        "momentum": {
            "figure": {"fig-b": (5, 1, 1), "fig-c": (5, 1, 2), "fig-d": (5, 1, 3)},
            "exercise": {"ex-1": (5, 1, 1), "ex-2": (5, 1, 2)},
            "displaymath": {"equation-e1": (5, 1, 1)},
        },
        "nesterov": {"figure": {"fig-e": (5, 2, 1)}, "exercise": {"ex-3": (5, 2, 1)}},
        "summary": {"figure": {"fig-f": (1,), "fig-g": (2,)}},
    }


def test_renumber_follows_page_order_not_dict_order():
    toc_fignumbers = {"p": {"figure": {"late": (12,), "early": (10,), "mid": (11,)}}}
    renumbered = chapter_numbers.renumber(toc_fignumbers, {"p": "2.3 Page"})
    assert renumbered["p"]["figure"] == {
        "early": (2, 3, 1),
        "mid": (2, 3, 2),
        "late": (2, 3, 3),
    }


PAGES = {
    "index": """# A course

```{toctree}
momentum
nesterov
summary
```

See {numref}`fig-momentum-path` and {numref}`fig-nesterov-path`, and {ref}`ex-nesterov`.
""",
    "momentum": """# 5.1 Momentum

```{figure} dot.png
:name: fig-momentum-valley

The valley.
```

```{figure} dot.png
:name: fig-momentum-path

The path.
```

$$ v = \\mu v + g $$ (eq-momentum)

$$ x = x - \\eta v $$ (eq-step)

As {numref}`fig-momentum-path` and {eq}`eq-step` show.

```{exercise} First
:label: ex-momentum-first
Do it.
```

```{exercise} Second
:label: ex-momentum-second
Again.
```

```{solution} ex-momentum-second
Done.
```
""",
    "nesterov": """# 5.2 Nesterov

```{figure} dot.png
:name: fig-nesterov-path

Another path.
```

$$ y = x + \\mu v $$ (eq-lookahead)

Compare {numref}`fig-momentum-valley` and {eq}`eq-momentum` of the last chapter.

```{exercise} Look ahead
:label: ex-nesterov
Why?
```
""",
    "summary": """# Regularization compared

```{figure} dot.png
:name: fig-summary

Everything.
```
""",
}


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real Sphinx build (MyST, sphinx-exercise, this extension) of four small pages."""
    sphinx_app = pytest.importorskip("sphinx.application")
    pytest.importorskip("sphinx_exercise")
    pytest.importorskip("myst_parser")
    src = tmp_path_factory.mktemp("book")
    for name, text in PAGES.items():
        (src / f"{name}.md").write_text(text)
    # a 1x1 PNG
    (src / "dot.png").write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
        )
    )
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(EXT)!r})\n"
        "extensions = ['myst_parser', 'sphinx_exercise', 'chapter_numbers']\n"
        # explicit: myst-nb, set up by another test in the same process, leaves '.md' mapped to its parser
        "source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}\n"
        "myst_enable_extensions = ['dollarmath', 'amsmath']\n"
        "numfig = True\n"
    )
    out = src / "_build"
    from sphinx.util.docutils import docutils_namespace

    with docutils_namespace():  # the nodes and directives registered go when it ends
        app = sphinx_app.Sphinx(
            str(src), str(src), str(out), str(out / ".doctrees"), "html", status=None
        )
        app.build()
    return {name: text_of((out / f"{name}.html").read_text()) for name in PAGES}


def test_captions_and_exercises_carry_the_chapter_number(built):
    assert "Fig. 5.1.1 The valley." in built["momentum"]
    assert "Fig. 5.1.2 The path." in built["momentum"]
    assert "Exercise 5.1.1 (First)" in built["momentum"]
    assert "Exercise 5.1.2 (Second)" in built["momentum"]
    assert "Fig. 5.2.1 Another path." in built["nesterov"]
    assert "Exercise 5.2.1 (Look ahead)" in built["nesterov"]
    assert "Fig. 1 Everything." in built["summary"]  # no number in its title


def test_equations_carry_the_chapter_number(built):
    assert "(5.1.1)" in built["momentum"] and "(5.1.2)" in built["momentum"]
    assert "(5.2.1)" in built["nesterov"]


def test_references_show_the_same_numbers_from_any_page(built):
    assert "As Fig. 5.1.2 and (5.1.2) show." in built["momentum"]
    assert "Compare Fig. 5.1.1 and (5.1.1) of the last chapter." in built["nesterov"]
    assert "See Fig. 5.1.2 and Fig. 5.2.1" in built["index"]
    assert "Exercise 5.1.2 (Second)" in built["momentum"].split("Done.")[0]


def test_no_book_wide_numbers_remain(built):
    for name in ("momentum", "nesterov"):
        numbers = re.findall(r"(?:Fig\.|Exercise) (\d+(?:\.\d+)*)", built[name])
        assert numbers and all(n.startswith(("5.1.", "5.2.")) for n in numbers), numbers
