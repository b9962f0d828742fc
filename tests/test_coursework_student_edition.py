"""The student edition holds no solution text: scans the full build when `.ci/student-edition` has made one
(_build/student), otherwise builds a one-page edition quickly and scans that. The same scan must find the
exercises' text, which the student edition keeps, so a scan that finds nothing proves something."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from companion.coursework import student_edition as se

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "_build" / "student" / "_build" / "html"
PAGE = "book/optimization/momentum.ipynb"

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("COMPANION_KERNEL_RERUN") == "1",
        reason="a build: once is enough",
    ),
    pytest.mark.skipif(
        shutil.which("jupyter-book") is None, reason="needs jupyter-book"
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if (FULL / "index.html").exists():
        return FULL, ROOT / "_build" / "student-src" / "book"
    out = tmp_path_factory.mktemp("student") / "edition"
    env = {**os.environ, "STUDENT_EDITION_OUT": str(out)}
    done = subprocess.run(
        [str(ROOT / ".ci" / "student-edition"), PAGE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "_build" / "html", Path(f"{out}-src") / "book"


def test_no_solution_text_and_no_page_sources(site):
    html, book = site
    assert sum(len(runs) for runs in se.blocks(book).values()) > 0, (
        "no solution blocks found to look for"
    )
    assert se.scan(html, book) == []


def test_the_scan_finds_what_is_there(site):
    html, book = site
    texts = se.site_text(html)
    exercises = se.blocks(book, "exercise")[PAGE.removeprefix("book/")]
    page = texts[PAGE.removesuffix(".ipynb") + ".html"]
    assert exercises and all(run in page for run in exercises)


def test_the_scan_reports_a_leak(tmp_path):
    """A page that renders a solution's sentence (with markup and HTML escapes) and a copied source are caught."""
    (tmp_path / "_sources").mkdir()
    (tmp_path / "_sources" / "momentum.ipynb.txt").write_text("x")
    (tmp_path / "page.html").write_text(
        "<p>They disagree from step 31 on. PyTorch&#8217;s <em>buffer</em> "
        "<span class='math'>b</span> holds raw gradients</p>"
    )
    leaks = se.scan(tmp_path, ROOT / "book" / "optimization")
    assert any("page source copied" in leak for leak in leaks)
    assert any(
        "solution text from momentum.ipynb in page.html" in leak for leak in leaks
    ), leaks


def test_a_sentence_the_chapter_says_anyway_is_not_a_leak(tmp_path):
    """A solution sentence that the body, a code cell's output or a docstring also says is public, not a leak;
    one that only the solution says is."""
    book = tmp_path / "book"
    book.mkdir()
    nb = {
        "cells": [
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": "The rate decays as one over the square root of t.",
            },
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 1,
                "source": "print(...)",
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": "the weights after epoch two repeat\n",
                    }
                ],
            },
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": (
                    "```{solution} ex-x\n:class: dropdown\nThe rate decays as one over the square root of t. The weights "
                    "after epoch two repeat. Only the solution tells you this secret answer here.\n```"
                ),
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (book / "page.ipynb").write_text(json.dumps(nb))
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text(
        "<p>The rate decays as one over the square root of t.</p>"
        "<pre>the weights after epoch two repeat</pre>"
        "<p>Only the solution tells you this secret answer here.</p>"
    )
    leaks = se.scan(site, book)
    assert len(leaks) == 1 and "secret answer" in leaks[0], leaks


def test_the_scan_finds_a_solutions_translation(tmp_path):
    """In a translated edition, a solution's Chinese text in a page is a leak; the exercise's is not."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    book = tmp_path / "book"
    (book / "part").mkdir(parents=True)
    solution = "Momentum keeps a running sum of past gradients."
    exercise = "Why does momentum help on a narrow valley floor?"
    (book / "part" / "page.md").write_text(
        f"# Page\n\n```{{exercise}}\n:label: ex\n{exercise}\n```\n\n"
        f"```{{solution}} ex\n{solution}\n```\n"
    )
    catalog = Catalog(locale="zh_CN")
    catalog.add(exercise, "为什么动量在狭长的谷底有帮助呢？")
    catalog.add(solution, "动量保留了过去所有梯度的累积滑动和。")
    po = book / "locale" / "zh_CN" / "LC_MESSAGES" / "book" / "part" / "page.po"
    po.parent.mkdir(parents=True)
    with po.open("wb") as f:
        write_po(f, catalog)
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text("<p>为什么动量在狭长的谷底有帮助呢？</p>")
    assert se.scan(site, book, tmp_path / "none", language="zh_CN") == []
    (site / "page.html").write_text(
        "<p>答：<em>动量保留了过去所有梯度的累积滑动和</em>。</p>"
    )
    leaks = se.scan(site, book, tmp_path / "none", language="zh_CN")
    assert any("动量保留了过去所有梯度的累积滑动和" in leak for leak in leaks), leaks
    assert (
        se.scan(site, book, tmp_path / "none") == []
    )  # without the language: English only
