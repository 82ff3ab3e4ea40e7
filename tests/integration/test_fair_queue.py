"""Heavy queries from two accounts cannot starve a third user (fair queue per warehouse)."""

from __future__ import annotations

import asyncio

from . import conftest
from .conftest import run_server

HEAVY_SQL = (
    "SELECT count(*) AS n, {k} AS k FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0"
)
#: each attacker's query distinct: identical ones would share one execution (single flight)
_heavy = iter(range(1_000_000))


def heavy_sql() -> str:
    return HEAVY_SQL.format(k=next(_heavy))


async def test_queued_query_is_served_in_turn_and_its_wait_is_not_charged(server_settings, monkeypatch) -> None:
    monkeypatch.setitem(conftest.USERS, "carol", "carol-pw")
    server_settings.warehouse_max_concurrent_queries = 2
    server_settings.warehouse_max_concurrent_queries_per_user = 1
    server_settings.query_timeout_s = 1.5
    async with run_server(server_settings) as server:
        attackers = [await server.connect("alice"), await server.connect("bob")]
        heavy = []
        for client in attackers:
            for _ in range(3):
                reply = await client.op("ask", sql=heavy_sql())
                assert reply["ok"], reply
                heavy.append((client, reply["data"]["channel"]))
        await asyncio.sleep(0.3)  # both slots now run heavy queries; four more wait
        victim = await server.connect("carol")
        reply = await victim.op("ask", sql="SELECT 1 AS one")
        channel = reply["data"]["channel"]
        final = await victim.until_final(channel, timeout=30)
        # It waited for a slot (about one heavy timeout) longer than its own timeout, yet
        # succeeded: the queue time is not charged to the query.
        assert final["type"] == "result", final
        assert final["data"]["rows"] == [[1]]
        queued = [p["data"] for p in victim.on(channel) if p["type"] == "progress" and p["data"]["substage"] == "queued"]
        assert queued, "waiting must be reported as progress"
        assert all(q["stage"] == "data_processing" and "free slot" in q["details"] for q in queued)
        assert "next in line" in queued[0]["details"], queued[0]
        for client, ch in heavy:
            await client.until_final(ch, timeout=60)
        # Least recently served first: the victim takes the first slot that frees after it
        # started waiting, ahead of the attackers' queued queries. Judged by server timestamps
        # (when it was first reported queued, when each query started running), not by when
        # queries ended, which depends on how busy the CPU is.

        def started(client, ch) -> float:
            return min(p["ts"] for p in client.on(ch) if p["type"] == "progress" and p["data"]["substage"] == "sql_execution")

        waiting_since = min(p["ts"] for p in victim.on(channel) if p["type"] == "progress" and p["data"]["substage"] == "queued")
        overtook = [s for s in (started(client, ch) for client, ch in heavy) if waiting_since < s < started(victim, channel)]
        assert not overtook, f"{len(overtook)} attacker queries started while the victim waited"
        for client in attackers:
            await client.close()
        await victim.close()


async def test_default_limits_let_a_third_user_run_at_once(server_settings, monkeypatch) -> None:
    monkeypatch.setitem(conftest.USERS, "carol", "carol-pw")
    server_settings.query_timeout_s = 3
    async with run_server(server_settings) as server:
        attackers = [await server.connect("alice"), await server.connect("bob")]
        channels = []
        for client in attackers:
            for _ in range(4):
                reply = await client.op("ask", sql=heavy_sql())
                channels.append((client, reply["data"]["channel"]))
        await asyncio.sleep(0.3)
        victim = await server.connect("carol")
        reply = await victim.op("ask", sql="SELECT 1 AS one")
        final = await victim.until_final(reply["data"]["channel"], timeout=30)
        assert final["type"] == "result", final
        progress = [p["data"]["substage"] for p in victim.on(reply["data"]["channel"]) if p["type"] == "progress"]
        assert "queued" not in progress, "with the default per-user limit two accounts cannot fill the warehouse"
        for client, ch in channels:
            await client.until_final(ch, timeout=60)
        for client in attackers:
            await client.close()
        await victim.close()
