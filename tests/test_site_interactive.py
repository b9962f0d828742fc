"""The interactive figures of the built site (``companion.core.interactive``), moved as a reader
moves them: in headless Chromium with the network blocked, each page holding a figure is opened,
plotly.js must come from the site itself and draw the figure, and every slider and menu is clicked
with the mouse; the drawn curve (its SVG path) and the title must change, and no console error appear.

Uses tests/test_site.py's helpers (its server, its browser flags, ``visit``); like it, it skips without
a built site, Chromium or Playwright, and ``COMPANION_BOOK_ROOT`` points it at another book folder
(``COMPANION_SITE_TEST_REQUIRED=1`` turns the skips into failures). Run after the book build:
``pytest -s -n 0 tests/test_site_interactive.py``.
"""

import functools

import pytest

import test_site

SITE = test_site.SITE
# the figure's <div> id: (which of its line traces moves, the controls to move)
FIGURES = {
    "momentum-valley": (1, ["slider 0", "slider 1"]),  # the path of SGD
    "lr-schedules": (0, ["slider 0", "menu"]),  # the rate
    "norm-penalties": (4, ["slider 0"]),  # the L1 diamond through the L1 minimum
}


@functools.cache
def page_holding(div_id: str) -> str | None:
    """The built page (relative to the site) whose HTML holds the figure ``div_id``."""
    for path in sorted(SITE.rglob("*.html")):
        if f'id="{div_id}"' in path.read_text(encoding="utf-8", errors="replace"):
            return path.relative_to(SITE).as_posix()
    return None


@pytest.fixture(scope="module")
def site():
    """tests/test_site.py's localhost server and network-blocked Chromium (without its page counts)."""
    with test_site.browser(height=1000) as opened:
        yield opened


# What the figure shows now: the moving curve's SVG path and the title.
DRAWN = """([id, trace]) => {
  const gd = document.getElementById(id);
  const line = gd.querySelectorAll('.scatterlayer .trace')[trace].querySelector('path.js-line');
  return {d: line ? line.getAttribute('d') : null, title: gd.querySelector('.gtitle').textContent};
}"""


def move(page, div_id: str, control: str, step: int) -> None:
    """Click ``step`` of a slider (on its rail, above the step's tick) or choose item ``step`` of the
    figure's dropdown menu (open it, click the item), with the mouse."""
    fig = page.locator(f"#{div_id}")
    if control == "menu":
        fig.locator(".updatemenu-header-group").click()
        fig.locator(".updatemenu-dropdown-button").nth(step).click()
        return
    index = int(control.split()[1])
    group = fig.locator(".slider-group").filter(visible=True).nth(index)
    group.scroll_into_view_if_needed()  # the mouse clicks at coordinates in the viewport
    tick = group.locator(".slider-tick-rect").nth(step).bounding_box()
    rail = group.locator(".slider-rail-touch-rect").bounding_box()
    page.mouse.click(tick["x"] + tick["width"] / 2, rail["y"] + rail["height"] / 2)


@pytest.mark.parametrize("width", [1400, 400])  # a desktop, a phone
@pytest.mark.parametrize("div_id", FIGURES)
def test_figure_responds(site, div_id, width):
    name = page_holding(div_id)
    assert name, f"no page of {SITE} holds the figure {div_id!r}"
    from playwright.sync_api import (
        TimeoutError as Timeout,
    )  # the fixture checked it is there

    page = site["page"]
    page.set_viewport_size({"width": width, "height": 900})
    seen, errors, blocked = test_site.visit(site, site["base"] + name)
    assert not errors and not blocked, errors + blocked
    page.wait_for_function(
        "id => document.getElementById(id).querySelector('.main-svg')", arg=div_id
    )
    assert page.evaluate(
        "() => [...document.scripts].some(s => /_static\\/plotly\\.min\\.js/.test(s.src))"
    ), "plotly.js is not loaded from the site's _static/"
    label = page.locator(f"#{div_id}").evaluate(
        "el => el.closest('[role=figure]').getAttribute('aria-label')"
    )
    assert len(label) > 40, f"{div_id}: no text alternative"
    trace, controls = FIGURES[div_id]
    later: list[str] = []  # JavaScript errors while the controls move
    on_error = lambda exc: later.append(str(exc))
    page.on("pageerror", on_error)
    for control in controls:
        # each control starts at another step, so both clicks change the figure
        for step in (1, 2):
            before = page.evaluate(DRAWN, [div_id, trace])
            move(page, div_id, control, step)
            try:
                page.wait_for_function(
                    f"([id, trace, d]) => ({DRAWN})([id, trace]).d !== d",
                    arg=[div_id, trace, before["d"]],
                    timeout=10_000,
                )
            except Timeout as exc:
                raise AssertionError(
                    f"{div_id} at {width} px: {control} step {step} left the curve as it was"
                ) from exc
            after = page.evaluate(DRAWN, [div_id, trace])
            assert after["d"] and after["title"] != before["title"], (
                f"{div_id} at {width} px: {control} step {step} left the title as it was"
            )
    page.remove_listener("pageerror", on_error)
    assert not later, f"{div_id} at {width} px: {later}"


def test_pages_without_a_figure_do_not_load_plotly():
    pages = sorted(SITE.rglob("*.html")) if SITE.is_dir() else []
    if not pages:
        test_site.unavailable(f"no built site at {SITE}")
    for path in pages:
        text = path.read_text(encoding="utf-8", errors="replace")
        has_figure = 'class="plotly-graph-div' in text
        assert ("plotly.min.js" in text) == has_figure, path.relative_to(SITE)
    assert (SITE / "_static" / "plotly.min.js").stat().st_size > 1_000_000
