"""Reused work on a real server over WebSocket (answer_cache.py, issue 11): identical concurrent
asks share one execution, results are reused until their tables change or they age out, a user
kept off a warehouse never gets its cached rows, ``fresh`` reads again."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any


from livebi.config import Settings

from .conftest import LiveServer, free_port, run_server

POLL_S = 0.1
#: a DuckDB query on the 20k-row demo that runs long enough for every ask to arrive meanwhile
SLOW_SQL = "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity = b.quantity AND a.order_id < b.order_id"


def make_sqlite(path: Path, rows: list[tuple[str, float]]) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE sales (region TEXT, amount REAL)")
    con.executemany("INSERT INTO sales VALUES (?, ?)", rows)
    con.commit()
    con.close()


def settings_for(tmp_path: Path, warehouses: dict[str, str], **kw: Any) -> Settings:
    return Settings(
        data_dir=tmp_path, warehouses=warehouses, store_url=f"sqlite:///{tmp_path / 'meta.db'}",
        secret_key="test-secret", port=free_port(), live_change_poll_s=POLL_S, op_rate_per_s=0, **kw,
    )


async def ask(client: Any, **fields: Any) -> dict[str, Any]:
    reply = await client.op("ask", **fields)
    assert reply["ok"], reply
    final = await client.until_final(reply["data"]["channel"])
    assert final["type"] == "result", final
    return final["data"]


async def ask_until_cached(client: Any, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
    """Ask until the answer comes from the cache (the first results on a table are not stored
    until its change detector has a baseline)."""
    async with asyncio.timeout(timeout):
        while True:
            data = await ask(client, **fields)
            if data["cached"]:
                return data
            await asyncio.sleep(POLL_S)


def services(server: LiveServer) -> Any:
    return server.app.state.services


async def test_identical_concurrent_asks_run_the_warehouse_once(tmp_path: Path, demo_duckdb: Path) -> None:
    settings = settings_for(tmp_path, {"demo": f"duckdb:///{demo_duckdb}"}, result_cache_s=0)
    async with run_server(settings) as server:
        flights = services(server).pipeline.flights
        clients = [await server.connect(user) for user in ("alice", "alice", "bob", "bob")]
        started, joined = flights.started, flights.joined
        replies = await asyncio.gather(*(c.op("ask", sql=SLOW_SQL) for c in clients))
        finals = [await c.until_final(r["data"]["channel"]) for c, r in zip(clients, replies)]
        assert [f["type"] for f in finals] == ["result"] * 4, finals
        assert flights.started - started == 1 and flights.joined - joined == 3
        assert len({f["data"]["query_id"] for f in finals}) == 4  # each its own answer
        assert len({tuple(map(tuple, f["data"]["rows"])) for f in finals}) == 1
        for client, reply, final in zip(clients, replies, finals):
            channel = reply["data"]["channel"]
            assert final["data"]["cached"] is False
            progress = [p["data"]["substage"] for p in client.on(channel) if p["type"] == "progress"]
            assert "sql_validation" in progress and "result_processing" in progress, progress
        # the history has one entry per asker
        for user, client in (("alice", clients[0]), ("bob", clients[2])):
            rows = await services(server).store.history(await _user_id(server, user))
            assert sum(1 for row in rows if row["sql"] == finals[0]["data"]["sql"]) == 2, rows
        # the next ask, alone, runs again (nothing cached: result_cache_s is 0)
        await ask(clients[0], sql=SLOW_SQL)
        assert flights.started - started == 2
        for c in clients:
            await c.close()


async def test_cancelling_one_asker_leaves_the_shared_query_to_the_other(tmp_path: Path, demo_duckdb: Path) -> None:
    settings = settings_for(tmp_path, {"demo": f"duckdb:///{demo_duckdb}"}, result_cache_s=0)
    async with run_server(settings) as server:
        alice, bob = await server.connect("alice"), await server.connect("bob")
        first = await alice.op("ask", sql=SLOW_SQL)
        second = await bob.op("ask", sql=SLOW_SQL)
        await asyncio.sleep(0.05)
        assert (await alice.op("cancel", query_id=first["data"]["query_id"]))["ok"]
        cancelled = await alice.until_final(first["data"]["channel"])
        assert cancelled["type"] == "error" and cancelled["data"]["code"] == "cancelled"
        final = await bob.until_final(second["data"]["channel"])
        assert final["type"] == "result" and final["data"]["rows"][0][0] > 0
        await alice.close()
        await bob.close()


async def test_a_data_change_invalidates_the_cached_result(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    make_sqlite(db, [("north", 1.0), ("south", 2.0)])
    async with run_server(settings_for(tmp_path, {"wh": f"sqlite:///{db}"})) as server:
        flights = services(server).pipeline.flights
        client = await server.connect("alice")
        sql = "SELECT count(*) AS n, sum(amount) AS total FROM sales"
        first = await ask(client, sql=sql)
        assert first["cached"] is False and first["rows"] == [[2, 3.0]] and first["as_of"]
        cached = await ask_until_cached(client, sql=sql)
        assert cached["rows"] == [[2, 3.0]] and cached["cache_age_s"] >= 0 and cached["as_of"]
        runs = flights.started
        assert (await ask(client, sql=sql))["cached"] and flights.started == runs  # no execution
        # another program writes; the detector notices within its poll interval
        con = sqlite3.connect(db)
        con.execute("INSERT INTO sales VALUES ('east', 4.0)")
        con.commit()
        con.close()
        results = services(server).results
        async with asyncio.timeout(5):
            while results.invalidated == 0:
                await asyncio.sleep(POLL_S / 2)
        again = await ask(client, sql=sql)
        assert again["cached"] is False and again["rows"] == [[3, 7.0]]
        assert flights.started == runs + 1
        await client.close()


async def test_a_user_without_access_never_gets_the_cached_result(tmp_path: Path) -> None:
    secret, public = tmp_path / "secret.sqlite", tmp_path / "public.sqlite"
    make_sqlite(secret, [("north", 1000.0)])
    make_sqlite(public, [("north", 1.0)])
    settings = settings_for(tmp_path, {"public": f"sqlite:///{public}", "secret": f"sqlite:///{secret}"},
                            warehouse_access={"secret": ["alice"]})
    async with run_server(settings) as server:
        alice, bob = await server.connect("alice"), await server.connect("bob")
        sql = "SELECT region, sum(amount) AS total FROM sales GROUP BY region"
        cached = await ask_until_cached(alice, sql=sql, warehouse="secret")
        assert cached["rows"] == [["north", 1000.0]]
        refused = await bob.op("ask", sql=sql, warehouse="secret")
        assert not refused["ok"] and refused["error"]["code"] == "forbidden"
        for fields in ({"warehouse": "public"}, {}):  # named, and bob's default warehouse
            data = await ask(bob, sql=sql, **fields)
            assert data["warehouse"] == "public" and data["rows"] == [["north", 1.0]]
        await alice.close()
        await bob.close()


async def test_cached_results_age_out(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    make_sqlite(db, [("north", 1.0)])
    async with run_server(settings_for(tmp_path, {"wh": f"sqlite:///{db}"}, result_cache_s=1.0)) as server:
        client = await server.connect("alice")
        sql = "SELECT sum(amount) AS total FROM sales"
        cached = await ask_until_cached(client, sql=sql)
        assert cached["cache_age_s"] < 1.0
        await asyncio.sleep(1.1)
        assert (await ask(client, sql=sql))["cached"] is False
        await client.close()


async def test_fresh_reads_the_warehouse_again(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    make_sqlite(db, [("north", 1.0)])
    async with run_server(settings_for(tmp_path, {"wh": f"sqlite:///{db}"})) as server:
        flights = services(server).pipeline.flights
        client = await server.connect("alice")
        sql = "SELECT sum(amount) AS total FROM sales"
        old = await ask_until_cached(client, sql=sql)
        runs_before = flights.started
        fresh = await ask(client, sql=sql, fresh=True)
        assert fresh["cached"] is False and fresh["as_of"] > old["as_of"]
        # the fresh answer refreshed the cache: the next one is served from it, newer
        after = await ask(client, sql=sql)
        assert after["cached"] is True and after["as_of"] == fresh["as_of"]
        assert flights.started == runs_before  # fresh runs outside the flights
        await client.close()


async def test_volatile_queries_are_never_cached(tmp_path: Path) -> None:
    db = tmp_path / "wh.sqlite"
    make_sqlite(db, [("north", 1.0)])
    async with run_server(settings_for(tmp_path, {"wh": f"sqlite:///{db}"})) as server:
        client = await server.connect("alice")
        await ask_until_cached(client, sql="SELECT sum(amount) AS total FROM sales")  # the table has a baseline
        for _ in range(3):
            data = await ask(client, sql="SELECT sum(amount) AS total, random() AS r FROM sales")
            assert data["cached"] is False
        await client.close()


async def _user_id(server: LiveServer, username: str) -> str:
    user = await services(server).store.get_user(username=username)
    return user["id"]


async def test_the_parse_cache_is_keyed_by_the_schema_version(tmp_path: Path) -> None:
    from livebi.agents.nlp import NLPAgent
    from livebi.warehouse.registry import open_warehouse

    db = tmp_path / "wh.sqlite"
    make_sqlite(db, [("north", 1.0), ("south", 2.0)])
    wh = open_warehouse("wh", f"sqlite:///{db}")
    agent = NLPAgent(schema_check_interval_s=0)  # the fingerprint is checked before every question
    try:
        model = await agent.model_for(wh)
        first = await agent.answer("total amount by region", model, wh)
        again = await agent.answer("total amount by region", model, wh)
        assert agent.parses.hits == 1 and again.sql == first.sql and again is not first
        again.assumptions.append("edited by a caller")  # a caller's edits stay its own
        assert "edited by a caller" not in (await agent.answer("total amount by region", model, wh)).assumptions
        con = sqlite3.connect(db)
        con.execute("ALTER TABLE sales RENAME COLUMN amount TO net_amount")
        con.commit()
        con.close()
        rebuilt = await agent.model_for(wh)
        assert rebuilt is not model
        hits = agent.parses.hits
        after = await agent.answer("total amount by region", rebuilt, wh)
        assert agent.parses.hits == hits, "a parse made for the old schema was reused"
        assert "net_amount" in after.sql and after.sql != first.sql
    finally:
        await wh.close()


async def test_rows_ingested_through_livebi_invalidate_at_once(tmp_path: Path, demo_duckdb: Path) -> None:
    import shutil

    import httpx

    from .test_ingest import order

    path = tmp_path / "live.duckdb"
    shutil.copy(demo_duckdb, path)
    settings = settings_for(tmp_path, {"demo": f"duckdb:///{path}"}, ingest_access={"demo": ["alice"]})
    async with run_server(settings) as server:
        client = await server.connect("alice")
        sql = "SELECT count(*) AS n FROM orders"
        before = (await ask_until_cached(client, sql=sql))["rows"][0][0]
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
            response = await http.post("/api/tables/orders/rows", json={"rows": [order(900_001)]},
                                       headers={"Authorization": f"Bearer {await server.token('alice')}"})
        assert response.status_code == 200, response.text
        after = await ask(client, sql=sql)  # no waiting for a poll: ingest signalled the change
        assert after["cached"] is False and after["rows"][0][0] == before + 1
        await client.close()
