"""An alert in a real browser (Debian's chromium): alice sets "Notify me…" on a dashboard widget,
a refresh crosses the threshold, and the notification reaches her page once: a toast, the bell
(count and list) and a browser notification (the Notification API, permission granted to the
context). The server runs in this process (a thread with its own event loop) so the test can
change the data (a write of another SQLite connection) and have the live service refresh the
widget, which hands each new result to the alert service, before the next change.

The screenshot goes to docs/screenshots/ when LIVEBI_UPDATE_SCREENSHOTS=1, else to the test's
temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from livebi.auth import User
from livebi.config import Settings
from livebi.server import build_server

from ..integration.conftest import USERS, _add_users, free_port
from .conftest import record_problems

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SQL = "SELECT sum(amount) AS revenue FROM sales"

# Before any page script (the CSP does not apply to it): count the page's Notification
# constructions and the browser's "show" events, passing everything on to the real API.
INIT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
window.__notes = [];
if (window.Notification) {
  const Real = window.Notification;
  window.Notification = class extends Real {
    constructor(title, options) {
      super(title, options);
      const entry = { title, body: (options && options.body) || "", shown: false, error: false };
      window.__notes.push(entry);
      this.addEventListener("show", () => { entry.shown = true; });
      this.addEventListener("error", () => { entry.error = true; });
    }
  };
}
"""


@dataclass
class InProcessServer:
    base: str
    services: Any
    loop: asyncio.AbstractEventLoop
    sales: Path

    def run(self, coro, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def refresh(self, dashboard_id: str, widget_id: str, total: float) -> None:
        """The data changes and the live service refreshes the widget (a manual refresh, as
        the page's button does); its result goes to the alert service. Returns once the
        widget's latest result shows ``total``."""
        with sqlite3.connect(self.sales) as con:
            con.execute("UPDATE sales SET amount = ?", (total,))
        live = self.services.live

        async def refreshed() -> None:
            await live.refresh_now(dashboard_id, widget_id)
            while True:
                latest = live.snapshot(dashboard_id).get(widget_id) or {}
                if latest.get("state") == "done" and latest["data"]["rows"] == [[total]] and not live.refreshing(dashboard_id, widget_id):
                    return
                await asyncio.sleep(0.02)

        self.run(refreshed())


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_duckdb):
    data = tmp_path_factory.mktemp("alerts-ui")
    sales = data / "sales.sqlite"
    with sqlite3.connect(sales) as con:
        con.execute("CREATE TABLE sales (region TEXT, amount REAL)")
        con.execute("INSERT INTO sales VALUES ('north', 50)")
    settings = Settings(data_dir=data, warehouses={"demo": f"duckdb:///{demo_duckdb}", "live": f"sqlite:///{sales}"},
                        store_url=f"sqlite:///{data / 'meta.db'}", secret_key="test-secret", port=free_port())
    loop = asyncio.new_event_loop()
    uvicorn_server = build_server(settings, log_level="warning")
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(_add_users(settings.resolved_store_url()))
            loop.run_until_complete(uvicorn_server.serve())
        except BaseException as exc:  # noqa: BLE001 - reported by the fixture below
            failure.append(exc)

    thread = threading.Thread(target=serve, name="alerts-ui-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.port}"
    for _ in range(400):
        if uvicorn_server.started or failure or not thread.is_alive():
            break
        threading.Event().wait(0.025)
    assert uvicorn_server.started, f"server did not start: {failure}"
    try:
        yield InProcessServer(base, uvicorn_server.config.app.state.services, loop, sales)
    finally:
        uvicorn_server.should_exit = True
        thread.join(15)
        loop.close()


def _dashboard_with_widget(server: InProcessServer, owner: str) -> tuple[str, str]:
    token = httpx.post(f"{server.base}/api/login", json={"username": owner, "password": USERS[owner]}).json()["token"]
    me = httpx.get(f"{server.base}/api/me", headers={"Authorization": f"Bearer {token}"}).json()["user"]
    user = User(me["id"], me["username"])
    dashboards = server.services.dashboards
    created = server.run(dashboards.create(user, title="Sales floor"))
    edit = server.run(dashboards.edit(created["id"], user, [
        {"type": "add_widget", "widget": {"title": "Revenue", "sql": SQL, "warehouse": "live", "w": 4, "h": 3}}]))
    return created["id"], edit["applied"][0]["data"]["id"]


def test_an_alert_reaches_the_browser_once_per_crossing(browser, server: InProcessServer, tmp_path) -> None:
    from playwright.sync_api import expect

    dashboard_id, widget_id = _dashboard_with_widget(server, "alice")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["notifications"])
    context.add_init_script(INIT)
    page = context.new_page()
    record_problems(page)
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{server.base}/#/dashboards/{dashboard_id}")
        page.get_by_test_id("login-username").fill("alice")
        page.get_by_test_id("login-password").fill(USERS["alice"])
        page.get_by_test_id("login-submit").click()
        widget = page.get_by_test_id("widget")
        expect(widget).to_contain_text("50")
        assert page.evaluate("() => Notification.permission") == "granted"

        # "Notify me…": revenue (the widget's first number column) rises above 100.
        widget.get_by_test_id("widget-alert").click()
        dialog = page.get_by_test_id("alert-dialog")
        expect(dialog.get_by_test_id("alert-column")).to_contain_text("revenue")
        expect(dialog).to_contain_text("Your alerts on this widget")
        expect(dialog.get_by_test_id("alert-row")).to_have_count(0)
        dialog.get_by_test_id("alert-op").select_option(">")
        dialog.get_by_test_id("alert-threshold").fill("100")
        dialog.get_by_test_id("alert-label").fill("Revenue above 100")
        dialog.get_by_test_id("alert-submit").click()
        expect(dialog).to_be_hidden()
        (alert,) = server.run(server.services.alerts.list_for(User(_user_id(server, "alice"), "alice")))
        assert (alert["condition"], alert["state"]) == ("value > 100", "unknown")

        server.refresh(dashboard_id, widget_id, 50)  # below: nothing
        server.refresh(dashboard_id, widget_id, 150)  # crosses
        expect(page.get_by_test_id("bell-badge")).to_have_text("1")
        expect(page.get_by_test_id("toast").last).to_contain_text("Revenue is 150, above 100")
        page.wait_for_function("() => window.__notes.length === 1")
        note = page.evaluate("() => window.__notes[0]")
        assert note["title"] == "Revenue above 100" and note["body"] == "Revenue is 150, above 100" and not note["error"]

        # Still above: nothing; back below and above again: the second crossing, and only it.
        server.refresh(dashboard_id, widget_id, 180)
        server.refresh(dashboard_id, widget_id, 20)
        server.refresh(dashboard_id, widget_id, 300)
        expect(page.get_by_test_id("bell-badge")).to_have_text("2")
        page.wait_for_function("() => window.__notes.length >= 2")
        assert [n["body"] for n in page.evaluate("() => window.__notes")] == [
            "Revenue is 150, above 100", "Revenue is 300, above 100"]

        expect(widget).to_contain_text("300")  # the live service pushed every refresh to the page
        page.get_by_test_id("bell").click()
        items = page.get_by_test_id("notification")
        expect(items).to_have_count(2)
        expect(items.first).to_contain_text("Revenue above 100")
        expect(items.first).to_have_attribute("data-kind", "alert")
        shots = SCREENSHOTS if os.environ.get("LIVEBI_UPDATE_SCREENSHOTS") == "1" else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "alert-notification.png"))

        # Opening an alert's notification from elsewhere opens its dashboard.
        page.keyboard.press("Escape")
        page.get_by_test_id("nav-ask").click()
        expect(page.get_by_test_id("dashboard-page")).to_have_count(0)
        page.get_by_test_id("bell").click()
        items.first.click()
        expect(page.get_by_test_id("dashboard-title")).to_have_text("Sales floor")
        assert page.evaluate("() => location.hash") == f"#/dashboards/{dashboard_id}"

        # The list of my alerts, and deleting one there.
        page.get_by_test_id("bell").click()
        page.get_by_test_id("manage-alerts").click()
        listing = page.get_by_test_id("alerts-list-dialog")
        row = listing.get_by_test_id("alert-row")
        expect(row).to_contain_text("Sales floor › Revenue: Revenue above 100 — value > 100")
        expect(row).to_contain_text("now above")
        row.get_by_test_id("alert-delete").click()
        expect(row).to_have_count(0)
        assert server.run(server.services.alerts.list_for(User(_user_id(server, "alice"), "alice"))) == []
        # The browser displayed both (its "show" event), not only the page's code creating them.
        page.wait_for_function("() => window.__notes.every((n) => n.shown && !n.error)")
        assert not page.evaluate("() => window.__cspViolations")
        assert not page.problems, page.problems
    finally:
        context.close()


def _user_id(server: InProcessServer, username: str) -> str:
    return server.run(server.services.store.get_user(username=username))["id"]
