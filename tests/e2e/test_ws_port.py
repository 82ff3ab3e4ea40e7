"""The browser on a server with ``ws_server = "websockets"``: it learns the WebSocket port from
``/api/config``, connects there (the page's CSP allows it), and questions are answered over it."""

from __future__ import annotations

import httpx
import pytest

from .conftest import _demo, _free_port, log_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ws_port_server(tmp_path_factory):
    port = _free_port()
    with _demo(tmp_path_factory.mktemp("ui-ws-port"), {"LIVEBI_WS_SERVER": "websockets", "LIVEBI_WS_PORT": str(port)}) as base:
        assert httpx.get(f"{base}/api/config").json()["websocket_port"] == port
        yield base, port


def test_the_page_connects_to_the_websocket_port_and_gets_answers(open_page, ws_port_server):
    from playwright.sync_api import expect

    base, port = ws_port_server
    page = open_page(base)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    log_in(page, base, "demo")
    expect(page.get_by_test_id("transport-badge")).to_have_text("ws")
    assert sockets and all(f":{port}/ws" in url for url in sockets), sockets

    page.get_by_test_id("question-input").fill("total revenue by region")
    page.get_by_test_id("question-input").press("Enter")
    card = page.get_by_test_id("query-card").first
    expect(card.get_by_test_id("result-chart").locator(".plot-container, svg").first).to_be_visible()
    assert card.get_by_test_id("progress-percent").inner_text().strip() == "100%"
    assert not violations, violations
    assert not page.console_errors, page.console_errors
