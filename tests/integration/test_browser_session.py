"""The browser's login cookie on a real server: HttpOnly SameSite=Strict session cookie plus a
CSRF cookie; REST and tickets work with it, state-changing requests need X-CSRF-Token, bearer
clients are unaffected, logout clears it."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import AsyncIterator

import httpx
import pytest

from .conftest import USERS, LiveServer, WSClient, run_server

import websockets


def _set_cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    """name -> attributes (lower-case keys, 'value' for the value) of every Set-Cookie."""
    found: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            attrs = {k.lower(): str(v) for k, v in morsel.items() if v}
            # SimpleCookie keeps flags as True; keep track of them by name
            found[name] = {"value": morsel.value, **attrs, "raw": header}
    return found


async def _browser(server: LiveServer, username: str = "alice") -> httpx.AsyncClient:
    """An HTTP client that logs in as a browser does and keeps cookies (and nothing else)."""
    http = httpx.AsyncClient(base_url=server.base_url, timeout=20)
    r = await http.post("/api/login", json={"username": username, "password": USERS[username]})
    assert r.status_code == 200, r.text
    return http


def _csrf(http: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": http.cookies["livebi_csrf"]}


@pytest.fixture
async def server(server_settings) -> AsyncIterator[LiveServer]:
    async with run_server(server_settings.model_copy(update={"op_rate_per_s": 0})) as s:
        yield s


async def test_login_sets_an_httponly_strict_session_cookie_and_a_csrf_cookie(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        r = await http.post("/api/login", json={"username": "alice", "password": "alice-pw"})
    cookies = _set_cookies(r)
    session, csrf = cookies["livebi_session"], cookies["livebi_csrf"]
    assert session["value"] == r.json()["token"]
    assert "HttpOnly" in session["raw"] and "HttpOnly" not in csrf["raw"], "scripts read the CSRF token, never the session"
    for cookie in (session, csrf):
        assert cookie["samesite"].lower() == "strict" and cookie["path"] == "/"
        assert int(cookie["max-age"]) == server.app.state.services.settings.token_ttl_s
        assert "Secure" not in cookie["raw"], "plain http: a Secure cookie would never come back"
    assert csrf["value"] and csrf["value"] != session["value"]
    failed = await httpx.AsyncClient(base_url=server.base_url).post(
        "/api/login", json={"username": "alice", "password": "wrong"})
    assert failed.status_code == 401 and not failed.headers.get_list("set-cookie")


async def test_cookie_authenticates_rest_and_tickets_with_csrf_on_changes(server: LiveServer) -> None:
    http = await _browser(server)
    try:
        assert (await http.get("/api/me")).json()["user"]["username"] == "alice"
        assert (await http.get("/api/history")).status_code == 200
        # A state-changing request with the cookie alone, or a wrong or another session's
        # header, is refused: that is what a forged cross-site request looks like.
        assert (await http.post("/api/ticket")).status_code == 403
        assert (await http.post("/api/ticket", headers={"X-CSRF-Token": "guess"})).status_code == 403
        other = await _browser(server, "bob")
        try:
            assert (await http.post("/api/ticket", headers=_csrf(other))).status_code == 403
            # a planted CSRF cookie (cookie tossing) that matches the header is not enough either
            http.cookies.set("livebi_csrf", other.cookies["livebi_csrf"])
            assert (await http.post("/api/ticket", headers=_csrf(other))).status_code == 403
        finally:
            await other.aclose()
        assert (await http.post("/api/logout")).status_code == 403, "logout too needs the header"
    finally:
        await http.aclose()

    http = await _browser(server)
    try:
        r = await http.post("/api/ticket", headers=_csrf(http))
        assert r.status_code == 200, r.text
        ws = WSClient(await websockets.connect(f"{server.ws_url}?ticket={r.json()['ticket']}", max_size=None))
        try:
            assert (await ws.op("ping"))["ok"], "the cookie's ticket opens a WebSocket"
        finally:
            await ws.close()
    finally:
        await http.aclose()


async def test_bearer_clients_are_unaffected_by_cookies(server: LiveServer) -> None:
    token = await server.token("bob")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        # No CSRF header needed with a bearer token, whatever cookies come along.
        http.cookies.set("livebi_session", "garbage")
        r = await http.post("/api/ticket", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["user"]["username"] == "bob"
        # The header decides: a bad bearer token is not rescued by a good cookie.
        browser = await _browser(server)
        try:
            http.cookies.set("livebi_session", browser.cookies["livebi_session"])
            assert (await http.get("/api/me", headers={"Authorization": "Bearer forged.token"})).status_code == 401
        finally:
            await browser.aclose()
        http.cookies.set("livebi_session", "garbage")
        assert (await http.get("/api/me")).status_code == 401, "an invalid cookie is no session"


async def test_sse_ops_take_the_cookie_with_its_csrf_header(server: LiveServer) -> None:
    http = await _browser(server)
    try:
        ticket = (await http.post("/api/ticket", headers=_csrf(http))).json()["ticket"]
        async with http.stream("GET", "/sse", params={"ticket": ticket}) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("data:"):
                    conn_id = json.loads(line[5:])["conn_id"]
                    break
            ping = {"id": 1, "op": "ping"}
            assert (await http.post(f"/sse/ops?conn={conn_id}", json=ping)).status_code == 403
            r = await http.post(f"/sse/ops?conn={conn_id}", json=ping, headers=_csrf(http))
            assert r.status_code == 200 and r.json()["ok"], r.text
    finally:
        await http.aclose()


async def test_logout_revokes_and_clears_both_cookies(server: LiveServer) -> None:
    http = await _browser(server)
    try:
        session = http.cookies["livebi_session"]
        ws = await server.connect("alice")
        r = await http.post("/api/logout", headers=_csrf(http))
        assert r.status_code == 200 and r.json()["revoked"] is True
        cleared = _set_cookies(r)
        for name in ("livebi_session", "livebi_csrf"):
            assert cleared[name]["max-age"] == "0" and not cleared[name]["value"], cleared
        assert "livebi_session" not in http.cookies
        assert (await ws.wait_closed())[0] == 4001, "logout ends the user's connections"
        # The old cookie value, replayed, is refused; logging out with it still clears cookies.
        async with httpx.AsyncClient(base_url=server.base_url, cookies={"livebi_session": session}) as replay:
            assert (await replay.get("/api/me")).status_code == 401
            again = await replay.post("/api/logout-all", headers={"X-CSRF-Token": "x"})
            assert again.status_code == 403, "a cookie request without its CSRF token changes nothing"
    finally:
        await http.aclose()

    http = await _browser(server)
    try:
        await server.app.state.services.auth.revoke((await http.get("/api/me")).json()["user"]["id"])
        r = await http.post("/api/logout-all", headers=_csrf(http))
        assert r.status_code == 401
        assert _set_cookies(r)["livebi_session"]["max-age"] == "0", "a dead session's cookies are cleared too"
    finally:
        await http.aclose()


@pytest.mark.parametrize(
    ("changes", "headers", "secure"),
    [
        ({"session_cookie_secure": True}, {}, True),
        ({}, {"X-Forwarded-Proto": "https"}, False),  # anyone can send the header
        ({"trusted_proxies": ["127.0.0.1/32"]}, {"X-Forwarded-Proto": "https"}, True),
        ({"trusted_proxies": ["127.0.0.1/32"]}, {"X-Forwarded-Proto": "http"}, False),
    ],
)
async def test_cookies_are_secure_over_https(server_settings, changes, headers, secure) -> None:
    async with run_server(server_settings.model_copy(update=changes)) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            r = await http.post("/api/login", json={"username": "alice", "password": "alice-pw"}, headers=headers)
        for name, cookie in _set_cookies(r).items():
            assert ("Secure" in cookie["raw"]) == secure, (name, cookie["raw"])
