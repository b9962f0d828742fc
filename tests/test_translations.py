"""The translations stay in step with the English: a changed English sentence is reported, by page and
text, until its translation is revised; a translation that changes the markup (math, code, roles, links)
is caught; the student edition's scan finds a solution's translation."""

import importlib.util
import shutil
from pathlib import Path

import pytest

pytest.importorskip(
    "babel", reason="the book's tools (Sphinx brings babel) are not installed"
)
import yaml  # noqa: E402
from babel.messages.catalog import Catalog  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "translations", ROOT / ".ci" / "translations.py"
)
translations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(translations)

INTRO = "book/intro"


def _catalog(pairs, fuzzy=()):
    catalog = Catalog(locale="zh_CN")
    for english, chinese in pairs:
        catalog.add(english, chinese, flags=("fuzzy",) if english in fuzzy else ())
    return catalog


def _translated_page(pairs, tmp_path, monkeypatch) -> None:
    """A catalog for the page book/page holding ``pairs``, in a locale folder the module reads."""
    from babel.messages.pofile import write_po

    locale = tmp_path / "locale"
    path = locale / "zh_CN" / "LC_MESSAGES" / "book" / "page.po"
    path.parent.mkdir(parents=True)
    with path.open("wb") as f:
        write_po(f, _catalog(pairs))
    monkeypatch.setattr(translations, "LOCALE", locale)


def test_a_changed_sentence_is_fuzzy_and_named(monkeypatch, tmp_path):
    old = "Momentum damps the zig-zag of gradient descent on a narrow valley."
    new = "Momentum damps the zig-zag of gradient descent on a long, narrow valley."
    kept = "Adam divides by the root of a moving average of squared gradients."
    _translated_page(
        [
            (old, "动量抑制窄谷中梯度下降的之字形振荡。"),
            (kept, "Adam 除以平方梯度滑动平均的平方根。"),
        ],
        tmp_path,
        monkeypatch,
    )
    template = _catalog([(new, ""), (kept, "")])
    merged = translations.merged("book/page", template, "zh_CN")
    todo = translations.pending(merged)
    assert [(status, text) for status, _, text in todo] == [("fuzzy", new)]
    # the old translation is kept for the translator to revise
    assert merged[new].string == "动量抑制窄谷中梯度下降的之字形振荡。"
    # a sentence with nothing in common is new, not fuzzy
    template = _catalog(
        [("Weight decay shrinks every weight toward zero each step.", ""), (kept, "")]
    )
    todo = translations.pending(translations.merged("book/page", template, "zh_CN"))
    assert [status for status, _, _ in todo] == ["untranslated"]


def test_a_results_table_measured_again_keeps_its_translation(monkeypatch, tmp_path):
    """Numbers measured on another processor (the last digits of a results table) carry the translation
    over, with the new numbers; a changed word (a verdict) does not; a message without words is copied
    even where babel matched it to an older one."""
    table = "| | verdict | loss | |---|---|---| | SWA | better beyond seed noise | 0.827 [0.786, -0.867] |"
    chinese = "| | 结论 | 损失 | |---|---|---| | SWA | 更好，超出种子噪声 | 0.827 [0.786, -0.867] |"
    pairs = [(table, chinese), ("0.974 [0.969, 0.979]", "0.974 [0.969, 0.979]")]
    _translated_page(pairs, tmp_path, monkeypatch)
    remeasured = table.replace("0.827 [0.786, -0.867]", "0.823 [0.777, -0.868]")
    reworded = table.replace("better beyond", "no measurable change beyond")
    template = _catalog(
        [(remeasured, ""), (reworded, ""), ("0.975 [0.969, 0.979]", "")]
    )
    merged = translations.merged("book/page", template, "zh_CN")
    assert merged[remeasured].string == chinese.replace(
        "0.827 [0.786, -0.867]", "0.823 [0.777, -0.868]"
    )
    assert merged["0.975 [0.969, 0.979]"].string == "0.975 [0.969, 0.979]"
    todo = translations.pending(merged)
    assert [text for _, _, text in todo] == [reworded]


def test_messages_without_words_are_copied():
    assert not translations.needs_translation("`torch.optim.SGD`")
    assert not translations.needs_translation("$\\alpha = 0.1$")
    assert not translations.needs_translation("动量")
    assert translations.needs_translation("The learning rate $\\alpha$.")


@pytest.mark.parametrize(
    "chinese, problem",
    [
        (
            "见 {doc}`optimization/adam`，其中 $\\alpha$ 与 `lr`，{term}`动量 <momentum>`。",
            None,
        ),
        ("见 {doc}`optimization/adam`，其中 $\\beta$ 与 `lr`，{term}`动量`。", "math"),
        (
            "见 {doc}`optimization/adam`，其中 $\\alpha$ 与 `学习率`，{term}`动量`。",
            "inline code",
        ),
        (
            "见 {doc}`optimization/nadam`，其中 $\\alpha$ 与 `lr`，{term}`动量`。",
            "roles",
        ),
        ("见 optimization/adam，其中 $\\alpha$ 与 `lr`，{term}`动量`。", "roles"),
    ],
)
def test_markup_must_survive_translation(chinese, problem):
    english = "Taught in {doc}`optimization/adam`, with $\\alpha$ and `lr` and {term}`momentum`."
    errors = translations.markup_errors(english, chinese)
    if problem is None:
        assert errors == []
    else:
        assert errors and errors[0].startswith(problem), errors


def test_the_catalogs_keep_the_markup():
    """Every translated message of the shipped catalogs keeps its English's math, code, roles and links."""
    paths = sorted((ROOT / "book" / "locale").rglob("*.po"))
    assert paths, "no catalogs"
    bad = []
    from babel.messages.pofile import read_po

    for path in paths:
        with path.open("rb") as f:
            for m in read_po(f):
                if m.id and m.string:
                    bad += [
                        (path.name, e, m.id[:60])
                        for e in translations.markup_errors(m.id, m.string)
                    ]
    assert bad == []


@pytest.mark.skipif(shutil.which("jupyter-book") is None, reason="needs jupyter-book")
def test_extraction_names_an_edited_sentence(tmp_path, monkeypatch):
    """End to end on the introduction: edit one English sentence, extract the messages as CI does, and the
    check names that sentence on that page; its other messages keep their state."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "book", src / "book", ignore=shutil.ignore_patterns("*.ipynb", "_build")
    )
    (src / "companion").symlink_to(ROOT / "companion")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(config))
    (src / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": INTRO}))
    intro = src / f"{INTRO}.md"
    text = intro.read_text()

    def pending_texts(name):
        template = translations.extract(src, tmp_path / name)[INTRO]
        todo = translations.pending(translations.merged(INTRO, template, "zh_CN"))
        assert all("intro.md" in where for _, where, _ in todo)
        return {t for _, _, t in todo}

    before = pending_texts("before")
    line = next(
        ln
        for p in text.split("\n\n")
        if p[:1].isalpha()
        for ln in p.splitlines()
        if " the " in ln
    )
    edited = line.replace(" the ", " the whole ", 1)
    intro.write_text(text.replace(line, edited, 1))
    after = pending_texts("after")
    new = after - before
    assert len(new) == 1 and edited.strip() in next(iter(new)), new
