"""Exposure: what a server answers to callers who are not logged in, the headers every response
carries, and which warehouses each user may query. Real servers on real sockets; the one
in-process test covers a peer address the machine may not have."""

from __future__ import annotations

import json

import base64
import contextlib
import hashlib
import re
import socket
import sqlite3
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest

from livebi.app import create_app
from livebi.config import Settings
from livebi.security_headers import CONTENT_SECURITY_POLICY

from .conftest import LiveServer, free_port, run_server

METRICS_TOKEN = "metrics-secret-token-for-tests"
DETAIL_KEYS = {"connections", "running_queries", "warehouses", "live_dashboards", "change_detection"}


def outside_address() -> str | None:
    """A non-loopback IPv4 address of this machine, or None (then that test skips loudly)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = probe.getsockname()[0]
        if not address.startswith("127."):
            return address
    return None


def _settings(server_settings: Settings, **overrides) -> Settings:
    return server_settings.model_copy(update={"port": free_port(), **overrides})


# --- operator endpoints: /metrics, detailed /health, API docs -------------------------------------


async def test_operator_endpoints_from_loopback_by_default(live_server: LiveServer):
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "livebi_" in metrics.text
        health = (await http.get("/health")).json()
        assert health["status"] == "ok" and DETAIL_KEYS <= set(health)
        assert (await http.get("/livez")).json() == {"status": "ok"}
        # API docs are off by default, even for loopback.
        assert (await http.get("/api/docs")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 404


async def test_operator_endpoints_refused_to_a_network_peer(server_settings: Settings):
    """A real server bound to a non-loopback address: the peer is not loopback."""
    address = outside_address()
    if address is None:
        pytest.skip("*** no non-loopback IPv4 address on this machine: test SKIPPED "
                    "(test_operator_endpoints_in_process_non_loopback covers the same rule) ***")
    settings = _settings(server_settings, host=address)
    async with run_server(settings):
        async with httpx.AsyncClient(base_url=f"http://{address}:{settings.port}") as http:
            metrics = await http.get("/metrics")
            assert metrics.status_code == 403
            assert "livebi_" not in metrics.text
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert (await http.get("/livez")).json() == {"status": "ok"}
            assert (await http.get("/api/docs")).status_code == 404
            assert (await http.get("/openapi.json")).status_code == 404


async def test_operator_endpoints_in_process_non_loopback(server_settings: Settings):
    """The same rule with the app in process and a documentation address as the peer."""
    app = create_app(_settings(server_settings, api_docs="loopback"))

    def client(host: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app, client=(host, 40000)), base_url="http://livebi")

    async with app.router.lifespan_context(app), client("203.0.113.7") as outside, client("127.0.0.1") as inside:
        assert (await outside.get("/metrics")).status_code == 403
        assert (await outside.get("/health")).json() == {"status": "ok"}
        assert (await outside.get("/api/docs")).status_code == 403
        assert (await outside.get("/openapi.json")).status_code == 403

        assert (await inside.get("/metrics")).status_code == 200
        assert DETAIL_KEYS <= set((await inside.get("/health")).json())
        assert (await inside.get("/openapi.json")).json()["info"]["title"] == "livebi"
        docs = await inside.get("/api/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        # Its own policy: the CDN it loads from, and its one inline script by hash, nothing more.
        policy = docs.headers["content-security-policy"]
        inline = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
        assert len(inline) == 1
        digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
        assert f"script-src https://cdn.jsdelivr.net 'sha256-{digest}';" in policy
        assert "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
        assert docs.headers["x-frame-options"] == "DENY"


async def test_loopback_peer_with_forwarding_headers_is_treated_as_proxied(live_server: LiveServer):
    """A reverse proxy on the same host connects from loopback; the headers it adds give it away."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        for header in ({"X-Forwarded-For": "198.51.100.4"}, {"Forwarded": "for=198.51.100.4"},
                       {"X-Real-IP": "198.51.100.4"}, {"X-Forwarded-For": "127.0.0.1"}):
            assert (await http.get("/metrics", headers=header)).status_code == 403, header
            assert (await http.get("/health", headers=header)).json() == {"status": "ok"}, header


async def test_metrics_token_mode(server_settings: Settings):
    settings = _settings(server_settings, metrics_access="token", metrics_token=METRICS_TOKEN)
    async with run_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            # Loopback is not enough in token mode: a proxy in front would be loopback too.
            refused = await http.get("/metrics")
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
            # A user's login token is not the metrics token.
            user_token = await server.token("alice")
            assert (await http.get("/metrics", headers={"Authorization": f"Bearer {user_token}"})).status_code == 401
            assert (await http.get("/health")).json() == {"status": "ok"}
            good = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            assert (await http.get("/metrics", headers=good)).status_code == 200
            assert DETAIL_KEYS <= set((await http.get("/health", headers=good)).json())


async def test_metrics_public_mode(server_settings: Settings):
    settings = _settings(server_settings, metrics_access="public")
    async with run_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"})).status_code == 200


def test_token_mode_needs_a_token(tmp_path: Path):
    with pytest.raises(ValueError, match="metrics_token"):
        Settings(data_dir=tmp_path, metrics_access="token")
    with pytest.raises(ValueError, match="metrics_token"):
        Settings(data_dir=tmp_path, metrics_access="token", metrics_token="short")


# --- security headers ----------------------------------------------------------------------------


async def test_security_headers_on_every_kind_of_response(live_server: LiveServer):
    token = await live_server.token("alice")
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        responses = {
            "html": await http.get("/"),
            "module": await http.get("/static/js/app.js"),
            "css": await http.get("/static/style.css"),
            "plotly": await http.get("/static/vendor/plotly.min.js"),
            "api": await http.get("/api/warehouses", headers={"Authorization": f"Bearer {token}"}),
            "api-401": await http.get("/api/warehouses"),
            "login-422": await http.post("/api/login", json={}),
            "404": await http.get("/no/such/page"),
            "health": await http.get("/health"),
            "metrics": await http.get("/metrics"),
        }
    for kind, response in responses.items():
        headers = response.headers
        assert headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, kind
        assert headers.get("x-frame-options") == "DENY", kind
        assert headers.get("referrer-policy") == "no-referrer", kind
        assert headers.get("x-content-type-options") == "nosniff", kind
    csp = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"  # no inline scripts, no eval
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert csp["base-uri"] == "'none'"


def test_index_html_has_nothing_inline(server_settings: Settings):
    """The CSP forbids inline scripts and handlers: the page must not need them."""
    from livebi.app import WEB_DIR

    html = (WEB_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert "javascript:" not in html


# --- per-warehouse access ------------------------------------------------------------------------


def _secret_sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE payroll (employee TEXT, salary REAL)")
        db.executemany("INSERT INTO payroll VALUES (?, ?)", [("ann", 100.0), ("ben", 200.0)])
    return path


@pytest.fixture
async def two_warehouses(server_settings: Settings, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """"secret" (first, so the default) is alice's only; "demo" is not listed, so open to all."""
    secret = _secret_sqlite(tmp_path / "secret.sqlite")
    demo = server_settings.warehouses["demo"]
    settings = _settings(server_settings, warehouses={"secret": f"sqlite:///{secret}", "demo": demo},
                         warehouse_access={"secret": ["alice"]})
    async with run_server(settings) as server:
        yield server


async def test_warehouse_access_over_rest(two_warehouses: LiveServer):
    server = two_warehouses
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        async def get(user: str, path: str, **params):
            headers = {"Authorization": f"Bearer {await server.token(user)}"}
            return await http.get(path, headers=headers, params=params)

        alice = (await get("alice", "/api/warehouses")).json()["warehouses"]
        assert [(w["name"], w["default"]) for w in alice] == [("secret", True), ("demo", False)]
        bob = (await get("bob", "/api/warehouses")).json()["warehouses"]
        assert [(w["name"], w["default"]) for w in bob] == [("demo", True)]

        assert (await get("alice", "/api/examples", warehouse="secret")).status_code == 200
        refused = await get("bob", "/api/examples", warehouse="secret")
        assert refused.status_code == 403
        # Without a name, bob's default is the first warehouse he may use, not the global one.
        assert (await get("bob", "/api/examples")).status_code == 200
        unknown = await get("bob", "/api/examples", warehouse="nope")
        assert unknown.status_code == 404 and "secret" not in unknown.text

        # Details on /health list warehouse names: they are for operators only (loopback here).
        assert "secret" in (await http.get("/health")).json()["warehouses"]


async def test_warehouse_access_over_websocket(two_warehouses: LiveServer):
    server = two_warehouses
    alice = await server.connect("alice")
    bob = await server.connect("bob")
    try:
        sql = "SELECT employee, salary FROM payroll"
        reply = await bob.op("ask", sql=sql, warehouse="secret")
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden", reply

        unknown = await bob.op("ask", sql=sql, warehouse="nope")
        assert unknown["error"]["code"] == "unknown_warehouse"
        assert "secret" not in unknown["error"]["message"]  # no names bob may not use

        # No warehouse named: bob's question runs on the first warehouse he may use.
        reply = await bob.op("ask", sql="SELECT count(*) AS n FROM orders")
        assert reply["ok"], reply
        final = await bob.until_final(reply["data"]["channel"])
        assert final["type"] == "result" and final["data"]["warehouse"] == "demo", final

        reply = await alice.op("ask", sql=sql, warehouse="secret")
        final = await alice.until_final(reply["data"]["channel"])
        assert final["type"] == "result" and final["data"]["row_count"] == 2
        reply = await alice.op("ask", sql=sql)  # alice's default is the global default
        final = await alice.until_final(reply["data"]["channel"])
        assert final["type"] == "result" and final["data"]["warehouse"] == "secret"
    finally:
        await alice.close()
        await bob.close()


async def test_warehouse_access_over_http_fallback(two_warehouses: LiveServer):
    """The SSE transport's POSTed ops go through the same session check."""
    server = two_warehouses
    token = await server.token("bob")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        async with http.stream("GET", "/sse", params={"ticket": await server.ticket("bob")}) as stream:
            assert stream.status_code == 200
            conn_id = None
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    conn_id = json.loads(line[5:])["conn_id"]
                    break
            reply = await http.post(f"/sse/ops?conn={conn_id}", headers={"Authorization": f"Bearer {token}"},
                                    json={"id": 1, "op": "ask", "sql": "SELECT 1 AS x FROM payroll", "warehouse": "secret"})
            assert reply.json()["error"]["code"] == "forbidden"


def test_warehouse_access_naming_an_unknown_warehouse_stops_startup(server_settings: Settings):
    """A typo would leave the intended warehouse open to everyone: refuse it."""
    with pytest.raises(ValueError, match="sercet"):
        create_app(_settings(server_settings, warehouse_access={"sercet": ["alice"]}))
