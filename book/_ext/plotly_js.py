"""A Sphinx extension: plotly.js served by the site itself, on the pages with interactive figures.

The interactive figures (``companion.core.interactive``) are HTML fragments without plotly.js. At the
end of the build this copies the ``plotly.min.js`` that ships inside the installed ``plotly`` package
(the same release that wrote the figures) to ``_static/``, and a page whose body holds a plotly
figure loads it from there, in ``<head>`` before the figure's own script runs. No CDN, no file in the
repository.
"""

import pathlib
import shutil

FILE = "plotly.min.js"
MARKER = 'class="plotly-graph-div"'  # every figure of fig.to_html() has this <div>


def plotly_js() -> pathlib.Path:
    import plotly

    return pathlib.Path(plotly.__file__).parent / "package_data" / FILE


def add_script(app, pagename, templatename, context, doctree):
    if MARKER in context.get("body", ""):
        # added during html-page-context: this page only; without defer, so it runs first
        app.add_js_file(FILE, priority=100)


def copy_script(app, exception):
    if exception is None and app.builder.format == "html":
        static = pathlib.Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plotly_js(), static / FILE)


def setup(app):
    app.connect("html-page-context", add_script)
    app.connect("build-finished", copy_script)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
