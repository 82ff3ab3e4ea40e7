"""Alerts end to end on a real server: REST (create, list, delete, refusals), and
``on_refresh`` with results of the real pipeline over a SQLite warehouse the test writes to,
notifications received by real WebSocket clients on ``user:<id>``.

Until the live service calls ``services.alerts.on_refresh`` itself after each widget refresh,
the tests call it as it will: with the widget's result exactly as ``Pipeline.answer`` returns it.
The PostgreSQL test runs two alert services (two processes' worth) on one store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from livebi.auth import User
from livebi.dashboards.model import apply_edit, new_dashboard
from livebi.live.alert_service import AlertService
from livebi.pipeline import AskRequest
from livebi.store import MetadataStore
from livebi.store.alerts import AlertStore
from livebi.store.dashboards import DashboardStore

from .conftest import LiveServer, WSClient, run_server

SQL = "SELECT sum(amount) AS revenue FROM sales"


@pytest.fixture
def sales_db(tmp_path: Path) -> Path:
    path = tmp_path / "sales.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE sales (region TEXT, amount REAL)")
        con.execute("INSERT INTO sales VALUES ('north', 50)")
    return path


def set_total(path: Path, total: float) -> None:
    """Another writer (not livebi) changes the data: the revenue becomes ``total``."""
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM sales")
        con.execute("INSERT INTO sales VALUES ('north', ?)", (total,))


class World:
    def __init__(self, server: LiveServer, sales: Path) -> None:
        self.server = server
        self.sales = sales
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=20)
        self.services = server.app.state.services

    async def setup(self) -> None:
        self.tokens = {u: await self.server.token(u) for u in ("alice", "bob")}
        self.ids = {u: (await self.call("GET", "/api/me", u)).json()["user"]["id"] for u in ("alice", "bob")}
        self.alice = await self.server.connect("alice")
        self.bob = await self.server.connect("bob")
        for name, client in (("alice", self.alice), ("bob", self.bob)):
            assert (await client.op("subscribe", channel=f"user:{self.ids[name]}"))["ok"]
        self.dashboard_id = (await self.call("POST", "/api/dashboards", "alice", json={"title": "Sales"})).json()["id"]
        reply = await self.alice.op("edit", dashboard_id=self.dashboard_id, ops=[
            {"type": "add_widget", "widget": {"title": "Revenue", "sql": SQL, "warehouse": "live"}}])
        assert reply["ok"], reply
        self.widget_id = reply["data"]["applied"][0]["data"]["id"]
        assert (await self.call("PUT", f"/api/dashboards/{self.dashboard_id}/members/bob", "alice",
                                json={"role": "viewer"})).status_code == 200

    async def call(self, method: str, path: str, user: str | None, *, headers: dict | None = None,
                   **kw: Any) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return await self.http.request(method, path, headers=auth | (headers or {}), **kw)

    async def alert(self, user: str, **fields: Any) -> dict:
        body = {"dashboard_id": self.dashboard_id, "widget_id": self.widget_id, "op": ">", "threshold": 100} | fields
        response = await self.call("POST", "/api/alerts", user, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def refresh(self, total: float | None = None) -> dict:
        """What the live service does after a refresh: the real pipeline's result, to on_refresh."""
        if total is not None:
            set_total(self.sales, total)
        # fresh: a live refresh reads the warehouse every time (no result cache, which would see
        # this other writer's change only at its detector's next poll)
        data = await self.services.pipeline.answer("q_alerts", AskRequest(sql=SQL, warehouse="live", fresh=True),
                                                   lambda *a: None)
        data.pop("query_id")
        await self.services.alerts.on_refresh(self.dashboard_id, self.widget_id, data)
        return data

    async def notifications(self, client: WSClient, user: str) -> list[dict]:
        """Every notification ``client`` got so far: a ping's reply comes after anything
        published before it (one ordered outbox per connection)."""
        assert (await client.op("ping"))["ok"]
        return [p["data"] for p in client.on(f"user:{self.ids[user]}") if p["type"] == "notification"]

    async def close(self) -> None:
        await self.alice.close()
        await self.bob.close()
        await self.http.aclose()


@pytest.fixture
async def world(server_settings, sales_db: Path):
    settings = server_settings.model_copy(update={
        "warehouses": {**server_settings.warehouses, "live": f"sqlite:///{sales_db}"},
        "alerts_per_user": 3, "op_rate_per_s": 0,
    })
    async with run_server(settings) as server:
        w = World(server, sales_db)
        await w.setup()
        try:
            yield w
        finally:
            await w.close()


async def test_an_alert_fires_once_per_crossing_for_each_user_who_may_still_see_it(world: World) -> None:
    mine = await world.alert("alice", label="Revenue is up")
    assert mine["state"] == "unknown" and mine["condition"] == "value > 100" and mine["status"] == "active"
    await world.alert("bob", column="revenue", aggregate="max", op=">=", threshold=150)

    await world.refresh()  # 50: neither holds
    assert await world.notifications(world.alice, "alice") == []
    await world.refresh(150)  # crosses both
    (alice_note,) = await world.notifications(world.alice, "alice")
    (bob_note,) = await world.notifications(world.bob, "bob")
    assert alice_note | {"timestamp": None} == {
        "kind": "alert", "alert_id": mine["id"], "dashboard_id": world.dashboard_id, "widget_id": world.widget_id,
        "title": "Revenue is up", "message": "Revenue is 150, above 100", "value": 150.0, "threshold": 100.0,
        "op": ">", "timestamp": None}
    assert bob_note["title"] == "Revenue" and bob_note["message"] == "Largest revenue is 150, at or above 150"
    # Persisted before it was published: the stored state already says what the notification says.
    (stored,) = (await world.call("GET", "/api/alerts", "alice")).json()["alerts"]
    assert stored["state"] == "above" and stored["last_fired_at"] == alice_note["timestamp"]

    for total in (150, 170, 120):  # the condition keeps holding: nothing more
        await world.refresh(total)
    assert len(await world.notifications(world.alice, "alice")) == 1
    await world.refresh(90)  # re-arms
    await world.refresh(200)  # crosses again
    assert [n["value"] for n in await world.notifications(world.alice, "alice")] == [150.0, 200.0]
    assert [n["value"] for n in await world.notifications(world.bob, "bob")] == [150.0, 200.0]

    # bob loses access: his alert no longer notifies; alice's still does.
    assert (await world.call("DELETE", f"/api/dashboards/{world.dashboard_id}/members/bob", "alice")).status_code == 200
    await world.refresh(10)
    await world.refresh(500)
    assert len(await world.notifications(world.alice, "alice")) == 3
    assert len(await world.notifications(world.bob, "bob")) == 2
    (bobs,) = (await world.call("GET", "/api/alerts", "bob")).json()["alerts"]
    assert bobs["status"] == "no_access" and bobs["dashboard_title"] is None and bobs["state"] == "above"


async def test_racing_refreshes_notify_once(world: World) -> None:
    await world.alert("alice")
    await world.refresh()
    set_total(world.sales, 1000)
    data = await world.services.pipeline.answer("q", AskRequest(sql=SQL, warehouse="live"), lambda *a: None)
    await asyncio.gather(*(world.services.alerts.on_refresh(world.dashboard_id, world.widget_id, data) for _ in range(8)))
    assert len(await world.notifications(world.alice, "alice")) == 1


async def test_rest_create_list_delete_and_refusals(world: World) -> None:
    a = await world.alert("alice")
    b = await world.alert("alice", op="<", threshold=-5, aggregate="count")
    listed = (await world.call("GET", "/api/alerts", "alice")).json()["alerts"]
    assert [x["id"] for x in listed] == [a["id"], b["id"]]
    assert listed[0]["dashboard_title"] == "Sales" and listed[0]["widget_title"] == "Revenue"
    assert (await world.call("GET", "/api/alerts", "bob")).json()["alerts"] == [], "only the caller's alerts"
    assert world.services.alerts.watched() == {world.dashboard_id: {world.widget_id}}

    # nobody else deletes mine (404, as for an alert that does not exist)
    assert (await world.call("DELETE", f"/api/alerts/{a['id']}", "bob")).status_code == 404
    assert (await world.call("DELETE", f"/api/alerts/{a['id']}", None)).status_code == 401
    assert (await world.call("DELETE", f"/api/alerts/{a['id']}", "alice")).status_code == 204
    assert (await world.call("DELETE", f"/api/alerts/{a['id']}", "alice")).status_code == 404
    assert (await world.call("DELETE", f"/api/alerts/{b['id']}", "alice")).status_code == 204
    assert world.services.alerts.watched() == {}

    base = {"dashboard_id": world.dashboard_id, "widget_id": world.widget_id, "op": ">", "threshold": 1}
    cases = [
        (base | {"op": "=="}, 422, "op"),
        (base | {"threshold": "lots"}, 422, "threshold"),
        (base | {"aggregate": "avg"}, 422, "aggregate"),
        (base | {"column": "x" * 201}, 422, "column"),
        (base | {"surprise": 1}, 422, "surprise"),
        ({k: v for k, v in base.items() if k != "widget_id"}, 422, "widget_id"),
        (base | {"widget_id": "w_nope"}, 404, "w_nope"),
        (base | {"dashboard_id": "d_nope"}, 404, "d_nope"),
    ]
    for body, status, named in cases:
        response = await world.call("POST", "/api/alerts", "alice", json=body)
        assert response.status_code == status and named in response.text, (body, response.status_code, response.text)
    # NaN and infinity are not JSON numbers; a body that sends them anyway is refused
    raw = b'{"dashboard_id": "%s", "widget_id": "%s", "op": ">", "threshold": NaN}' % (
        world.dashboard_id.encode(), world.widget_id.encode())
    response = await world.call("POST", "/api/alerts", "alice", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text

    # a stranger may not watch a private dashboard; once it is public, a viewer may
    assert (await world.call("DELETE", f"/api/dashboards/{world.dashboard_id}/members/bob", "alice")).status_code == 200
    response = await world.call("POST", "/api/alerts", "bob", json=base)
    assert response.status_code == 403 and "not shared with you" in response.text
    assert (await world.call("PUT", f"/api/dashboards/{world.dashboard_id}/sharing", "alice",
                             json={"public": True})).status_code == 200
    await world.alert("bob")

    # at most alerts_per_user (3 here)
    for _ in range(3):
        await world.alert("alice")
    response = await world.call("POST", "/api/alerts", "alice", json=base)
    assert response.status_code == 400 and "3 alerts" in response.text


async def test_browser_session_needs_the_csrf_header(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.server.base_url, timeout=20) as browser:
        login = await browser.post("/api/login", json={"username": "alice", "password": "alice-pw"})
        assert login.status_code == 200
        body = {"dashboard_id": world.dashboard_id, "widget_id": world.widget_id, "op": ">", "threshold": 1}
        assert (await browser.post("/api/alerts", json=body)).status_code == 403
        csrf = {"X-CSRF-Token": browser.cookies["livebi_csrf"]}
        created = await browser.post("/api/alerts", json=body, headers=csrf)
        assert created.status_code == 201
        assert (await browser.delete(f"/api/alerts/{created.json()['id']}")).status_code == 403
        assert (await browser.delete(f"/api/alerts/{created.json()['id']}", headers=csrf)).status_code == 204


async def test_alerts_go_with_their_dashboard_and_keep_alive_follows(world: World) -> None:
    told: list[tuple[str, bool]] = []
    world.services.alerts._keep_alive = lambda dashboard_id, on: told.append((dashboard_id, on))
    await world.alert("alice")
    await world.alert("bob")
    assert told == [(world.dashboard_id, True)], "one keep-alive per dashboard, not per alert"
    assert (await world.call("DELETE", f"/api/dashboards/{world.dashboard_id}", "alice")).status_code == 204
    assert (await world.call("GET", "/api/alerts", "alice")).json()["alerts"] == []
    await world.refresh(500)  # a refresh that was already running: nothing to evaluate, nobody told
    assert told == [(world.dashboard_id, True), (world.dashboard_id, False)]
    assert await world.notifications(world.alice, "alice") == []


# -- several processes on one PostgreSQL store --------------------------------------------------


async def test_two_processes_on_one_postgres_store_notify_once(pg_database: str) -> None:
    meta = await MetadataStore.open(pg_database)
    engines = [meta.engine, (await MetadataStore.open(pg_database)).engine]
    try:
        user = await meta.add_user("carol", "x")
        carol = User(user["id"], "carol")
        dashboards = DashboardStore(meta.engine)
        snapshot = new_dashboard(dashboard_id="d_pg", title="PG", description="", owner=carol.public(), now="now")
        assert await dashboards.create(snapshot)
        edit = apply_edit(snapshot, [{"type": "add_widget", "widget": {"title": "N", "sql": "SELECT 1"}}],
                          now="now", new_widget_id=lambda: "w_pg")
        await dashboards.apply_edit("d_pg", expected_version=0, snapshot=edit.snapshot, user_id=carol.id,
                                    updates=[u.record() for u in edit.updates])
        published: list[tuple[str, str, dict]] = []

        async def publish(channel: str, type: str, data: dict) -> None:
            published.append((channel, type, data))

        nodes = [AlertService(AlertStore(engine), publish, DashboardStore(engine)) for engine in engines]
        created = await nodes[0].create(carol, dashboard_id="d_pg", widget_id="w_pg", op=">=", threshold=10)
        await nodes[1].start()
        assert nodes[1].watched() == {"d_pg": {"w_pg"}}, "the other node learns of it at start"

        def result(n: int) -> dict:
            return {"columns": ["n"], "column_kinds": ["number"], "rows": [[n]], "warehouse": "demo"}

        for n in (1, 10, 11, 3, 12):
            await asyncio.gather(*(node.on_refresh("d_pg", "w_pg", result(n)) for node in nodes for _ in range(3)))
        assert [(c, t, d["value"]) for c, t, d in published] == [
            (f"user:{carol.id}", "notification", 10), (f"user:{carol.id}", "notification", 12)]
        assert published[0][2]["alert_id"] == created["id"]

        # An alert made and deleted on one node reaches the other by resync, without a restart.
        other = await nodes[0].create(carol, dashboard_id="d_pg", widget_id="w_pg", op="<", threshold=0)
        await nodes[0].delete(carol, created["id"])
        await nodes[0].delete(carol, other["id"])
        assert nodes[1].watched() == {"d_pg": {"w_pg"}}
        await nodes[1].resync()
        assert nodes[1].watched() == {}
        await nodes[0].create(carol, dashboard_id="d_pg", widget_id="w_pg", op=">", threshold=100)
        await nodes[1].resync()
        assert nodes[1].watched() == {"d_pg": {"w_pg"}}
    finally:
        for engine in engines:
            await engine.dispose()


async def test_nan_or_infinity_in_a_json_body_is_a_422_not_a_500(world: World) -> None:
    """Python's JSON parser accepts NaN and Infinity; FastAPI's default 422 echoed them back and
    could not render itself (500), on every route with a body, login included."""
    for path, user, body in (
        ("/api/login", None, b'{"username": NaN, "password": "x"}'),
        ("/api/dashboards", "alice", b'{"title": Infinity}'),
        ("/api/alerts", "alice", b'{"dashboard_id": "d", "widget_id": "w", "op": ">", "threshold": -Infinity}'),
    ):
        response = await world.call("POST", path, user, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, response.status_code, response.text)
        assert response.json()["detail"][0]["loc"][-1] in ("username", "title", "threshold"), response.text
