"""A remote data agent that goes away and comes back, as a user of the browser UI sees it: the
server's ``service_degradation`` on ``system`` shows in the degradation banner, and the banner
goes when the agent is back (tests/integration/test_remote_agents.py covers the pool itself)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import _demo, _free_port, log_in

pytestmark = pytest.mark.browser

TOKEN = "browser-agent-test-token"
WAIT_MS = 20_000  # a loaded 2-core machine: agents start, connect and fail in seconds, not milliseconds
SCREENSHOT = Path(os.environ.get("LIVEBI_UI_AGENT_SCREENSHOT", "/tmp/livebi-ui-agent-degraded.png"))


def _start_agent(port: int, warehouse: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "LIVEBI_AGENT_TOKEN": TOKEN, "LIVEBI_DATA_DIR": str(log.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "livebi.cli", "agent", "data", "--port", str(port),
                             "--warehouse", f"demo=duckdb:///{warehouse}", "--log-level", "warning"],
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the data agent did not start")


def _ask(page, question: str):
    page.get_by_test_id("question-input").fill(question)
    page.get_by_test_id("question-input").press("Enter")
    return page.get_by_test_id("query-card").last


def test_a_lost_data_agent_shows_in_the_banner_until_it_is_back(open_page, tmp_path) -> None:
    from playwright.sync_api import expect

    port = _free_port()
    env = {  # the live simulator off: the agent opens the same DuckDB file read-only
        "LIVEBI_DEMO_LIVE_RATE": "0", "LIVEBI_AGENT_TOKEN": TOKEN,
        "LIVEBI_DATA_AGENT_URLS": json.dumps([f"ws://127.0.0.1:{port}"]),
        "LIVEBI_AGENT_WS_FAILURES_BEFORE_HTTP": "1", "LIVEBI_AGENT_CALL_ATTEMPTS": "2",
        "LIVEBI_AGENT_PROBE_INTERVAL_S": "0.5",
        "LIVEBI_RESULT_CACHE_S": "0",  # the same question asked again reaches the agent again
    }
    with _demo(tmp_path, env) as base:
        agent = _start_agent(port, tmp_path / "demo.duckdb", tmp_path / "agent.log")
        try:
            page = open_page(base)
            log_in(page, base, "demo")
            banner = page.get_by_test_id("degradation-banner")
            card = _ask(page, "how many orders")
            expect(card.get_by_test_id("progress-percent")).to_have_text("100%", timeout=WAIT_MS)
            expect(banner).to_be_hidden()

            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
            card = _ask(page, "how many orders")
            expect(card.get_by_test_id("error-message")).to_contain_text("the data agent is unavailable", timeout=WAIT_MS)
            expect(banner).to_be_visible(timeout=WAIT_MS)
            expect(banner).to_contain_text("Service degraded")
            expect(banner).to_contain_text("query service")
            page.screenshot(path=str(SCREENSHOT), full_page=False)

            agent = _start_agent(port, tmp_path / "demo.duckdb", tmp_path / "agent.log")
            expect(banner).to_be_hidden(timeout=30_000)  # the probe found the WebSocket again
            card = _ask(page, "how many orders")
            expect(card.get_by_test_id("progress-percent")).to_have_text("100%", timeout=WAIT_MS)
        finally:
            agent.kill()
            agent.wait(10)
