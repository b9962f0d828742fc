"""The book in two languages on one site: the English at the root, each translation in its own folder
(``zh/`` for Simplified Chinese), built from the same pages with ``language`` set and the catalogs of
``book/locale/<language>/``.

Every page gets a button in its header that leads to the same page in the other language (and
``<link rel="alternate" hreflang>`` tags), and figures' alt texts are translated like the rest of the
page: Sphinx's gettext builder does not extract them, so this extension adds them to the page's catalog
when extracting and replaces them from it when building a translation.

Results tables are messages too, and their numbers are measured where the book is built: they differ in
the last digits between processors (PyTorch picks CPU kernels by processor). A message that differs from a
translated one only in its numbers is translated by the same translation with its own numbers
(:func:`carried`), here when building and by ``.ci/translations.py`` when checking the catalogs; a changed
word (a verdict) still needs a translator.
"""

import posixpath
import re

from docutils import nodes
from sphinx.locale import init as init_locale
from sphinx.util.i18n import docname_to_domain

# language -> (the folder of its edition within the site, its name in its own language)
EDITIONS = {"en": ("", "English"), "zh_CN": ("zh", "中文")}


def _folder(language: str) -> str:
    return EDITIONS.get(language, EDITIONS["en"])[0]


def counterpart(pagename: str, here: str, there: str) -> str:
    """The relative URL, from ``pagename`` in language ``here``, of the same page in language ``there``."""
    depth = pagename.count("/") + (1 if _folder(here) else 0)
    target = posixpath.join(_folder(there), pagename + ".html")
    return "../" * depth + target


def _add_switch(app, pagename, templatename, context, doctree):
    here = app.config.language or "en"
    if here not in EDITIONS:
        return
    links = []
    for there, (_, name) in EDITIONS.items():
        if there == here:
            continue
        url = counterpart(pagename, here, there)
        links.append((there, name, url))
        context.setdefault("header_buttons", []).append(
            {
                "type": "link",
                "url": url,
                "text": name,
                "tooltip": name,
                "icon": "fas fa-language",
                "label": f"language-{there}",
                "classes": "language-switch",
            }
        )
    context["metatags"] = context.get("metatags", "") + "".join(
        f'\n<link rel="alternate" hreflang="{there.replace("_", "-")}" href="{url}" />'
        for there, _, url in links
    )


NUMBER = re.compile(r"[+\-\u2212]?\d+(?:\.\d+)?(?:[eE][+\-]?\d+)?")


def number_templates(translations) -> dict[str, str]:
    """``{msgid with its numbers blanked: msgstr}`` of the translated messages (``(msgid, msgstr)`` pairs)
    whose translation holds the same numbers as the English, in the same order."""
    out = {}
    for msgid, msgstr in translations:
        if not (isinstance(msgid, str) and msgstr):
            continue
        numbers = NUMBER.findall(msgid)
        if numbers and NUMBER.findall(msgstr) == numbers:
            out.setdefault(NUMBER.sub("\0", msgid), msgstr)
    return out


def carried(message: str, templates: dict[str, str]) -> str | None:
    """The translation of ``message`` from a translated message that differs from it only in its numbers
    (``templates``: :func:`number_templates`), with ``message``'s numbers; None if there is none."""
    template = templates.get(NUMBER.sub("\0", message))
    if template is None:
        return None
    numbers = iter(NUMBER.findall(message))
    return NUMBER.sub(lambda _: next(numbers), template)


def _make_carry_numbers():
    from sphinx.transforms import SphinxTransform
    from sphinx.util.nodes import extract_messages

    class CarryNumbers(SphinxTransform):
        """Before Sphinx's Locale transform (priority 20): add to the page's catalog the messages of this
        page that differ from a translated one only in their numbers (see :func:`carried`)."""

        default_priority = 19

        def apply(self, **kwargs):
            if (self.config.language or "en") == "en":
                return
            domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
            dirs = [posixpath.join(self.env.srcdir, d) for d in self.config.locale_dirs]
            catalog, has = init_locale(dirs, self.config.language, domain)
            table = getattr(catalog, "_catalog", None)
            if not has or table is None:
                return
            templates = number_templates(table.items())
            for _, message in extract_messages(self.document):
                if message not in table:
                    translation = carried(message, templates)
                    if translation is not None:
                        table[message] = translation

    return CarryNumbers


def _alt_images(doctree):
    return [n for n in doctree.findall(nodes.image) if n.get("alt")]


def _alt_texts(app, doctree):
    """gettext: add each figure's alt text to its page's catalog. Other builders with a translation:
    replace each alt text by its translation, where there is one."""
    docname = app.env.docname
    domain = docname_to_domain(docname, app.config.gettext_compact)
    if app.builder.name == "gettext":
        catalog = app.builder.catalogs[domain]
        for image in _alt_images(doctree):
            image.uid = ""  # the builder's message origins need these
            image.source = image.source or app.env.doc2path(docname)
            image.line = image.line or 0
            catalog.add(image["alt"], image)
        return
    if (app.config.language or "en") == "en":
        return
    dirs = [posixpath.join(app.srcdir, d) for d in app.config.locale_dirs]
    catalog, has = init_locale(dirs, app.config.language, domain)
    if not has:
        return
    for image in _alt_images(doctree):
        translated = catalog.gettext(image["alt"])
        if translated:
            image["alt"] = translated


# The theme opens header links in a new tab; a language switch stays in the reader's tab.
SAME_TAB = (
    "document.addEventListener('DOMContentLoaded', () => document"
    ".querySelectorAll('a.language-switch').forEach(a => a.removeAttribute('target')));"
)


def setup(app):
    app.add_js_file(None, body=SAME_TAB)
    app.connect("html-page-context", _add_switch, priority=600)
    app.connect("doctree-read", _alt_texts)
    app.add_transform(_make_carry_numbers())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
