"""Live dashboards in a real browser (Debian's chromium) against real `livebi demo` servers.

The server refreshes each watched dashboard once for all its viewers and publishes every
widget's refresh as `dashboard_refresh` (docs/live.md); the page shows those and never asks a
widget's question itself:

- two people on one dashboard: a widget refresh pressed by one updates both, and neither page
  sends an `ask` (every WebSocket frame the pages send is recorded; the server's own op counter
  agrees);
- an interval widget ticks ("updated N s ago", a <time> with the ISO timestamp) and re-renders
  with what changed highlighted and said in words;
- a failing widget names the stage it failed in;
- the header says live / reconnecting (the WebSocket dropped) / not live (a server with live
  dashboards off, where each viewer runs the widgets as before);
- the widget editor's refresh settings round-trip through the server;
- the widget's live states, in the page's own module (pure data in, DOM out): a failed refresh
  keeps the last good result, marked stale; out-of-order refreshes are ignored; changed cells.

A screenshot of a live dashboard goes to docs/screenshots/live-dashboard.png when
LIVEBI_UPDATE_SCREENSHOTS=1, else to the test's temporary directory.
Playwright `wait_for_function` gets function predicates: the CSP forbids eval.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from .conftest import _demo, close_and_check, log_in, record_problems
from .conftest import api_call as _api
from .conftest import api_login as _login_api

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WS_URL = re.compile(r"/ws(\?|$)")

# Records CSP violations, and whether a widget's refresh progress bar was ever on screen.
INIT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
window.__sawProgress = 0;
new MutationObserver(() => {
  for (const bar of document.querySelectorAll("[data-testid=widget-progress]")) if (!bar.hidden) window.__sawProgress += 1;
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["hidden"] });
"""

RANDOM_KPI = "SELECT round(random() * 1000000) AS value"
BY_REGION = ("SELECT c.region, round(sum(o.revenue)) AS revenue FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
             "GROUP BY c.region ORDER BY c.region")
FAILING = "SELECT nope FROM orders"


def _ops_received(base: str, op: str) -> float:
    """The server's count of client ops of one kind (its Prometheus counter, loopback only)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    match = re.search(rf'^livebi_messages_received_total{{op="{op}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _dashboard(base: str, widgets: list[dict], *, viewer: str | None = "bob") -> str:
    """A dashboard of alice's with `widgets` (made over REST and one edit op); returns its id."""
    alice = _login_api(base, "alice")
    created = _api(base, alice, "POST", "/api/dashboards", json={"title": f"Live room {uuid.uuid4().hex[:6]}"})
    if viewer:
        _api(base, alice, "PUT", f"/api/dashboards/{created['id']}/members/{viewer}", json={"role": "viewer"})
    if widgets:  # one edit op over a WebSocket (sync client: Playwright's loop is running)
        from websockets.sync.client import connect

        ticket = _api(base, alice, "POST", "/api/ticket")["ticket"]
        with connect(base.replace("http", "ws", 1) + f"/ws?ticket={ticket}") as ws:
            ops = [{"type": "add_widget", "widget": w} for w in widgets]
            ws.send(json.dumps({"id": 1, "op": "edit", "dashboard_id": created["id"], "ops": ops}))
            while (reply := json.loads(ws.recv(timeout=10))).get("id") != 1:
                pass
            assert reply["ok"], reply
    return created["id"]


def _widget(title: str, sql: str, *, x: int = 0, y: int = 0, w: int = 4, h: int = 3, interval_s=None, on_change=False) -> dict:
    return {"title": title, "sql": sql, "x": x, "y": y, "w": w, "h": h,
            "refresh": {"interval_s": interval_s, "on_data_change": on_change}}


@pytest.fixture
def people(browser):
    """`people(base, username)` -> a logged-in page in its own context, with `page.sent`: every
    WebSocket frame the page sends, parsed. Each is checked for CSP violations and console
    errors at the end."""
    opened = []

    def _open(base: str, username: str):
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        context.add_init_script(INIT)
        page = context.new_page()
        record_problems(page)
        page.sent = []

        def on_websocket(ws) -> None:
            ws.on("framesent", lambda payload: page.sent.append(_frame(payload)))

        page.on("websocket", on_websocket)
        page.set_default_timeout(30_000)
        log_in(page, base, username)
        opened.append((username, context, page))
        return page

    yield _open
    close_and_check(opened)


def _frame(payload) -> dict:
    try:
        return json.loads(payload)
    except (TypeError, ValueError):
        return {}


def _ops(page, name: str) -> list[dict]:
    return [f for f in page.sent if f.get("op") == name]


def _open_dashboard(page, base: str, dashboard_id: str):
    from playwright.sync_api import expect

    page.goto(f"{base}/#/dashboards/{dashboard_id}")
    expect(page.get_by_test_id("dashboard-page")).to_be_visible()
    return page


def _widget_el(page, title: str):
    return page.get_by_test_id("widget").filter(has=page.get_by_test_id("widget-title").get_by_text(title, exact=True))


def _kpi(page, title: str) -> str:
    from playwright.sync_api import expect

    value = _widget_el(page, title).get_by_test_id("kpi-value")
    expect(value).to_be_visible()
    return value.text_content()


def test_refresh_by_one_viewer_updates_both_without_asking(people, demo_server):
    from playwright.sync_api import expect

    dashboard = _dashboard(demo_server, [_widget("Lucky number", RANDOM_KPI)])
    asks_before = _ops_received(demo_server, "ask")
    alice = _open_dashboard(people(demo_server, "alice"), demo_server, dashboard)
    bob = _open_dashboard(people(demo_server, "bob"), demo_server, dashboard)
    for page in (alice, bob):
        expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
        expect(page.get_by_test_id("live-status")).to_have_text("live")
    # Both show the same result: the server's, not one each.
    first = _kpi(alice, "Lucky number")
    expect(_widget_el(bob, "Lucky number").get_by_test_id("kpi-value")).to_have_text(first)

    # Bob (a viewer) presses the widget's Refresh: both pages re-render with the new value.
    bob.emulate_media(reduced_motion="reduce")  # his highlight appears and goes without motion
    renders = [int(_widget_el(p, "Lucky number").get_by_test_id("live-widget").get_attribute("data-renders")) for p in (alice, bob)]
    _widget_el(bob, "Lucky number").get_by_test_id("widget-refresh").click()
    expect(_widget_el(bob, "Lucky number").get_by_test_id("kpi-value")).not_to_have_text(first)
    second = _kpi(bob, "Lucky number")
    expect(_widget_el(alice, "Lucky number").get_by_test_id("kpi-value")).to_have_text(second)
    for page, before in zip((alice, bob), renders, strict=True):
        widget = _widget_el(page, "Lucky number")
        expect(widget.get_by_test_id("live-widget")).to_have_attribute("data-renders", str(before + 1))
        # What changed is said in words (the old value), and marked on the value for a moment.
        expect(widget.get_by_test_id("widget-change")).to_have_text(f"value was {first}")
        expect(widget.get_by_test_id("kpi-value")).to_have_attribute("title", f"was {first}")
    marked = _widget_el(bob, "Lucky number").locator("[data-testid=kpi-value].live-changed")
    assert marked.evaluate("(el) => getComputedStyle(el).transitionDuration") == "0s"
    expect(marked).to_have_count(0, timeout=10_000)  # the mark goes after a few seconds

    # A manual refresh is announced at once (state running): both pages showed its progress bar.
    for page in (alice, bob):
        assert page.evaluate("() => window.__sawProgress") > 0

    # "Refresh all" from Alice's page: again one new value for both.
    alice.get_by_test_id("refresh-all").click()
    expect(_widget_el(alice, "Lucky number").get_by_test_id("kpi-value")).not_to_have_text(second)
    third = _kpi(alice, "Lucky number")
    expect(_widget_el(bob, "Lucky number").get_by_test_id("kpi-value")).to_have_text(third)

    # Nobody asked the question: no `ask` op left either page, and the server counted none.
    widget_id = _widget_el(bob, "Lucky number").get_attribute("data-widget-id")
    assert [(f["dashboard_id"], f.get("widget_id")) for f in _ops(bob, "refresh")] == [(dashboard, widget_id)]
    assert (dashboard, None) in [(f["dashboard_id"], f.get("widget_id")) for f in _ops(alice, "refresh")]
    assert _ops(alice, "ask") == [] and _ops(bob, "ask") == [], (alice.sent, bob.sent)
    assert _ops_received(demo_server, "ask") == asks_before


def test_interval_widget_ticks_and_rerenders(people, demo_server):
    from playwright.sync_api import expect

    dashboard = _dashboard(demo_server, [_widget("Every five", RANDOM_KPI, interval_s=5)], viewer=None)
    page = _open_dashboard(people(demo_server, "alice"), demo_server, dashboard)
    widget = _widget_el(page, "Every five")
    expect(widget.get_by_test_id("widget-schedule")).to_have_text("every 5 s")
    updated = widget.get_by_test_id("widget-updated")
    expect(updated).to_have_text(re.compile(r"^updated (just now|\d+ s ago)$"))
    # The clock ticks while nothing new comes...
    expect(updated).to_have_text(re.compile(r"^updated [2-9] s ago$"), timeout=10_000)
    ticked = updated.text_content()
    expect(updated).not_to_have_text(ticked)
    # ...and the <time> carries the server's ISO timestamp.
    stamp = dt.datetime.fromisoformat(updated.get_attribute("datetime"))
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 60
    # The next interval refresh re-renders the widget with the new value and a new time.
    value = _kpi(page, "Every five")
    live = widget.get_by_test_id("live-widget")
    renders = int(live.get_attribute("data-renders"))
    page.wait_for_function(
        "([el, n]) => Number(el.dataset.renders) > n", arg=[live.element_handle(), renders], timeout=15_000)
    expect(widget.get_by_test_id("kpi-value")).not_to_have_text(value)
    assert updated.get_attribute("datetime") > stamp.isoformat()
    expect(widget.get_by_test_id("widget-change")).to_have_text(re.compile(r"^value was "))
    # A quick automatic refresh is not announced (no "running" first: one message per viewer),
    # so no progress bar is left behind.
    expect(widget.get_by_test_id("widget-progress")).to_be_hidden()
    assert _ops(page, "ask") == []


def test_failing_widget_names_its_stage(people, demo_server):
    from playwright.sync_api import expect

    dashboard = _dashboard(demo_server, [_widget("Broken", FAILING), _widget("Fine", RANDOM_KPI, x=4)], viewer=None)
    page = _open_dashboard(people(demo_server, "alice"), demo_server, dashboard)
    broken = _widget_el(page, "Broken")
    stage = broken.get_by_test_id("error-stage")
    expect(stage).to_have_attribute("data-stage", "data_processing")
    expect(stage).to_have_text(re.compile("Data"))
    expect(broken.get_by_test_id("error-message")).to_contain_text("nope")
    expect(broken.get_by_test_id("live-widget")).to_have_attribute("data-state", "failed")
    expect(broken.get_by_test_id("widget-state")).to_have_text("refresh failed")
    expect(broken.get_by_test_id("widget-updated")).to_have_text(re.compile(r"^tried "))
    _kpi(page, "Fine")  # the other widget is not held up


def test_live_badge_reconnecting_and_not_live(people, demo_server, non_live_server):
    from playwright.sync_api import expect

    dashboard = _dashboard(demo_server, [_widget("Lucky number", RANDOM_KPI)], viewer=None)
    page = people(demo_server, "alice")
    sockets = []
    refuse_until = [0.0]
    lose_history = [False]
    live_fetches = []
    page.on("request", lambda r: live_fetches.append(r.url) if r.url.endswith(f"/api/dashboards/{dashboard}/live") else None)

    def proxy(ws) -> None:  # the real server, through a socket the test can drop
        if time.monotonic() < refuse_until[0]:
            ws.close()  # the server stays unreachable for a moment
            return
        server = ws.connect_to_server()

        def to_page(message) -> None:
            # After the drop, the server "could not recover" the channel (as when its history
            # is gone): the page must fetch the latest results again.
            if lose_history[0] and isinstance(message, str):
                message = json.dumps(_unrecovered(json.loads(message)))
            ws.send(message)

        server.on_message(to_page)
        sockets.append((ws, server))

    page.route_web_socket(WS_URL, proxy)
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    _open_dashboard(page, demo_server, dashboard)
    badge = page.get_by_test_id("live-status")
    expect(badge).to_have_attribute("data-state", "live")
    first = _kpi(page, "Lucky number")
    assert len(live_fetches) == 1
    refuse_until[0] = time.monotonic() + 2
    lose_history[0] = True
    sockets[-1][0].close(code=1012, reason="test drops the connection")
    expect(badge).to_have_attribute("data-state", "reconnecting")
    expect(badge).to_have_text("reconnecting…")
    expect(page.get_by_test_id("refresh-all")).to_be_disabled()
    expect(badge).to_have_attribute("data-state", "live", timeout=20_000)
    page.wait_for_function(f"() => performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/{dashboard}/live')).length >= 2")
    assert len(live_fetches) >= 2, live_fetches
    # Still live after the reconnect: a refresh reaches the page.
    page.get_by_test_id("refresh-all").click()
    expect(_widget_el(page, "Lucky number").get_by_test_id("kpi-value")).not_to_have_text(first)

    # A server with live dashboards off: "not live", and the page runs the widget itself.
    off = _dashboard(non_live_server, [_widget("Counted", "SELECT count(*) AS n FROM orders")], viewer=None)
    other = _open_dashboard(people(non_live_server, "alice"), non_live_server, off)
    expect(other.get_by_test_id("live-status")).to_have_attribute("data-state", "off")
    expect(other.get_by_test_id("live-status")).to_have_text("not live")
    expect(other.get_by_test_id("refresh-all")).to_be_hidden()
    widget = _widget_el(other, "Counted")
    expect(widget.get_by_test_id("result-kpi").or_(widget.get_by_test_id("result-table")).first).to_be_visible()
    expect(widget.get_by_test_id("widget-rerun")).to_be_visible()
    expect(widget.get_by_test_id("widget-updated")).to_have_count(0)
    asks = _ops(other, "ask")
    assert len(asks) == 1 and asks[0]["sql"] == "SELECT count(*) AS n FROM orders", other.sent


def _unrecovered(message):
    """The message with every `recovered` flag set to false (subscribe replies, in batches too)."""
    if isinstance(message, dict):
        return {k: (False if k == "recovered" else _unrecovered(v)) for k, v in message.items()}
    if isinstance(message, list):
        return [_unrecovered(v) for v in message]
    return message


def test_refresh_settings_round_trip(people, demo_server):
    from playwright.sync_api import expect

    dashboard = _dashboard(demo_server, [_widget("Settings", RANDOM_KPI)])
    token = _login_api(demo_server, "alice")
    alice = _open_dashboard(people(demo_server, "alice"), demo_server, dashboard)
    bob = _open_dashboard(people(demo_server, "bob"), demo_server, dashboard)
    expect(_widget_el(bob, "Settings").get_by_test_id("widget-settings")).to_have_count(0)  # a viewer

    def open_settings():
        _widget_el(alice, "Settings").get_by_test_id("widget-settings").click()
        return alice.get_by_test_id("widget-settings-dialog")

    def stored() -> dict:
        widgets = _api(demo_server, token, "GET", f"/api/dashboards/{dashboard}")["widgets"]
        return widgets[0]["refresh"]

    dialog = open_settings()
    expect(dialog.get_by_test_id("refresh-interval")).to_have_value("off")
    expect(dialog.get_by_test_id("refresh-on-change")).not_to_be_checked()
    expect(dialog.get_by_test_id("refresh-interval-custom")).to_be_hidden()
    dialog.get_by_test_id("refresh-interval").select_option("10")
    dialog.get_by_test_id("refresh-on-change").check()
    dialog.get_by_test_id("widget-settings-submit").click()
    expect(dialog).to_have_count(0)
    for page in (alice, bob):
        expect(_widget_el(page, "Settings").get_by_test_id("widget-schedule")).to_have_text("every 10 s · on data change")
    assert stored() == {"interval_s": 10, "on_data_change": True}

    dialog = open_settings()
    expect(dialog.get_by_test_id("refresh-interval")).to_have_value("10")
    expect(dialog.get_by_test_id("refresh-on-change")).to_be_checked()
    dialog.get_by_test_id("refresh-interval").select_option("custom")
    custom = dialog.get_by_test_id("refresh-interval-custom")
    expect(custom).to_be_focused()
    custom.fill("0")
    dialog.get_by_test_id("widget-settings-submit").click()
    expect(dialog.get_by_test_id("dialog-error")).to_contain_text("whole seconds from 1 to 86,400")
    custom.fill("45")
    dialog.get_by_test_id("refresh-on-change").uncheck()
    dialog.get_by_test_id("widget-settings-submit").click()
    expect(dialog).to_have_count(0)
    expect(_widget_el(bob, "Settings").get_by_test_id("widget-schedule")).to_have_text("every 45 s")
    assert stored() == {"interval_s": 45, "on_data_change": False}

    dialog = open_settings()
    expect(dialog.get_by_test_id("refresh-interval")).to_have_value("custom")
    expect(dialog.get_by_test_id("refresh-interval-custom")).to_have_value("45")
    dialog.get_by_test_id("refresh-interval").select_option("off")
    dialog.get_by_test_id("widget-settings-submit").click()
    expect(dialog).to_have_count(0)
    expect(_widget_el(bob, "Settings").get_by_test_id("widget-schedule")).to_have_text("")
    assert stored() == {"interval_s": None, "on_data_change": False}

    # A new question or SQL: the old answer goes, the server runs the new one for both.
    dialog = open_settings()
    dialog.get_by_test_id("widget-settings-sql").fill("SELECT 7 AS seven")
    dialog.get_by_test_id("widget-settings-submit").click()
    for page in (alice, bob):
        expect(_widget_el(page, "Settings").get_by_test_id("kpi-value")).to_have_text("7")

    # A new widget gets its settings in the add dialog.
    alice.get_by_test_id("add-widget").click()
    add = alice.get_by_test_id("add-widget-dialog")
    add.get_by_test_id("new-widget-title").fill("Added")
    add.get_by_test_id("new-widget-sql").fill("SELECT count(*) AS n FROM orders")
    add.get_by_test_id("refresh-interval").select_option("60")
    add.get_by_test_id("new-widget-submit").click()
    added = _widget_el(bob, "Added")
    expect(added.get_by_test_id("widget-schedule")).to_have_text("every 1 min")
    expect(added.get_by_test_id("result-kpi").or_(added.get_by_test_id("result-table")).first).to_be_visible()


def test_screenshot_of_a_live_dashboard(people, demo_server, tmp_path):
    from playwright.sync_api import expect

    dashboard = _dashboard(demo_server, [
        _widget("Lucky number", RANDOM_KPI, w=4, h=3, interval_s=5),
        _widget("Orders", "SELECT count(*) AS orders FROM orders", x=4, w=4, h=3, on_change=True),
        _widget("Broken widget", FAILING, x=8, w=4, h=3),
        _widget("Revenue by region", BY_REGION, y=3, w=7, h=5, interval_s=30, on_change=True),
        _widget("Revenue by region (table)", BY_REGION, x=7, y=3, w=5, h=5),
    ])
    page = _open_dashboard(people(demo_server, "alice"), demo_server, dashboard)
    _open_dashboard(people(demo_server, "bob"), demo_server, dashboard)  # two people watching
    _kpi(page, "Orders")
    expect(_widget_el(page, "Revenue by region").get_by_test_id("result-chart").locator(".main-svg").first).to_be_visible()
    expect(page.get_by_test_id("presence-avatar")).to_have_count(2)
    _widget_el(page, "Revenue by region (table)").locator("[data-testid=view-tab][data-view=table]").click()
    # Catch the KPI just after a refresh, its change still highlighted.
    value = _kpi(page, "Lucky number")
    _widget_el(page, "Lucky number").get_by_test_id("widget-refresh").click()
    expect(_widget_el(page, "Lucky number").get_by_test_id("kpi-value")).not_to_have_text(value)
    time.sleep(0.2)
    shots = SCREENSHOTS if os.environ.get("LIVEBI_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "live-dashboard.png"))


# The widget's live states, driven directly with publications (the page's own modules).
STATES = """
async () => {
  const L = await import("/static/js/livewidget.js");
  const R = await import("/static/js/refreshform.js");
  const out = {};
  let now = Date.parse("2026-01-01T10:00:10Z");
  const clock = new L.ServerClock({ now: () => now });
  const w = new L.LiveWidget({ clock, onAsk: () => {} });
  document.body.append(w.el);
  const t = (s) => `2026-01-01T10:00:${String(s).padStart(2, "0")}.000000+00:00`;
  const result = (rows, extra = {}) => ({ question: null, sql: "SELECT 1", warehouse: "demo", columns: ["region", "n"],
    column_kinds: ["text", "number"], rows, row_count: rows.length, truncated: false, chart: { type: "table" }, ...extra });
  const settle = () => new Promise((r) => setTimeout(r, 50));
  const snap = () => ({ state: w.el.dataset.state, renders: w.el.dataset.renders, time: w.timeEl.textContent,
    datetime: w.timeEl.getAttribute("datetime"), change: w.changeEl.textContent, stateText: w.stateEl.textContent,
    error: w.errorEl.hidden ? null : w.errorEl.textContent, stale: w.stack.classList.contains("stale"),
    progress: w.progressEl.hidden ? null : (w.progressEl.getAttribute("aria-valuenow") || "indeterminate"),
    cells: [...w.el.querySelectorAll("td")].map((td) => td.textContent),
    changed: [...w.el.querySelectorAll(".live-changed")].map((el) => el.textContent), cards: w.stack.children.length });

  out.waiting = snap();
  w.apply({ state: "done", timestamp: t(1), data: result([["EMEA", 10], ["APAC", 20]]) });
  await settle();
  out.first = snap();
  w.apply({ state: "running", timestamp: t(2), progress: null });
  out.running = snap();
  w.apply({ state: "running", timestamp: t(3), progress: 42.4 });
  out.percent = snap();
  w.apply({ state: "done", timestamp: t(4), data: result([["APAC", 25], ["EMEA", 10], ["LATAM", 5]]) });
  await settle();
  out.changed = snap();
  // An older refresh arriving late (a snapshot racing the publications) changes nothing.
  out.lateApplied = w.apply({ state: "done", timestamp: t(3), data: result([["OLD", 1]]) });
  now = Date.parse("2026-01-01T10:00:16Z");
  w.tick();
  out.ticked = snap();
  w.apply({ state: "unchanged", timestamp: t(7) });
  w.tick();
  out.unchanged = snap();
  w.apply({ state: "failed", timestamp: t(8), error: { stage: "data_processing", code: "timeout", message: "the query took <b>too</b> long" } });
  out.failed = snap();
  w.apply({ state: "done", timestamp: t(9), data: result([["APAC", 25], ["EMEA", 11], ["LATAM", 5]]) });
  await settle();
  out.recovered = snap();
  // Someone working in the widget (focus on its table tab) is not interrupted: the new result
  // waits until focus leaves the widget.
  w.el.querySelector("[data-testid=view-tab][data-view=sql]").focus();
  w.apply({ state: "done", timestamp: t(11), data: result([["APAC", 26], ["EMEA", 11], ["LATAM", 5]]) });
  await settle();
  out.deferred = { ...snap(), focused: document.activeElement.dataset.view };
  document.activeElement.blur();
  await settle();
  out.released = snap();
  w.expectNew();
  out.expectNew = snap();

  // Pure helpers.
  out.summary = [
    L.changeSummary(L.resultChanges(result([["A", 1]]), result([["A", 2], ["B", 3]]))),
    L.changeSummary(L.resultChanges(result([["A", 1], ["B", 2]]), result([["A", 1]]))),
    L.changeSummary(L.resultChanges(result([["A", 1]]), result([["A", 1]]))),
    L.changeSummary(L.resultChanges(null, result([["A", 1]]))),
    L.changeSummary(L.resultChanges(result([["A", 1]]), result([["A", 1, 2]], { columns: ["a", "b", "c"] }))),
    L.changeSummary(L.resultChanges(result([[1]], { chart: { type: "kpi", kpi: { value: 1, formatted: "$1" } } }),
                                    result([[2]], { chart: { type: "kpi", kpi: { value: 2, formatted: "$2" } } }))),
  ];
  out.ages = [0, 999, 1000, 59999, 60000, 3600000, 90000000].map(L.ageText);
  const skewed = new L.ServerClock({ now: () => Date.parse("2026-01-01T10:01:00Z") });
  skewed.observe("2026-01-01T10:00:00Z");  // this browser's clock is a minute ahead
  out.skew = [skewed.offsetMs, skewed.age("2026-01-01T09:59:50Z")];
  out.intervals = [5, 60, 90, 300, 7200].map(L.intervalText);
  const err = (f) => { try { return f(); } catch (e) { return e.message; } };
  out.read = [R.readRefresh("off", "", false), R.readRefresh("30", "", true), R.readRefresh("custom", " 45 ", false),
    err(() => R.readRefresh("custom", "1.5", false)), err(() => R.readRefresh("custom", "86401", false))];
  out.choice = [null, 5, 300, 45].map(R.intervalChoice);
  return out;
}
"""


def test_live_widget_states_in_the_page_module(open_page, demo_server):
    out = open_page(demo_server, "/health").evaluate(STATES)

    assert out["waiting"]["state"] == "waiting" and out["waiting"]["time"] == ""
    first = out["first"]
    assert first["state"] == "done" and first["renders"] == "1" and first["change"] == ""  # nothing to compare with
    assert first["datetime"] == "2026-01-01T10:00:01.000000+00:00" and first["time"] == "updated 9 s ago"
    assert out["running"]["progress"] == "indeterminate" and out["running"]["cells"] == first["cells"]  # result kept
    assert out["percent"]["progress"] == "42"
    changed = out["changed"]
    assert changed["progress"] is None and changed["renders"] == "2" and changed["cards"] == 1
    # Rows matched by region: APAC's revenue changed, LATAM is new, EMEA is the same.
    assert changed["change"] == "1 value changed, 1 new row"
    assert sorted(changed["changed"]) == ["25", "LATAM5"], changed
    assert out["lateApplied"] is False
    assert out["ticked"]["time"] == "updated 12 s ago" and out["ticked"]["renders"] == "2"
    unchanged = out["unchanged"]
    assert unchanged["time"] == "updated 9 s ago" and unchanged["renders"] == "2" and unchanged["datetime"].startswith("2026-01-01T10:00:07")
    failed = out["failed"]
    assert failed["state"] == "stale" and failed["stale"] and failed["cells"] == changed["cells"]  # last good result kept
    assert failed["error"] == "Refresh failed during Data (querying data): the query took <b>too</b> long (timeout)"
    assert failed["stateText"] == "stale: showing the last good result" and failed["time"] == "updated 9 s ago"
    recovered = out["recovered"]
    assert recovered["state"] == "done" and not recovered["stale"] and recovered["error"] is None
    assert recovered["change"] == "1 value changed" and recovered["changed"] == ["11"]
    deferred = out["deferred"]
    assert deferred["renders"] == "3" and deferred["focused"] == "sql" and deferred["time"] == "updated 5 s ago"
    assert deferred["change"] == "new result: shown when you leave this widget"
    released = out["released"]
    assert released["renders"] == "4" and released["change"] == "1 value changed" and released["changed"] == ["26"]
    assert out["expectNew"]["state"] == "waiting" and out["expectNew"]["cells"] == [] and out["expectNew"]["time"] == ""

    assert out["summary"] == ["1 value changed, 1 new row", "1 row removed", "", "", "new columns", "value was $1"]
    assert out["ages"] == ["just now", "just now", "1 s ago", "59 s ago", "1 min ago", "1 h ago", "1 d ago"]
    assert out["skew"] == [60_000, 10_000]
    assert out["intervals"] == ["5 s", "1 min", "90 s", "5 min", "2 h"]
    assert out["read"][:3] == [{"interval_s": None, "on_data_change": False}, {"interval_s": 30, "on_data_change": True},
                               {"interval_s": 45, "on_data_change": False}]
    assert all("whole seconds from 1 to 86,400" in message for message in out["read"][3:])
    assert out["choice"] == ["off", "5", "300", "custom"]


@pytest.fixture(scope="module")
def forgetful_server(tmp_path_factory):
    """Live dashboards on, but no memory for widgets' latest results (live_cache_bytes=0)."""
    with _demo(tmp_path_factory.mktemp("ui-live-nocache"), {"LIVEBI_LIVE_CACHE_BYTES": "0"}) as base:
        yield base


def test_widget_the_server_said_nothing_about_is_refreshed(people, forgetful_server):
    """A viewer joining a watched dashboard whose latest results the server no longer keeps
    (evicted) gets nothing from /live and no refresh is on its way: after a few seconds the page
    asks the server for one (the `refresh` op, shared with everyone watching), never the question."""
    from playwright.sync_api import expect

    # A result that differs on every run: the server sends only results that differ from the
    # last one it sent, and it keeps the digest of a result too big for its cache (here: any),
    # so a result equal to the last would come as `unchanged`, without data.
    dashboard = _dashboard(forgetful_server, [_widget("Counted", RANDOM_KPI)])
    alice = _open_dashboard(people(forgetful_server, "alice"), forgetful_server, dashboard)
    expect(_widget_el(alice, "Counted").get_by_test_id("kpi-value")).to_be_visible()
    bob = _open_dashboard(people(forgetful_server, "bob"), forgetful_server, dashboard)
    widget = _widget_el(bob, "Counted")
    expect(widget.get_by_test_id("widget-waiting")).to_have_text("Waiting for the server's refresh…")
    expect(widget.get_by_test_id("kpi-value")).to_be_visible(timeout=15_000)
    widget_id = widget.get_attribute("data-widget-id")
    assert [(f["dashboard_id"], f.get("widget_id")) for f in _ops(bob, "refresh")] == [(dashboard, widget_id)]
    assert _ops(bob, "ask") == [] and _ops(alice, "refresh") == []


def test_the_demo_simulator_moves_live_sales_through_data_changes(people, demo_server):
    """`livebi demo` inserts orders through the ingest path (2 a second by default): the "Live
    sales" dashboard's widgets refresh on each change (their interval is 30 s, so a re-render
    within seconds is the data change), every viewer sees it, and no page asks anything."""
    from playwright.sync_api import expect

    alice = _login_api(demo_server, "alice")
    [live_sales] = [d for d in _api(demo_server, alice, "GET", "/api/dashboards")["dashboards"] if d["title"] == "Live sales"]
    pages = [_open_dashboard(people(demo_server, name), demo_server, live_sales["id"]) for name in ("alice", "bob")]
    for page in pages:
        expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
        widget = _widget_el(page, page.get_by_test_id("widget-title").first.text_content())
        live = widget.get_by_test_id("live-widget")
        expect(live).to_have_attribute("data-renders", re.compile(r"^[1-9]"))
        renders = int(live.get_attribute("data-renders"))
        page.wait_for_function(
            "([el, n]) => Number(el.dataset.renders) > n + 1", arg=[live.element_handle(), renders], timeout=20_000)
        assert _ops(page, "ask") == []
