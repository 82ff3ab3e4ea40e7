"""The web UI in a real browser (Debian's chromium driven by Playwright) against a real demo server.

Fixtures (servers, chromium, pages) are in conftest.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SCREENSHOT = Path(os.environ.get("LIVEBI_UI_SCREENSHOT", "/tmp/livebi-ui.png"))


def _tid(page, testid: str):
    return page.get_by_test_id(testid)


def test_login_rejects_bad_password(page):
    _tid(page, "login-username").fill("demo")
    _tid(page, "login-password").fill("wrong")
    _tid(page, "login-submit").click()
    error = _tid(page, "login-error")
    error.wait_for(state="visible")
    assert error.inner_text().strip()
    assert _tid(page, "question-input").is_hidden()


def test_ask_chart_table_sql_csv_error(page):
    from playwright.sync_api import expect

    # Log in.
    _tid(page, "login-username").fill("demo")
    _tid(page, "login-password").fill("demo")
    _tid(page, "login-submit").click()
    expect(_tid(page, "connection-status")).to_have_attribute("data-state", "connected")
    expect(_tid(page, "transport-badge")).to_have_text("ws")
    expect(_tid(page, "degradation-banner")).to_be_hidden()
    expect(_tid(page, "warehouse-select")).to_have_value("demo")
    expect(_tid(page, "example-chip").first).to_be_visible()

    # Ask; the card shows the three stages, then a chart.
    _tid(page, "question-input").fill("total revenue by region")
    _tid(page, "question-input").press("Enter")
    card = _tid(page, "query-card").first
    expect(card.get_by_test_id("progress-stage")).to_have_count(3)
    chart = card.get_by_test_id("result-chart")
    expect(chart.locator(".plot-container, svg").first).to_be_visible()
    assert card.get_attribute("data-query-id")
    for stage in card.get_by_test_id("progress-stage").all():
        assert "done" in (stage.get_attribute("class") or "")
    assert card.get_by_test_id("progress-percent").inner_text().strip() == "100%"

    # Table view.
    card.locator("[data-testid=view-tab][data-view=table]").click()
    table = card.get_by_test_id("result-table")
    expect(table).to_be_visible()
    assert table.locator("tbody tr").count() >= 1
    header = [h.strip().lower() for h in table.locator("thead th").all_inner_texts()]
    assert any("region" in h for h in header), header

    # SQL view: the generated SQL is editable.
    card.locator("[data-testid=view-tab][data-view=sql]").click()
    sql = card.get_by_test_id("result-sql")
    expect(sql).to_be_visible()
    assert "select" in sql.input_value().lower()
    expect(card.get_by_test_id("run-sql-button")).to_be_enabled()

    # CSV download.
    with page.expect_download() as download_info:
        card.get_by_test_id("download-csv").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    content = Path(download.path()).read_text(encoding="utf-8-sig")
    assert "region" in content.splitlines()[0].lower()
    assert len(content.splitlines()) >= 2

    # History picked the question up.
    expect(_tid(page, "history-item").filter(has_text="total revenue by region").first).to_be_visible()

    # A question nobody can understand fails in the NLP stage with suggestions.
    _tid(page, "question-input").fill("purple monkey dishwasher")
    _tid(page, "ask-button").click()
    expect(_tid(page, "query-card")).to_have_count(2)
    bad = _tid(page, "query-card").nth(1)
    error_box = bad.get_by_test_id("error-box")
    expect(error_box).to_be_visible()
    expect(error_box.get_by_test_id("error-stage")).to_have_attribute("data-stage", "nlp_processing")
    assert error_box.get_by_test_id("suggestion-chip").count() >= 1

    # A suggested question works (spelling hints rewrite the failed question instead).
    error_box.get_by_test_id("suggestion-chip").filter(has_not_text=re.compile("did you mean", re.I)).first.click()
    expect(_tid(page, "query-card")).to_have_count(3)
    third = _tid(page, "query-card").nth(2)
    expect(third.locator("[data-testid=result-chart], [data-testid=result-kpi], [data-testid=result-table]").first).to_be_visible()

    expect(_tid(page, "history-item").filter(has_text="purple monkey dishwasher").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOT), full_page=False)


def _login_and_ask(page):
    """Log in as demo, ask a question and wait for its answer; returns the answer's card."""
    from playwright.sync_api import expect

    _tid(page, "login-username").fill("demo")
    _tid(page, "login-password").fill("demo")
    _tid(page, "login-submit").click()
    expect(_tid(page, "connection-status")).to_have_attribute("data-state", "connected")
    _tid(page, "question-input").fill("total revenue by region")
    _tid(page, "ask-button").click()
    card = _tid(page, "query-card").first
    expect(card.get_by_test_id("download-csv")).to_be_visible()
    return card


def test_run_edited_sql_and_logout(page):
    from playwright.sync_api import expect

    card = _login_and_ask(page)
    card.locator("[data-testid=view-tab][data-view=sql]").click()
    sql = card.get_by_test_id("result-sql")
    sql.fill("SELECT 1 AS one")
    card.get_by_test_id("run-sql-button").click()
    expect(_tid(page, "query-card")).to_have_count(2)
    second = _tid(page, "query-card").nth(1)
    expect(second.get_by_test_id("download-csv")).to_be_visible()
    second.locator("[data-testid=view-tab][data-view=table]").click()
    expect(second.get_by_test_id("result-table").locator("tbody td").first).to_have_text("1")

    # The login is an HttpOnly, SameSite=Strict cookie: no script (nor an injected one) sees it.
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["livebi_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/"
    assert "livebi_session" not in page.evaluate("document.cookie")
    assert page.evaluate("JSON.stringify(Object.keys(sessionStorage))").find("token") == -1
    _tid(page, "logout").click()
    expect(_tid(page, "login-username")).to_be_visible()
    # Logging out revoked the token on the server and cleared the cookies: a copy is worthless now.
    status = page.evaluate(
        """async (token) => {
          for (let i = 0; i < 50; i++) {
            const r = await fetch("/api/me", {headers: {Authorization: `Bearer ${token}`}});
            if (r.status === 401) return 401;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          return 200;
        }""",
        session["value"],
    )
    assert status == 401
    assert "livebi_session" not in {c["name"] for c in page.context.cookies()}


def test_login_survives_a_reload_and_a_new_tab_and_results_can_be_fetched(page):
    from playwright.sync_api import expect

    card = _login_and_ask(page)
    query_id = card.get_attribute("data-query-id")

    for view in (page, page.context.new_page()):
        if view is page:
            page.reload()
        else:
            view.goto(page.url)
        expect(_tid(view, "connection-status")).to_have_attribute("data-state", "connected")
        expect(_tid(view, "login-username")).to_be_hidden()
        stored = view.evaluate(
            "async (id) => (await import('/static/js/api.js')).queryResult(id)", query_id)
        assert stored["query_id"] == query_id and stored["row_count"] == 5
