"""Live dashboards end to end: a real server, real WebSocket viewers, a real SQLite warehouse that
the tests write to from another connection (as another program would).

The must-shows of the live dashboards issue: one change to a table three widgets read runs
exactly three queries however many viewers there are, and every viewer gets the three refreshed
widgets; nobody watching, no query runs; the schedule stops with the last viewer and resumes with
the next; identical SQL runs once; an unchanged result is not sent again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from livebi.config import Settings

from .conftest import LiveServer, WSClient, free_port, run_server
from .test_dashboards import Api, create

VIEWERS = 200


def make_shop(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")  # writers do not wait for long reads (as in a real warehouse)
    con.executescript(
        """
        CREATE TABLE sales (id INTEGER PRIMARY KEY, region TEXT NOT NULL, amount REAL NOT NULL);
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        INSERT INTO sales (region, amount) VALUES ('North', 10), ('South', 20), ('North', 5);
        INSERT INTO customers (name) VALUES ('Ada'), ('Grace');
        """
    )
    con.commit()
    con.close()


def insert_sale(path: Path, region: str, amount: float) -> None:
    con = sqlite3.connect(path)
    con.execute("INSERT INTO sales (region, amount) VALUES (?, ?)", (region, amount))
    con.commit()
    con.close()


async def ingest_sale(server: LiveServer, region: str, amount: float) -> None:
    """One row through livebi's ingest API: written, then signalled at once (source ingest)."""
    r = await Api(server, "alice")("POST", "/api/tables/sales/rows", params={"warehouse": "shop"},
                                   json={"rows": [{"region": region, "amount": amount}]})
    assert r.status_code == 200, r.text


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    make_shop(path)
    return path


def live_settings(tmp_path: Path, shop: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path,
        warehouses={"shop": f"sqlite:///{shop}"},
        store_url=f"sqlite:///{tmp_path / 'meta.db'}",
        secret_key="test-secret",
        port=free_port(),
        live_min_interval_s=0.5,
        ingest_access={"shop": ["alice"]},
        live_change_poll_s=0.2,
        max_connections_per_user=VIEWERS + 20,
        max_connections=VIEWERS + 100,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def server(tmp_path: Path, shop: Path) -> AsyncIterator[LiveServer]:
    async with run_server(live_settings(tmp_path, shop)) as s:
        yield s


class QueryCounter:
    """Counts the statements the warehouse really runs (wraps the real connector's execute)."""

    def __init__(self, server: LiveServer, name: str = "shop") -> None:
        self.sql: list[str] = []
        wh = server.app.state.services.warehouses[name]
        original = wh.execute

        async def execute(sql: str, **kw: Any) -> Any:
            self.sql.append(sql)
            return await original(sql, **kw)

        wh.execute = execute

    def __len__(self) -> int:
        return len(self.sql)


SALES_TOTAL = "SELECT sum(amount) AS total FROM sales"
SALES_BY_REGION = "SELECT region, sum(amount) AS total FROM sales GROUP BY region ORDER BY region"
SALES_COUNT = "SELECT count(*) AS n FROM sales"
CUSTOMERS = "SELECT count(*) AS customers FROM customers"


def widget(title: str, sql: str, *, interval: int | None = None, on_change: bool = True) -> dict:
    return {"type": "add_widget", "widget": {
        "title": title, "sql": sql, "refresh": {"interval_s": interval, "on_data_change": on_change}}}


async def dashboard_with(server: LiveServer, widgets: list[dict], *, owner: str = "alice") -> tuple[str, list[str]]:
    d = await create(server, owner)
    editor = await server.connect(owner)
    try:
        reply = await editor.op("edit", dashboard_id=d["id"], ops=widgets)
        assert reply["ok"], reply
    finally:
        await editor.close()
    return d["id"], [u["data"]["id"] for u in reply["data"]["applied"]]


def refreshes(client: WSClient, dashboard_id: str, **match: Any) -> list[dict]:
    out = [p["data"] for p in client.on(f"dashboard:{dashboard_id}") if p["type"] == "dashboard_refresh"]
    return [d for d in out if all(d.get(k) == v for k, v in match.items())]


async def until(predicate, timeout: float = 30.0, step: float = 0.05) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(step)

    await asyncio.wait_for(loop(), timeout)


async def watch(server: LiveServer, dashboard_id: str, n: int = 1, username: str = "alice") -> list[WSClient]:
    clients = []
    for _ in range(n):
        client = await server.connect(username)
        reply = await client.op("subscribe", channel=f"dashboard:{dashboard_id}")
        assert reply["ok"], reply
        clients.append(client)
    return clients


async def close_all(clients: list[WSClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# ================================================================================================


async def test_one_change_three_queries_for_two_hundred_viewers(server: LiveServer, shop: Path) -> None:
    counter = QueryCounter(server)
    live = server.app.state.services.live
    dashboard_id, ids = await dashboard_with(server, [
        widget("Total", SALES_TOTAL), widget("By region", SALES_BY_REGION), widget("Count", SALES_COUNT),
        widget("Customers", CUSTOMERS),
    ])
    assert len(counter) == 0  # nobody watches yet
    viewers = await watch(server, dashboard_id, VIEWERS)
    try:
        # the first viewer made the dashboard live: each widget ran once, for everyone
        await until(lambda: all(len(refreshes(v, dashboard_id, state="done")) >= 4 for v in viewers[:1]))
        assert sorted(counter.sql) == sorted([SALES_TOTAL, SALES_BY_REGION, SALES_COUNT, CUSTOMERS])
        snapshot = await Api(server, "alice")("GET", f"/api/dashboards/{dashboard_id}/live")
        assert snapshot.status_code == 200 and set(snapshot.json()["widgets"]) == set(ids)
        before = len(counter)

        # one row through the ingest API: it is written, then signalled at once
        r = await Api(server, "alice")("POST", "/api/tables/sales/rows", params={"warehouse": "shop"},
                                       json={"rows": [{"region": "South", "amount": 100}]})
        assert r.status_code == 200 and r.json()["inserted"] == 1, r.text
        assert list(live.last_changes) == [("shop", {"sales"})]

        def three_new(v: WSClient) -> bool:
            return len(refreshes(v, dashboard_id, reason="data_change", state="done")) == 3

        await until(lambda: all(three_new(v) for v in viewers), timeout=60)
        assert len(counter) - before == 3
        assert sorted(counter.sql[before:]) == sorted([SALES_TOTAL, SALES_BY_REGION, SALES_COUNT])
        for v in viewers:
            got = {d["widget_id"]: d for d in refreshes(v, dashboard_id, reason="data_change", state="done")}
            assert set(got) == set(ids[:3]) and all(d["affected_table"] == "sales" for d in got.values())
            assert got[ids[0]]["data"]["rows"] == [[135.0]]
            assert got[ids[1]]["data"]["rows"] == [["North", 15.0], ["South", 120.0]]
            assert not refreshes(v, dashboard_id, widget_id=ids[3], reason="data_change")
        await asyncio.sleep(0.3)
        assert len(counter) - before == 3  # nothing else ran
        metrics = server.app.state.services.metrics
        assert metrics.live_queries._value.get() == len(counter)
        assert metrics.live_refreshes.labels("data_change", "done")._value.get() == 3
        assert b"livebi_live_dashboards 1.0" in metrics.render()
    finally:
        await close_all(viewers)


async def test_nobody_watching_runs_nothing_and_the_schedule_follows_the_viewers(server: LiveServer, shop: Path) -> None:
    counter = QueryCounter(server)
    live = server.app.state.services.live
    dashboard_id, ids = await dashboard_with(server, [widget("Total", SALES_TOTAL, interval=1)])
    await live.data_changed("shop", {"sales"}, source="test")
    insert_sale(shop, "North", 1)  # another program writes: nobody watches, so nobody polls
    await asyncio.sleep(2.5)
    assert len(counter) == 0 and not live.is_active(dashboard_id)
    assert all(d["queries"] == 0 for d in live.detection_status().values())

    [viewer] = await watch(server, dashboard_id)
    await until(lambda: len(counter) >= 3, timeout=15)  # the first run, then one a second
    reasons = [d["reason"] for d in refreshes(viewer, dashboard_id) if d["state"] != "running"]
    assert reasons[0] == "initial" and "interval" in reasons[1:]
    # the data did not change: later runs say so without sending the rows again
    unchanged = refreshes(viewer, dashboard_id, state="unchanged")
    assert unchanged and all(d["data"] is None for d in unchanged)

    await viewer.op("unsubscribe", channel=f"dashboard:{dashboard_id}")
    await asyncio.sleep(0.3)  # a run that had started may finish
    stopped_at = len(counter)
    await asyncio.sleep(2.5)
    assert len(counter) == stopped_at and not live.is_active(dashboard_id)

    [again] = await watch(server, dashboard_id)  # resumes with the next viewer
    await until(lambda: len(counter) > stopped_at, timeout=15)
    await again.close()
    await until(lambda: not live.is_active(dashboard_id), timeout=5)  # a closed socket counts as leaving


async def test_identical_sql_runs_once_across_widgets_and_dashboards(server: LiveServer, shop: Path) -> None:
    counter = QueryCounter(server)
    a, _ = await dashboard_with(server, [widget("Total", SALES_TOTAL), widget("Total again", SALES_TOTAL)])
    b, _ = await dashboard_with(server, [widget("Total", SALES_TOTAL)], owner="bob")
    viewers = await watch(server, a) + await watch(server, b, username="bob")
    try:
        await until(lambda: len(refreshes(viewers[0], a, state="done")) == 2 and len(refreshes(viewers[1], b, state="done")) == 1)
        before = len(counter)
        await ingest_sale(server, "North", 1)
        await until(lambda: len(refreshes(viewers[0], a, reason="data_change", state="done")) == 2
                    and len(refreshes(viewers[1], b, reason="data_change", state="done")) == 1)
        assert counter.sql[before:] == [SALES_TOTAL]
    finally:
        await close_all(viewers)


async def test_manual_refresh_by_role_and_new_viewers_see_the_latest_result(server: LiveServer, shop: Path) -> None:
    counter = QueryCounter(server)
    dashboard_id, ids = await dashboard_with(server, [widget("Total", SALES_TOTAL, on_change=False)])
    alice = Api(server, "alice")
    # bob has no role: refused, nothing runs
    [bob] = await watch(server, dashboard_id, username="alice")
    await until(lambda: refreshes(bob, dashboard_id, state="done"))
    stranger = await server.connect("bob")
    try:
        reply = await stranger.op("refresh", dashboard_id=dashboard_id)
        assert not reply["ok"] and reply["error"]["code"] == "forbidden"
        r = await Api(server, "bob")("GET", f"/api/dashboards/{dashboard_id}/live")
        assert r.status_code == 403

        assert (await alice("PUT", f"/api/dashboards/{dashboard_id}/members/bob", json={"role": "viewer"})).status_code == 200
        insert_sale(shop, "East", 7)
        before = len(counter)
        reply = await stranger.op("refresh", dashboard_id=dashboard_id, widget_id=ids[0])
        assert reply["ok"] and reply["data"] == {"dashboard_id": dashboard_id, "widgets": [ids[0]]}
        await until(lambda: refreshes(bob, dashboard_id, reason="manual", state="done"))
        assert len(counter) == before + 1
        [manual] = refreshes(bob, dashboard_id, reason="manual", state="done")
        assert manual["data"]["rows"] == [[42.0]]

        reply = await stranger.op("refresh", dashboard_id=dashboard_id, widget_id="w_00000000")
        assert not reply["ok"] and reply["error"]["code"] == "not_found"
        r = await Api(server, "bob")("POST", f"/api/dashboards/{dashboard_id}/refresh", json={})
        assert r.status_code == 200 and r.json()["widgets"] == ids
        await until(lambda: [d["state"] for d in refreshes(bob, dashboard_id, reason="manual")
                             if d["state"] != "running"] == ["done", "unchanged"])

        # a new viewer gets the latest result at once, without running anything
        ran = len(counter)
        r = await Api(server, "bob")("GET", f"/api/dashboards/{dashboard_id}/live")
        body = r.json()
        assert body["live"] is True and body["widgets"][ids[0]]["state"] == "done"
        assert body["widgets"][ids[0]]["data"]["rows"] == [[42.0]]
        assert len(counter) == ran
    finally:
        await close_all([bob, stranger])


async def test_edits_replan_the_live_dashboard(server: LiveServer, shop: Path) -> None:
    counter = QueryCounter(server)
    dashboard_id, ids = await dashboard_with(server, [widget("Total", SALES_TOTAL)])
    [viewer] = await watch(server, dashboard_id)
    try:
        await until(lambda: refreshes(viewer, dashboard_id, state="done"))
        reply = await viewer.op("edit", dashboard_id=dashboard_id, ops=[
            {"type": "update_widget", "widget_id": ids[0], "fields": {"sql": SALES_COUNT}}])
        assert reply["ok"]
        await until(lambda: any(d["data"]["rows"] == [[3]] for d in refreshes(viewer, dashboard_id, state="done")))
        assert counter.sql[-1] == SALES_COUNT
        # a removed widget no longer refreshes on changes
        await viewer.op("edit", dashboard_id=dashboard_id, ops=[{"type": "remove_widget", "widget_id": ids[0]}])
        await asyncio.sleep(0.2)
        before = len(counter)
        assert await server.app.state.services.live.data_changed("shop", {"sales"}, source="test") == 0
        await asyncio.sleep(0.3)
        assert len(counter) == before
    finally:
        await viewer.close()


async def test_a_failing_widget_names_its_stage_and_others_still_refresh(server: LiveServer) -> None:
    dashboard_id, ids = await dashboard_with(server, [
        widget("Broken", "SELECT nope FROM sales"), widget("Total", SALES_TOTAL),
        {"type": "add_widget", "widget": {"title": "Gibberish", "question": "zzqx blorp"}},
    ])
    [viewer] = await watch(server, dashboard_id)
    try:
        await until(lambda: len([d for d in refreshes(viewer, dashboard_id) if d["state"] in ("done", "failed")]) == 3)
        [broken] = refreshes(viewer, dashboard_id, widget_id=ids[0], state="failed")
        assert broken["error"]["stage"] == "data_processing" and "nope" in broken["error"]["message"]
        [gibberish] = refreshes(viewer, dashboard_id, widget_id=ids[2], state="failed")
        assert gibberish["error"]["stage"] == "nlp_processing" and gibberish["error"]["code"] != "internal"
        assert refreshes(viewer, dashboard_id, widget_id=ids[1], state="done")
    finally:
        await viewer.close()


async def test_editors_cannot_point_widgets_at_warehouses_they_may_not_query(tmp_path: Path, shop: Path) -> None:
    other = tmp_path / "secret.db"
    make_shop(other)
    settings = live_settings(tmp_path, shop, warehouses={"shop": f"sqlite:///{shop}", "secret": f"sqlite:///{other}"},
                             warehouse_access={"secret": ["alice"]})
    async with run_server(settings) as s:
        d = await create(s, "alice")
        alice = Api(s, "alice")
        assert (await alice("PUT", f"/api/dashboards/{d['id']}/members/bob", json={"role": "editor"})).status_code == 200
        bob = await s.connect("bob")
        try:
            reply = await bob.op("edit", dashboard_id=d["id"], ops=[
                {"type": "add_widget", "widget": {"title": "x", "sql": SALES_TOTAL, "warehouse": "secret"}}])
            assert not reply["ok"] and reply["error"]["code"] == "forbidden"
            reply = await bob.op("edit", dashboard_id=d["id"], ops=[{"type": "add_widget", "widget": {"title": "x", "sql": SALES_TOTAL}}])
            assert reply["ok"]
            wid = reply["data"]["applied"][0]["data"]["id"]
            reply = await bob.op("edit", dashboard_id=d["id"], ops=[
                {"type": "update_widget", "widget_id": wid, "fields": {"warehouse": "secret"}}])
            assert not reply["ok"] and reply["error"]["code"] == "forbidden"
            # moving it is fine: the query does not change
            reply = await bob.op("edit", dashboard_id=d["id"], ops=[{"type": "move_widget", "widget_id": wid, "x": 2, "y": 0}])
            assert reply["ok"]
        finally:
            await bob.close()


async def test_switched_off(tmp_path: Path, shop: Path) -> None:
    async with run_server(live_settings(tmp_path, shop, live_dashboards=False)) as s:
        counter = QueryCounter(s)
        dashboard_id, _ = await dashboard_with(s, [widget("Total", SALES_TOTAL, interval=1)])
        [viewer] = await watch(s, dashboard_id)
        try:
            reply = await viewer.op("refresh", dashboard_id=dashboard_id)
            assert not reply["ok"] and reply["error"]["code"] == "feature_disabled"
            r = await Api(s, "alice")("GET", f"/api/dashboards/{dashboard_id}/live")
            assert r.status_code == 200 and r.json() == {"live": False, "active": False, "widgets": {}}
            await asyncio.sleep(1.5)
            assert len(counter) == 0
        finally:
            await viewer.close()


SLOW_TOTAL = ("SELECT (SELECT sum(amount) FROM sales) AS total, (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
              "SELECT x + 1 FROM c LIMIT 5000000) SELECT count(*) FROM c) AS n")  # about 1 s


async def test_a_change_during_a_running_refresh_runs_it_again_with_the_new_row(server: LiveServer, shop: Path) -> None:
    counter = QueryCounter(server)
    dashboard_id, [wid] = await dashboard_with(server, [widget("Slow total", SLOW_TOTAL)])
    [viewer] = await watch(server, dashboard_id)
    try:
        await until(lambda: refreshes(viewer, dashboard_id, state="done"))
        await ingest_sale(server, "West", 1000)
        await until(lambda: len(counter) == 2)  # the change's run has started
        # two more rows land while that query runs: folded into one more run, which sees both
        await asyncio.gather(ingest_sale(server, "West", 1500), ingest_sale(server, "West", 500))
        await until(lambda: any(d["data"]["rows"][0][0] == 3035.0
                                for d in refreshes(viewer, dashboard_id, state="done")), timeout=30)
        await asyncio.sleep(0.5)
        assert len(counter) == 3
    finally:
        await viewer.close()


async def test_an_alert_fires_once_from_a_live_refresh_while_nobody_watches(server: LiveServer, shop: Path) -> None:
    live = server.app.state.services.live
    dashboard_id, [wid] = await dashboard_with(server, [widget("Total", SALES_TOTAL)])
    alice = Api(server, "alice")
    r = await alice("POST", "/api/alerts", json={"dashboard_id": dashboard_id, "widget_id": wid, "op": ">",
                                                 "threshold": 100, "label": "big sales"})
    assert r.status_code == 201, r.text
    await until(lambda: live.is_active(dashboard_id))  # kept live by its alert, nobody watching
    inbox = await server.connect("alice")
    try:
        me = (await alice("GET", "/api/me")).json()["user"]
        assert (await inbox.op("subscribe", channel=f"user:{me['id']}"))["ok"]

        def alerts() -> list[dict]:
            return [p["data"] for p in inbox.on(f"user:{me['id']}") if p["type"] == "notification"]

        await asyncio.sleep(0.5)
        assert alerts() == []  # 35 is not above 100
        insert_sale(shop, "North", 100)
        await live.data_changed("shop", {"sales"}, source="test")
        await until(lambda: alerts())
        insert_sale(shop, "North", 1)  # still above: no second notification
        await live.data_changed("shop", {"sales"}, source="test")
        await asyncio.sleep(0.8)
        [note] = alerts()
        assert note["kind"] == "alert" and note["widget_id"] == wid and note["value"] == 135.0
        r = await alice("DELETE", f"/api/alerts/{note['alert_id']}")
        assert r.status_code == 204
        await until(lambda: not live.is_active(dashboard_id))  # nothing keeps it live any more
    finally:
        await inbox.close()


async def test_rows_written_by_another_program_are_detected_and_pushed(server: LiveServer, shop: Path) -> None:
    live = server.app.state.services.live
    dashboard_id, [total, customers] = await dashboard_with(server, [
        widget("Total", SALES_TOTAL), widget("Customers", CUSTOMERS)])
    [viewer] = await watch(server, dashboard_id)
    try:
        await until(lambda: len(refreshes(viewer, dashboard_id, state="done")) == 2)
        await until(lambda: live.detection_status().get("shop", {}).get("polls", 0) >= 2)  # baselines taken
        insert_sale(shop, "East", 65)  # not through livebi: the detector must notice
        await until(lambda: refreshes(viewer, dashboard_id, reason="data_change", state="done"), timeout=10)
        [pushed] = refreshes(viewer, dashboard_id, reason="data_change", state="done")
        assert pushed["widget_id"] == total and pushed["affected_table"] == "sales"
        assert pushed["data"]["rows"] == [[100.0]]
        status = live.detection_status()["shop"]
        assert set(status["watched"]) == {"sales", "customers"} and status["changes"] >= 1
    finally:
        await viewer.close()
    await until(lambda: live.detection_status()["shop"]["watched"] == [], timeout=5)  # nobody left: unwatched


async def test_editing_a_widget_while_its_old_query_runs_shows_only_the_new_query(server: LiveServer) -> None:
    counter = QueryCounter(server)
    dashboard_id, [wid] = await dashboard_with(server, [widget("Total", SALES_TOTAL)])
    [viewer] = await watch(server, dashboard_id)
    try:
        await until(lambda: refreshes(viewer, dashboard_id, state="done"))
        reply = await viewer.op("edit", dashboard_id=dashboard_id, ops=[
            {"type": "update_widget", "widget_id": wid, "fields": {"sql": SLOW_TOTAL}}])
        assert reply["ok"]
        await until(lambda: counter.sql[-1] == SLOW_TOTAL)  # the slow query runs now
        edited_at = len(viewer.publications)
        reply = await viewer.op("edit", dashboard_id=dashboard_id, ops=[
            {"type": "update_widget", "widget_id": wid, "fields": {"sql": SALES_COUNT}}])
        assert reply["ok"]
        await until(lambda: any(d["state"] == "done" and d["data"]["sql"].startswith("SELECT count(*)")
                                for d in refreshes(viewer, dashboard_id)))
        await asyncio.sleep(1.5)  # the slow query has ended by now
        after = [p["data"] for p in viewer.publications[edited_at:] if p["type"] == "dashboard_refresh"]
        done = [d for d in after if d["state"] == "done"]
        assert [d["data"]["rows"] for d in done] == [[[3]]], "the old query's result must not be shown after the edit"
    finally:
        await viewer.close()


# ================================================================================================
# PostgreSQL: rows inserted directly (not through livebi) reach the viewers, without and with
# the triggers of `livebi live install-triggers`.

from .test_change_detection import PgSetup, livebi_cli, pg  # noqa: E402,F401  (pg: a fixture)


@pytest.mark.postgres
async def test_rows_inserted_directly_in_postgresql_are_pushed_with_and_without_triggers(
    tmp_path: Path, shop: Path, pg: PgSetup  # noqa: F811  (the imported fixture)
) -> None:
    import asyncpg

    settings = live_settings(tmp_path, shop, warehouses={"pg": pg.reader_dsn}, ingest_access={}, live_change_poll_s=0.2)
    async with run_server(settings) as s:
        live = s.app.state.services.live
        dashboard_id, [wid] = await dashboard_with(s, [widget("Orders", "SELECT count(*) AS n FROM orders")])
        [viewer] = await watch(s, dashboard_id)
        try:
            await until(lambda: refreshes(viewer, dashboard_id, state="done"))
            await until(lambda: live.detection_status().get("pg", {}).get("polls", 0) >= 2)

            def pushed(n: int) -> bool:
                return any(d["data"]["rows"] == [[n]] for d in refreshes(viewer, dashboard_id, reason="data_change", state="done"))

            # without triggers: the statistics counters (a writer that disconnects flushes them)
            await pg.write("INSERT INTO orders (amount, status) VALUES (1, 'new')")
            await until(lambda: pushed(101), timeout=15)
            assert live.detection_status()["pg"]["last_change"]["detected_by"].endswith("poll:pg_stat")

            # with triggers: at once, even from a long-lived writer whose statistics lag
            installed = await asyncio.to_thread(livebi_cli, "live", "install-triggers", "--url", pg.admin_dsn, "--table", "orders")
            assert installed.returncode == 0, installed.stderr
            await until(lambda: live.detection_status()["pg"]["method"] == "listen", timeout=15)
            writer = await asyncpg.connect(pg.admin_dsn)
            try:
                await writer.execute("INSERT INTO orders (amount, status) VALUES (2, 'new')")
                await until(lambda: pushed(102), timeout=5)
                assert live.detection_status()["pg"]["last_change"]["detected_by"] == "listen"
            finally:
                await writer.close()
        finally:
            await viewer.close()
