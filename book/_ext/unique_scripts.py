"""A Sphinx extension: each page loads each script once.

Jupyter Book 1.0 with Sphinx 7.4 puts sphinx-thebe's inline configuration on every page twice, and its
second ``const THEBE_JS_URL = ...`` is a SyntaxError in the reader's console. This drops exact repeats of a
script (the same file, or the same inline body, with the same attributes) from the page's list, keeping the first.
"""


def _key(script):
    attributes = getattr(script, "attributes", {}) or {}
    # an inline script's filename is None from one extension and "" from another
    return getattr(script, "filename", script) or "", tuple(
        sorted((k, str(v)) for k, v in attributes.items())
    )


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    scripts, seen = context.get("script_files"), set()
    if not scripts:
        return
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
