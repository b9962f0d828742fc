"""A Sphinx extension: figures, exercises and equations numbered within their chapter (Fig. 5.1.2).

Without it, Sphinx's ``numfig`` numbers every enumerable node (figures, tables, sphinx-exercise's
exercises, labelled display equations) across the whole book, since the table of contents is not
``numbered``: chapter 5.1 would hold "Fig. 27" and "Exercise 40". The chapters carry their number in
their title ("# 5.1 From gradient descent to momentum"), so after Sphinx's TocTreeCollector has assigned
``env.toc_fignumbers`` (on ``env-get-updated``), this rewrites each page's numbers, per kind, to the
chapter's number followed by 1, 2, ... in the order of appearance: (5, 1, 1), (5, 1, 2), ... A page
whose title has no number (the introduction, the glossary) numbers its own from 1.

Everything that shows a number reads ``env.toc_fignumbers``: the figure caption and the exercise title
(``Fig. %s``, ``Exercise %s``), ``{numref}`` from any page, sphinx-exercise's solution titles and
references, and for labelled display math (``$$ ... $$ (label)``) the equation number and ``{eq}``
references (Sphinx takes them from ``toc_fignumbers`` when ``math_numfig`` and ``numfig`` are on, the
defaults), so they all agree.
"""

import re

CHAPTER_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)*)\.?(?:\s|$)")


def chapter_number(title: str) -> tuple[int, ...]:
    """The number a chapter's title starts with: "5.1 Momentum" -> (5, 1); no number -> ()."""
    match = CHAPTER_NUMBER.match(title)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def renumber(
    fignumbers: dict[str, dict[str, dict[str, tuple[int, ...]]]],
    titles: dict[str, str],
) -> dict[str, dict[str, dict[str, tuple[int, ...]]]]:
    """Each page's numbers per kind, renumbered (chapter number, k), k = 1, 2, ... in page order.

    ``fignumbers`` is ``env.toc_fignumbers`` ({docname: {figtype: {node id: number}}}), ``titles``
    each page's title text. The page order of a kind is the order of its old numbers (Sphinx counts
    them up through the page; the dict keeps the same order)."""
    renumbered = {}
    for docname, kinds in fignumbers.items():
        prefix = chapter_number(titles.get(docname, ""))
        renumbered[docname] = {
            figtype: {
                node_id: (*prefix, k)
                for k, node_id in enumerate(
                    sorted(numbers, key=lambda node_id: numbers[node_id]), start=1
                )
            }
            for figtype, numbers in kinds.items()
        }
    return renumbered


def number_within_chapters(app, env) -> list[str]:
    """``env-get-updated`` handler, run after the TocTreeCollector's (priority 900 > 500)."""
    titles = {docname: title.astext() for docname, title in env.titles.items()}
    previous = getattr(env, "chapter_fignumbers", {})
    env.toc_fignumbers = renumber(env.toc_fignumbers, titles)
    env.chapter_fignumbers = env.toc_fignumbers
    # pages whose numbers changed since the last build must be written again (incremental builds)
    return [d for d, n in env.toc_fignumbers.items() if n != previous.get(d)]


def setup(app):
    app.connect("env-get-updated", number_within_chapters, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
