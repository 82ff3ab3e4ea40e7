"""Authorization matrix: every REST endpoint and every op × {anonymous, other user, owner}.

The routes and ops are discovered from the running application and the protocol, so a new
endpoint or op without a row here fails the test until someone decides who may use it.

The owner is alice: she owns a running question, her user channel, her SSE stream, and she is
the only user allowed on the ``secret`` warehouse. The other user is bob, a valid account with no
rights on alice's things. Anonymous callers send no credentials (or garbage ones).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx
import pytest
import websockets

from livebi.protocol import OP_NAMES

from .conftest import LiveServer, run_server

METRICS_TOKEN = "operator-token-for-the-matrix"
SLOW_SQL = (
    "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0"
)
PRINCIPALS = ("anonymous", "other", "owner")


def _routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every HTTP route the app serves, included routers flattened."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None) or getattr(route, "router", None)
            if inner is not None and not hasattr(route, "path"):
                walk(inner.routes)
            elif hasattr(route, "methods") and route.methods:
                found.update((method, route.path) for method in route.methods if method != "HEAD")
            elif hasattr(route, "path"):
                found.add(("WS" if "WebSocket" in type(route).__name__ else "MOUNT", route.path))

    walk(app.routes)
    return found


class World:
    """A server, alice's and bob's tokens, and alice's things."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        # No cookie jar: each principal's credentials are exactly what a row sends (the login
        # rows would otherwise leave a session cookie that makes "anonymous" someone).
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=20,
                                      cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))

    async def setup(self) -> None:
        self.tokens = {"owner": await self.server.token("alice"), "other": await self.server.token("bob")}
        me = await self.get("/api/me", "owner")
        self.alice_id = me.json()["user"]["id"]
        self.alice_ws = await self.server.connect("alice")
        # a finished question of alice's (a stored result, something to share)
        done = await self.alice_ws.op("ask", sql="SELECT count(*) AS n FROM customers")
        assert (await self.alice_ws.until_final(done["data"]["channel"]))["type"] == "result"
        self.done_query_id = done["data"]["query_id"]
        reply = await self.alice_ws.op("ask", sql=SLOW_SQL)
        assert reply["ok"], reply
        self.query_id = reply["data"]["query_id"]
        self.dashboard_id = await self.new_dashboard()
        # alice's SSE stream (its conn id is the resource of /sse/ops)
        self.sse = await self.http.send(
            self.http.build_request("GET", "/sse", params={"ticket": await self.server.ticket("alice")}), stream=True
        )
        assert self.sse.status_code == 200
        # Keep the line iterator: once collected, it would close the stream.
        self._sse_lines = self.sse.aiter_lines()
        async for line in self._sse_lines:
            if line.startswith("data:"):
                self.sse_conn = json.loads(line[5:])["conn_id"]
                break

    async def close(self) -> None:
        await self.sse.aclose()
        await self.alice_ws.close()
        await self.http.aclose()

    def headers(self, principal: str) -> dict[str, str]:
        if principal == "anonymous":
            return {}
        return {"Authorization": f"Bearer {self.tokens[principal]}"}

    async def get(self, path: str, principal: str, **kw: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.headers(principal), **kw)

    async def post(self, path: str, principal: str, **kw: Any) -> httpx.Response:
        return await self.http.post(path, headers=self.headers(principal), **kw)

    async def call(self, method: str, path: str, principal: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.headers(principal), **kw)

    async def new_dashboard(self) -> str:
        """A fresh dashboard of alice's (for rows that change or delete it)."""
        response = await self.post("/api/dashboards", "owner", json={"title": "alice's"})
        assert response.status_code == 201, response.text
        return response.json()["id"]


# -- REST: each row checks one route for one principal -----------------------------------------

Check = Callable[[World, str], Awaitable[None]]


def expect(anonymous: int, other: int, owner: int, call: Callable[[World, str], Awaitable[httpx.Response]]) -> Check:
    want = {"anonymous": anonymous, "other": other, "owner": owner}

    async def check(world: World, principal: str) -> None:
        response = await call(world, principal)
        assert response.status_code == want[principal], (principal, response.status_code, response.text[:300])

    return check


async def _login(world: World, principal: str) -> httpx.Response:
    # Anyone may try; only the right password gets a token (anonymous tries a wrong one).
    creds = {"anonymous": ("alice", "wrong"), "other": ("bob", "bob-pw"), "owner": ("alice", "alice-pw")}[principal]
    return await world.http.post("/api/login", json={"username": creds[0], "password": creds[1]})


async def _history(world: World, principal: str) -> None:
    response = await world.get("/api/history", principal)
    if principal == "anonymous":
        assert response.status_code == 401
        return
    assert response.status_code == 200
    ids = {q["query_id"] for q in response.json()["queries"]}
    assert (world.query_id in ids) == (principal == "owner"), "history shows only the caller's questions"


async def _warehouses(world: World, principal: str) -> None:
    response = await world.get("/api/warehouses", principal)
    if principal == "anonymous":
        assert response.status_code == 401
        return
    names = {w["name"] for w in response.json()["warehouses"]}
    assert ("secret" in names) == (principal == "owner")


def _logout(path: str) -> Check:
    async def check(world: World, principal: str) -> None:
        if principal == "anonymous":
            assert (await world.post(path, "anonymous")).status_code == 401
            return
        # Logging out must never touch another user's sessions: bob logs out, alice's token works.
        if principal == "other":
            assert (await world.post(path, "other")).status_code == 200
            assert (await world.get("/api/me", "owner")).status_code == 200
            world.tokens["other"] = (await world.http.post(
                "/api/login", json={"username": "bob", "password": "bob-pw"})).json()["token"]
        # (the owner's own logout is exercised at the very end, see test body)

    return check


async def _sse_ops(world: World, principal: str) -> None:
    response = await world.post(f"/sse/ops?conn={world.sse_conn}", principal, json={"id": 1, "op": "ping"})
    assert response.status_code == {"anonymous": 401, "other": 403, "owner": 200}[principal], response.text


async def _sse(world: World, principal: str) -> None:
    if principal == "anonymous":
        assert (await world.http.get("/sse")).status_code == 401
        assert (await world.http.get("/sse", params={"ticket": "forged.ticket"})).status_code == 401
        assert (await world.http.get("/sse", params={"token": world.tokens["owner"]})).status_code == 401, \
            "a long-lived token in a URL is refused"
        return
    user = "alice" if principal == "owner" else "bob"
    async with world.http.stream("GET", "/sse", params={"ticket": await world.server.ticket(user)}) as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                assert json.loads(line[5:])["user"]["username"] == user, "a ticket opens its own user's stream"
                break


async def _metrics(world: World, principal: str) -> None:
    # Operator endpoints: a user's login token is not the operator's token.
    assert (await world.get("/metrics", principal)).status_code == 401
    health = (await world.get("/health", principal)).json()
    assert health == {"status": "ok"}, "health details are for the operator only"
    operator = await world.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert operator.status_code == 200


async def _dashboards(world: World, principal: str) -> None:
    response = await world.get("/api/dashboards", principal)
    if principal == "anonymous":
        assert response.status_code == 401
        return
    ids = {d["id"] for d in response.json()["dashboards"]}
    assert (world.dashboard_id in ids) == (principal == "owner"), "the list shows only the caller's dashboards"


def _on_fresh_dashboard(method: str, suffix: str = "", **kw: Any) -> Callable[[World, str], Awaitable[httpx.Response]]:
    """Call ``method`` on a fresh dashboard of alice's (the call may change or delete it)."""
    async def call(world: World, principal: str) -> httpx.Response:
        return await world.call(method, f"/api/dashboards/{await world.new_dashboard()}{suffix}", principal, **kw)

    return call


async def _widget_of_alice(world: World) -> dict[str, str]:
    """A fresh dashboard of alice's with one widget: what an alert watches."""
    dashboard_id = await world.new_dashboard()
    reply = await world.alice_ws.op("edit", dashboard_id=dashboard_id,
                                    ops=[{"type": "add_widget", "widget": {"title": "n", "sql": "SELECT 1 AS n"}}])
    assert reply["ok"], reply
    return {"dashboard_id": dashboard_id, "widget_id": reply["data"]["applied"][0]["data"]["id"]}


async def _alert_of_alice(world: World) -> str:
    response = await world.post("/api/alerts", "owner", json={**await _widget_of_alice(world), "op": ">", "threshold": 1})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def _alerts(world: World, principal: str) -> None:
    alert_id = await _alert_of_alice(world)
    response = await world.get("/api/alerts", principal)
    if principal == "anonymous":
        assert response.status_code == 401
        return
    ids = {a["id"] for a in response.json()["alerts"]}
    assert (alert_id in ids) == (principal == "owner"), "the list shows only the caller's alerts"


async def _create_alert(world: World, principal: str) -> httpx.Response:
    # alice's private dashboard: bob may not watch it (403)
    return await world.post("/api/alerts", principal, json={**await _widget_of_alice(world), "op": ">", "threshold": 1})


async def _delete_alert(world: World, principal: str) -> httpx.Response:
    # someone else's alert is 404, exactly as one that does not exist
    return await world.call("DELETE", f"/api/alerts/{await _alert_of_alice(world)}", principal)


DASHBOARD = "/api/dashboards/{dashboard_id}"

REST: dict[tuple[str, str], Check] = {
    # Dashboards: strangers (bob) get 403 on alice's; roles are the subject of test_dashboards_roles.
    ("GET", "/api/dashboards"): _dashboards,
    ("POST", "/api/dashboards"): expect(401, 201, 201, lambda w, p: w.post("/api/dashboards", p, json={"title": "mine"})),
    ("GET", DASHBOARD): expect(401, 403, 200, lambda w, p: w.get(f"/api/dashboards/{w.dashboard_id}", p)),
    ("DELETE", DASHBOARD): expect(401, 403, 204, _on_fresh_dashboard("DELETE")),
    ("GET", DASHBOARD + "/members"): expect(401, 403, 200, lambda w, p: w.get(f"/api/dashboards/{w.dashboard_id}/members", p)),
    ("PUT", DASHBOARD + "/members/{username}"): expect(401, 403, 200, _on_fresh_dashboard("PUT", "/members/bob", json={"role": "editor"})),
    ("DELETE", DASHBOARD + "/members/{username}"): expect(401, 403, 200, _on_fresh_dashboard("DELETE", "/members/bob")),
    ("PUT", DASHBOARD + "/sharing"): expect(401, 403, 200, _on_fresh_dashboard("PUT", "/sharing", json={"public": True})),
    ("GET", DASHBOARD + "/live"): expect(401, 403, 200, lambda w, p: w.get(f"/api/dashboards/{w.dashboard_id}/live", p)),
    ("POST", DASHBOARD + "/refresh"): expect(401, 403, 200, lambda w, p: w.post(f"/api/dashboards/{w.dashboard_id}/refresh", p, json={})),
    # Alerts: each user's own; creating one needs the viewer role on the dashboard.
    ("GET", "/api/alerts"): _alerts,
    ("POST", "/api/alerts"): expect(401, 403, 201, _create_alert),
    ("DELETE", "/api/alerts/{alert_id}"): expect(401, 404, 204, _delete_alert),
    # Ingest: only the users ingest_access lists (alice, on the secret warehouse) insert rows.
    ("POST", "/api/tables/{table}/rows"): expect(401, 403, 200, lambda w, p: w.post(
        "/api/tables/payroll/rows", p, params={"warehouse": "secret"}, json={"rows": [{"name": "carol", "salary": 90}]})),
    ("POST", "/api/login"): expect(401, 200, 200, _login),
    ("POST", "/api/ticket"): expect(401, 200, 200, lambda w, p: w.post("/api/ticket", p)),
    ("POST", "/api/logout"): _logout("/api/logout"),
    ("POST", "/api/logout-all"): _logout("/api/logout-all"),
    ("GET", "/api/me"): expect(401, 200, 200, lambda w, p: w.get("/api/me", p)),
    ("GET", "/api/warehouses"): _warehouses,
    ("GET", "/api/examples"): expect(401, 403, 200, lambda w, p: w.get("/api/examples", p, params={"warehouse": "secret"})),
    ("GET", "/api/history"): _history,
    # Only the asker (and share recipients, see test_sharing) read a stored result; anyone else
    # gets 404, as for a question that does not exist.
    ("GET", "/api/queries/{query_id}/result"): expect(
        401, 404, 200, lambda w, p: w.get(f"/api/queries/{w.done_query_id}/result", p)),
    ("GET", "/api/config"): expect(200, 200, 200, lambda w, p: w.get("/api/config", p)),
    ("GET", "/livez"): expect(200, 200, 200, lambda w, p: w.get("/livez", p)),
    ("GET", "/health"): expect(200, 200, 200, lambda w, p: w.get("/health", p)),
    ("GET", "/metrics"): _metrics,
    ("GET", "/openapi.json"): expect(404, 404, 404, lambda w, p: w.get("/openapi.json", p)),
    ("GET", "/api/docs"): expect(404, 404, 404, lambda w, p: w.get("/api/docs", p)),
    ("GET", "/sse"): _sse,
    ("POST", "/sse/ops"): _sse_ops,
    # The UI and its assets are public; they hold no data.
    ("GET", "/"): expect(200, 200, 200, lambda w, p: w.get("/", p)),
    ("GET", "/static/vendor/plotly.min.js"): expect(200, 200, 200, lambda w, p: w.get("/static/vendor/plotly.min.js", p)),
    ("MOUNT", "/static"): expect(200, 200, 200, lambda w, p: w.get("/static/js/app.js", p)),
    ("WS", "/ws"): None,  # the op matrix below
}


@pytest.fixture
async def world(server_settings, tmp_path: Path):
    secret = tmp_path / "secret.sqlite"
    with sqlite3.connect(secret) as con:
        con.execute("CREATE TABLE payroll (name TEXT, salary INTEGER)")
        con.execute("INSERT INTO payroll VALUES ('alice', 100)")
    settings = server_settings.model_copy(update={
        "warehouses": {**server_settings.warehouses, "secret": f"sqlite:///{secret}"},
        "warehouse_access": {"secret": ["alice"]},
        "ingest_access": {"secret": ["alice"]},
        "metrics_access": "token",
        "metrics_token": METRICS_TOKEN,
        "op_rate_per_s": 0,
        "query_timeout_s": 20,
    })
    async with run_server(settings) as server:
        w = World(server)
        await w.setup()
        try:
            yield w
        finally:
            await w.close()


async def test_every_rest_endpoint_by_principal(world: World) -> None:
    served = _routes(world.server.app)
    missing = served - set(REST)
    assert not missing, f"routes without a row in the authorization matrix: {sorted(missing)}"
    for route, check in sorted(REST.items()):
        if check is None:
            continue
        assert route in served, f"the matrix lists {route}, which the app no longer serves"
        for principal in PRINCIPALS:
            try:
                await check(world, principal)
            except AssertionError as exc:
                raise AssertionError(f"{route} as {principal}: {exc}") from None
    # Finally the owner logs out: her token and her open connections stop working.
    assert (await world.post("/api/logout", "owner")).status_code == 200
    assert (await world.get("/api/me", "owner")).status_code == 401
    closed = await world.alice_ws.wait_closed()
    assert closed[0] == 4001, closed


# -- ops over the WebSocket ---------------------------------------------------------------------

async def _anonymous_op(world: World, frame: dict[str, Any]) -> tuple[dict, int | None]:
    """Send ``frame`` as the first frame of a socket that never authenticated."""
    async with websockets.connect(world.server.ws_url, max_size=None) as ws:
        await ws.send(json.dumps(frame))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply.get("type") == "message_batch":
            reply = reply["messages"][0]
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        return reply, ws.close_code


def _op_frames(world: World) -> dict[str, dict[str, Any]]:
    """One frame per op that touches alice's things."""
    return {
        "auth": {"op": "auth", "token": "forged.token"},
        "subscribe": {"op": "subscribe", "channel": f"query:{world.query_id}"},
        "unsubscribe": {"op": "unsubscribe", "channel": f"query:{world.query_id}"},
        "ask": {"op": "ask", "sql": "SELECT name FROM payroll", "warehouse": "secret"},
        "cancel": {"op": "cancel", "query_id": world.query_id},
        "ping": {"op": "ping"},
        "presence": {"op": "presence", "channel": "system"},
        "edit": {"op": "edit", "dashboard_id": world.dashboard_id,
                 "ops": [{"type": "update_dashboard", "fields": {"title": "renamed"}}]},
        "share": {"op": "share", "query_id": world.done_query_id, "usernames": ["bob"]},
        "refresh": {"op": "refresh", "dashboard_id": world.dashboard_id},
    }


async def test_every_op_by_principal(world: World) -> None:
    frames = _op_frames(world)
    assert set(frames) == set(OP_NAMES), "an op without a row in the authorization matrix"

    # anonymous: every op but auth is refused and the socket closed with 4001; auth with a
    # forged token likewise.
    for name, frame in frames.items():
        reply, code = await _anonymous_op(world, {"id": 1, **frame})
        assert not reply["ok"] and reply["error"]["code"] == "unauthenticated", (name, reply)
        assert code == 4001, (name, code)

    bob = await world.server.connect("bob")
    alice = await world.server.connect("alice")
    try:
        expected_other = {
            "auth": "ok",  # already authenticated: answers with the connection's own user
            "subscribe": "forbidden",
            "unsubscribe": "ok",  # a no-op: bob was never subscribed
            "ask": "forbidden",
            "cancel": "forbidden",
            "ping": "ok",
            "presence": "not_subscribed",
            "edit": "forbidden",
            "share": "forbidden",  # only the asker shares
            "refresh": "forbidden",
        }
        expected_owner = {**expected_other, "subscribe": "ok", "ask": "ok", "cancel": "ok", "edit": "ok", "share": "ok",
                          "refresh": "ok"}
        for principal, client, expected in (("other", bob, expected_other), ("owner", alice, expected_owner)):
            for name in ("auth", "ping", "presence", "subscribe", "unsubscribe", "ask", "cancel", "edit", "share", "refresh"):
                reply = await client.op(**frames[name])
                outcome = "ok" if reply["ok"] else reply["error"]["code"]
                assert outcome == expected[name], (principal, name, reply)
                if name == "auth" and reply["ok"]:
                    assert reply["data"]["user"]["username"] == ("bob" if principal == "other" else "alice")
                if principal == "other" and name == "cancel":
                    running = await alice.op("subscribe", channel=f"query:{world.query_id}")
                    assert running["ok"], "bob's cancel must not have touched alice's question"
        # bob never received a publication of alice's question or of the secret warehouse.
        assert not [p for p in bob.publications if world.query_id in p["channel"]]
        # subscribing to another user's channel, and to channels that do not exist
        for channel, code in ((f"user:{world.alice_id}", "forbidden"), ("dashboard:nope", "not_found"),
                              (f"dashboard:{world.dashboard_id}", "forbidden"),
                              ("secret:x", "unknown_channel")):
            reply = await bob.op("subscribe", channel=channel)
            assert not reply["ok"] and reply["error"]["code"] == code, (channel, reply)
        assert (await alice.op("subscribe", channel=f"user:{world.alice_id}"))["ok"]
    finally:
        await bob.close()
        await alice.close()
