"""Browser test fixtures: Debian's chromium driven by Playwright against real `livebi demo` servers.

Skips loudly when /usr/bin/chromium or Playwright is missing; ``LIVEBI_REQUIRE_SERVICES=1`` turns
the skip into a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REQUIRE_SERVICES = os.environ.get("LIVEBI_REQUIRE_SERVICES") == "1"
CHROMIUM = Path(os.environ.get("LIVEBI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 60.0


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"*** {reason}: REQUIRED by LIVEBI_REQUIRE_SERVICES=1 ***")
    pytest.skip(f"*** {reason}: browser test SKIPPED ***")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        _skip_or_fail(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip_or_fail("the playwright Python package is not installed")
    return str(CHROMIUM)


@contextmanager
def _demo(data_dir: Path, env: dict[str, str] | None = None, *, port: int | None = None, started=None):
    """`livebi demo` on a free port with a small generated warehouse; yields its base URL.

    ``env`` adds LIVEBI_* settings (the server's Settings read them), e.g. HTTP-only mode.
    ``port`` reuses a port (a restarted server); ``started(proc)`` gets the server process.
    """
    port = port or _free_port()
    log_path = data_dir / "server.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "livebi.cli", "demo", "--port", str(port), "--rows", "20000",
         "--data-dir", str(data_dir), "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    if started is not None:
        started(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"livebi demo exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"livebi demo did not answer /health within {SERVER_START_TIMEOUT_S:.0f} s:\n"
                            f"{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """A normal demo server (WebSocket and SSE)."""
    with _demo(tmp_path_factory.mktemp("ui-demo")) as base:
        yield base


@pytest.fixture(scope="session")
def non_live_server(tmp_path_factory):
    """A demo server with live dashboards off: each viewer's page runs the widgets itself."""
    with _demo(tmp_path_factory.mktemp("ui-not-live"), {"LIVEBI_LIVE_DASHBOARDS": "false"}) as base:
        yield base


@pytest.fixture(scope="session")
def http_only_server(tmp_path_factory):
    """A demo server in HTTP-only mode: `/ws` refuses (4003), `/api/config` says websocket false."""
    with _demo(tmp_path_factory.mktemp("ui-http-only"), {"LIVEBI_WEBSOCKET": "false"}) as base:
        assert httpx.get(f"{base}/api/config").json()["websocket"] is False
        yield base


@pytest.fixture(scope="module")
def browser(chromium_path):
    """One chromium per module; each test gets fresh contexts.

    Not per session: Playwright's sync API keeps an event loop running while it is open, and
    asyncio tests collected after it would fail with "cannot be called from a running loop".
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def record_problems(page) -> None:
    """Collect the page's uncaught errors, console errors and warnings in ``page.problems``."""
    page.problems = []
    page.on("pageerror", lambda exc: page.problems.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: page.problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)


def api_login(base: str, username: str) -> str:
    """A bearer token for ``username`` (the demo's password is the name)."""
    response = httpx.post(f"{base}/api/login", json={"username": username, "password": username}, timeout=10)
    response.raise_for_status()
    return response.json()["token"]


def api_call(base: str, token: str, method: str, path: str, **kwargs):
    """One REST call with the bearer token; the JSON answer ({} when empty)."""
    response = httpx.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else {}


def log_in(page, base: str, username: str) -> None:
    """Open the app at ``base`` and log in as ``username`` (the demo's password is the name)."""
    from playwright.sync_api import expect

    page.goto(base + "/")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(username)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")


def close_and_check(opened) -> None:
    """Close each ``(username, context, page)``; fail on any CSP violation (recorded in
    ``window.__cspViolations`` by the test's init script) or problem (:func:`record_problems`)."""
    problems = {}
    for username, context, page in opened:
        if not page.is_closed():
            violations = page.evaluate("window.__cspViolations")
            if violations or page.problems:
                problems[username] = violations + page.problems
        context.close()
    assert not problems, problems


@pytest.fixture
def open_page(browser):
    """`open_page(base_url, path="/")` -> a fresh page in its own browser context on that server
    (a path other than the app, e.g. /health, loads fast for tests that only import modules).

    Uncaught page errors fail the test; `page.console_errors` collects console errors.
    """
    errors: list[str] = []
    contexts = []

    def _open(base: str, path: str = "/"):
        context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
        page.set_default_timeout(30_000)
        page.goto(base + path)
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(open_page, demo_server):
    return open_page(demo_server)
