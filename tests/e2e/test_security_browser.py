"""Browser-side hardening in a real browser (Debian's chromium): the Content-Security-Policy does
not break the UI (no violation while logging in, asking over the WebSocket, drawing, hovering and
exporting a chart), hostile text in the data is drawn as text, and Plotly's mode bar offers no
upload to Plotly's cloud.

Fixtures (servers, chromium) are in conftest.py.
"""

from __future__ import annotations

import re

import pytest

from .conftest import record_problems

from livebi.security_headers import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.browser

EVIL = "https://evil.example/x"
HOSTILE_SQL = (
    f"SELECT '<a href=\"{EVIL}\">click</a> ' || channel AS channel, SUM(revenue) AS revenue "
    "FROM orders GROUP BY 1"
)

# Runs before any page script; CSP does not apply to it. Records every violation the page sees.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""

# Every element under `root` with a link attribute (href, xlink:href, src, action...) pointing
# somewhere it must not. Text attributes (title, aria-label) may quote the hostile value.
FIND_LINKS = """
([root, pattern]) => {
  const re = new RegExp(pattern, "i");
  const found = [];
  for (const node of root.querySelectorAll("*")) {
    for (const attr of node.attributes) {
      if (/href|src|action|data-url/i.test(attr.name) && re.test(attr.value)) found.push(`<${node.tagName} ${attr.name}="${attr.value}">`);
    }
  }
  return found;
}
"""


def _tid(page, testid: str):
    return page.get_by_test_id(testid)


@pytest.fixture
def watched_page(browser, demo_server):
    """A page on the demo server that records CSP violations, console errors and warnings."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    record_problems(page)
    page.set_default_timeout(30_000)
    response = page.goto(demo_server + "/")
    page.main_response = response
    yield page
    context.close()


def _login(page) -> None:
    from playwright.sync_api import expect

    _tid(page, "login-username").fill("demo")
    _tid(page, "login-password").fill("demo")
    _tid(page, "login-submit").click()
    expect(_tid(page, "connection-status")).to_have_attribute("data-state", "connected")


def test_csp_does_not_break_the_ui(watched_page):
    from playwright.sync_api import expect

    page = watched_page
    assert page.main_response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.main_response.headers["x-frame-options"] == "DENY"
    _login(page)
    expect(_tid(page, "transport-badge")).to_have_text("ws")  # connect-src 'self' admits ws:
    expect(_tid(page, "example-chip").first).to_be_visible()

    _tid(page, "question-input").fill("total revenue by region")
    _tid(page, "question-input").press("Enter")
    card = _tid(page, "query-card").first
    chart = card.get_by_test_id("result-chart")
    expect(chart.locator(".main-svg").first).to_be_visible()
    # Hover a bar (Plotly draws the hover label), then export a PNG (data:/blob: images).
    chart.locator(".point").first.hover(force=True)  # the drag layer above it takes the events
    expect(chart.locator(".hoverlayer .hovertext").first).to_be_visible()
    with page.expect_download() as download:
        card.get_by_role("button", name="Export PNG").click()
    assert download.value.suggested_filename.endswith(".png")
    # Table and SQL views too.
    card.locator("[data-testid=view-tab][data-view=table]").click()
    expect(card.get_by_test_id("result-table")).to_be_visible()
    card.locator("[data-testid=view-tab][data-view=sql]").click()
    expect(card.get_by_test_id("result-sql")).to_be_visible()

    violations = page.evaluate("window.__cspViolations")
    assert violations == [], violations
    # Chromium also reports refusals on the console; nothing else may complain either
    # (plotly.js would warn here about config keys it does not know).
    assert page.problems == [], page.problems


def test_hostile_category_renders_as_text_and_mode_bar_has_no_cloud(watched_page):
    from playwright.sync_api import expect

    page = watched_page
    _login(page)
    _tid(page, "question-input").fill("total revenue by region")
    _tid(page, "ask-button").click()
    first = _tid(page, "query-card").first
    expect(first.get_by_test_id("download-csv")).to_be_visible()
    first.locator("[data-testid=view-tab][data-view=sql]").click()
    first.get_by_test_id("result-sql").fill(HOSTILE_SQL)
    first.get_by_test_id("run-sql-button").click()
    expect(_tid(page, "query-card")).to_have_count(2)
    card = _tid(page, "query-card").nth(1)
    chart = card.get_by_test_id("result-chart")
    expect(chart.locator(".main-svg").first).to_be_visible()

    # No element anywhere on the page links to the hostile URL: not in ticks, legend or hover...
    chart.locator(".point").first.hover(force=True)  # the drag layer above it takes the events
    expect(chart.locator(".hoverlayer .hovertext").first).to_be_visible()
    assert page.evaluate(FIND_LINKS, [page.locator("body").element_handle(), "evil\\.example"]) == []
    # ...the value is shown literally, as text, on the axis and in the hover label.
    expect(chart.locator("text", has_text='<a href="https://evil.example').first).to_be_visible()
    assert "<a href" in chart.locator(".hoverlayer").text_content()

    # The mode bar: no "share"/"Chart Studio" button and no link to Plotly's servers.
    chart.hover()
    modebar = chart.locator(".modebar")
    expect(modebar).to_be_attached()
    titles = [t.lower() for t in modebar.locator("[data-title]").evaluate_all("els => els.map(e => e.dataset.title)")]
    assert titles, "the mode bar has buttons"
    assert not [t for t in titles if re.search(r"share|cloud|chart studio|edit", t)], titles
    assert page.evaluate(FIND_LINKS, [chart.element_handle(), r"plot\.ly|plotly\.com|chart-studio|chart studio"]) == []
    violations = page.evaluate("window.__cspViolations")
    assert violations == [], violations
