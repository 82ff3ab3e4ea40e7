"""Remote agents for real: ``livebi agent data|nlp|viz`` processes on loopback, a livebi server
reaching them through its pools, real WebSockets and HTTP streams, and a small TCP proxy in the
test that cuts the WebSockets (only those) to show the fallback to HTTP and the way back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest
import websockets

from livebi.config import Settings

from .conftest import free_port, run_server

LIVEBI = str(Path(sys.executable).parent / "livebi")
TOKEN = "remote-agents-test-token"
# ~1-3 s of DuckDB work with engine progress on the 20k-row demo
MEDIUM_SQL = (
    "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0 WHERE c.order_id < 6"
)
SLOW_SQL = (
    "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0"
)


class AgentProcess:
    def __init__(self, kind: str, demo: Path, tmp_path: Path, *, token: str = TOKEN) -> None:
        self.kind, self.port = kind, free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.log = open(tmp_path / f"agent-{kind}-{self.port}.log", "w")
        env = {**os.environ, "LIVEBI_DATA_DIR": str(tmp_path), "LIVEBI_AGENT_TOKEN": token,
               "LIVEBI_DUCKDB_THREADS": "1"}
        self.proc = subprocess.Popen(
            [LIVEBI, "agent", kind, "--port", str(self.port), "--warehouse", f"demo=duckdb:///{demo}",
             "--log-level", "warning"], env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def ready_sync(self) -> "AgentProcess":
        for _ in range(400):
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}: {Path(self.log.name).read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health").status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("agent did not start")

    async def ready(self) -> "AgentProcess":
        async with httpx.AsyncClient() as http:
            for _ in range(400):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {self.proc.returncode}: {Path(self.log.name).read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{self.port}/health")).status_code == 200:
                        return self
                await asyncio.sleep(0.05)
        raise RuntimeError("agent did not start")

    async def stats(self) -> dict:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{self.port}/stats", headers={"Authorization": f"Bearer {TOKEN}"})
            r.raise_for_status()
            return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@contextlib.asynccontextmanager
async def agents(*kinds: str, demo: Path, tmp_path: Path) -> AsyncIterator[list[AgentProcess]]:
    started = [AgentProcess(kind, demo, tmp_path) for kind in kinds]
    try:
        yield [await a.ready() for a in started]
    finally:
        for a in started:
            a.stop()


@pytest.fixture(scope="module")
def data_agent(demo_duckdb, tmp_path_factory) -> AgentProcess:
    """One data agent shared by the tests below that only read its counters as differences."""
    agent = AgentProcess("data", demo_duckdb, tmp_path_factory.mktemp("agent")).ready_sync()
    yield agent
    agent.stop()


def delta(after: dict, before: dict) -> dict:
    return {key: after[key] - before[key] for key in after if isinstance(after[key], int)}


class WebSocketCutter:
    """A TCP proxy to one agent that forwards everything, and can cut every WebSocket through
    it and refuse new ones while HTTP requests still pass (``cut``), until ``mend``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cutting = False
        self.websockets: set[asyncio.StreamWriter] = set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> "WebSocketCutter":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        upgrade = b"upgrade: websocket" in head.lower()
        if upgrade and self.cutting:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        up_writer.write(head)
        if upgrade:
            self.websockets.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.websockets.difference_update((writer, up_writer))

    def cut(self) -> None:
        self.cutting = True
        for w in list(self.websockets):
            w.transport.abort()  # a reset, as when a link or a process dies
        self.websockets.clear()

    def mend(self) -> None:
        self.cutting = False

    async def close(self) -> None:
        self.cut()
        self.server.close()


async def cancel_on_agent(client, asked: dict, agent: AgentProcess, start: dict, *, cancelled: int) -> None:
    """Cancel the question ``asked``; the asker is told, and the agent counts ``cancelled``
    calls stopped since ``start`` (its query interrupted)."""
    cancel = await client.op("cancel", query_id=asked["query_id"])
    assert cancel["ok"] and cancel["data"]["cancelled"]
    assert (await client.until_final(asked["channel"]))["data"]["code"] == "cancelled"
    for _ in range(100):
        if delta(await agent.stats(), start)["cancelled"] == cancelled:
            break
        await asyncio.sleep(0.05)
    assert delta(await agent.stats(), start)["cancelled"] == cancelled, "the agent stopped the query"


def server_settings(tmp_path: Path, demo: Path, **agent_settings) -> Settings:
    return Settings(
        data_dir=tmp_path, warehouses={"demo": f"duckdb:///{demo}"}, store_url=f"sqlite:///{tmp_path / 'meta.db'}",
        secret_key="test-secret", port=free_port(), agent_token=TOKEN,
        result_cache_s=0,  # every question reaches the agent: the tests count its calls
        **agent_settings,
    )


def stages(client, channel: str) -> list[tuple[str, str]]:
    return [(p["data"]["stage"], p["data"]["substage"]) for p in client.on(channel) if p["type"] == "progress"]


async def test_every_agent_remote_answers_a_question_with_progress_like_in_process(tmp_path, demo_duckdb) -> None:
    async with agents("nlp", "data", "viz", demo=demo_duckdb, tmp_path=tmp_path) as (nlp, data, viz):
        settings = server_settings(tmp_path, demo_duckdb, nlp_agent_urls=[nlp.url], data_agent_urls=[data.url],
                                   viz_agent_urls=[viz.url])
        async with run_server(settings) as server:
            client = await server.connect("alice")
            reply = await client.op("ask", question="total revenue by region")
            final = await client.until_final(reply["data"]["channel"])
            assert final["type"] == "result", final
            result = final["data"]
            assert result["engine"] == "parser" and result["columns"] and result["rows"]
            assert result["chart"]["type"] in ("bar", "column", "pie") and result["chart"]["figure"]
            seen = stages(client, reply["data"]["channel"])
            assert ("nlp_processing", "schema_linking") in seen, "the NLP agent's own substages come through"
            assert ("data_processing", "result_processing") in seen and ("visualization", "chart_generation") in seen
            percents = [p["data"]["progress"] for p in client.on(reply["data"]["channel"]) if p["type"] == "progress"]
            assert percents == sorted(percents)

            # slow SQL: engine progress from the remote warehouse streams through
            reply = await client.op("ask", sql=MEDIUM_SQL)
            final = await client.until_final(reply["data"]["channel"], timeout=60)
            assert final["type"] == "result", final
            assert final["data"]["rows"] == [[5 * 20_000 * 20_000]]
            executing = [s for s in stages(client, reply["data"]["channel"]) if s[1] == "sql_execution"]
            assert len(executing) >= 2

            # a large result (serialized, parsed, bounded and charted off the event loops) arrives whole
            reply = await client.op("ask", sql="SELECT order_id, customer_id, revenue FROM orders ORDER BY order_id LIMIT 3000")
            final = await client.until_final(reply["data"]["channel"])
            assert final["type"] == "result" and final["data"]["row_count"] == 3000 and not final["data"]["truncated"]
            assert [row[0] for row in final["data"]["rows"][:3]] == [1, 2, 3] and final["data"]["chart"]["type"]

            # a refusal stays a refusal, with its code, whether the server or the agent refuses
            reply = await client.op("ask", sql="DELETE FROM orders")
            final = await client.until_final(reply["data"]["channel"])
            assert (final["type"], final["data"]["code"], final["data"]["stage"]) == ("error", "forbidden_sql", "data_processing")
            reply = await client.op("ask", question="purple monkey dishwasher")
            final = await client.until_final(reply["data"]["channel"])
            assert final["data"]["code"] == "not_understood" and final["data"]["suggestions"]
            await client.close()
        nlp_stats, data_stats, viz_stats = await nlp.stats(), await data.stats(), await viz.stats()
        assert (nlp_stats["websocket"], nlp_stats["failed"]) == (1, 1)  # not understood: an answer, not a success
        assert viz_stats["websocket"] == 3
        assert data_stats["websocket"] == 3, "the server refused the DELETE itself, before any call"


async def test_websocket_cut_mid_question_falls_back_to_http_then_returns(tmp_path, demo_duckdb, data_agent) -> None:
    data = data_agent
    start = await data.stats()
    cutter = await WebSocketCutter(data.port).start()
    settings = server_settings(tmp_path, demo_duckdb, data_agent_urls=[f"ws://127.0.0.1:{cutter.port}"],
                               agent_ws_failures_before_http=2, agent_probe_interval_s=0.3,
                               agent_backoff_base_s=0.05)
    try:
        async with run_server(settings) as server:
            client = await server.connect("alice")
            assert (await client.op("subscribe", channel="system"))["ok"]
            reply = await client.op("ask", sql=MEDIUM_SQL)
            channel = reply["data"]["channel"]
            await client._wait_for(lambda: any(s[1] == "sql_execution" for s in stages(client, channel)), timeout=30)
            cutter.cut()  # mid-question: the WebSocket dies and no new one gets through
            final = await client.until_final(channel, timeout=60)
            assert final["type"] == "result", final
            assert final["data"]["rows"] == [[5 * 20_000 * 20_000]]
            notice = await client._wait_for(lambda: [p for p in client.on("system") if p["type"] == "service_degradation"])
            assert notice[0]["data"] == {
                "active": True, "component": "data_agent", "mode": "http", "transport": "http",
                "message": notice[0]["data"]["message"],
            }
            stats = delta(await data.stats(), start)
            assert stats["http"] == 1 and stats["cancelled"] == 1, stats  # the cut call stopped on the agent

            # while WebSockets stay cut, questions still get answers (over HTTP, with progress)
            reply = await client.op("ask", question="how many orders")
            final = await client.until_final(reply["data"]["channel"])
            assert final["type"] == "result"
            assert ("data_processing", "result_processing") in stages(client, reply["data"]["channel"])
            assert delta(await data.stats(), start)["http"] == 2

            # cancelling a question over HTTP closes its stream, and the agent stops the query
            slow = await client.op("ask", sql=SLOW_SQL)
            await client._wait_for(lambda: any(s[1] == "sql_execution" for s in stages(client, slow["data"]["channel"])))
            await cancel_on_agent(client, slow["data"], data, start, cancelled=2)

            cutter.mend()  # the probe finds the WebSocket again and says so
            back = await client._wait_for(
                lambda: [p for p in client.on("system") if p["type"] == "service_degradation" and not p["data"]["active"]],
                timeout=20)
            assert back[0]["data"]["transport"] == "websocket"
            async with httpx.AsyncClient() as http:
                health = (await http.get(f"{server.base_url}/health")).json()
            assert health["agents"]["data"]["transport"] == "websocket" and health["agents"]["data"]["calls"]["http"] == 2
            before = (await data.stats())["websocket"]
            reply = await client.op("ask", question="how many orders")
            assert (await client.until_final(reply["data"]["channel"]))["type"] == "result"
            assert (await data.stats())["websocket"] == before + 1
            await client.close()
    finally:
        await cutter.close()


async def test_pool_refuses_beyond_its_maximum_and_cancel_reaches_the_agent(tmp_path, demo_duckdb, data_agent) -> None:
    data = data_agent
    start = await data.stats()
    settings = server_settings(tmp_path, demo_duckdb, data_agent_urls=[data.url], agent_max_connections=1,
                               agent_pool_timeout_s=0.5)
    async with run_server(settings) as server:
        alice, bob = await server.connect("alice"), await server.connect("bob")
        slow = await alice.op("ask", sql=SLOW_SQL)
        await alice._wait_for(lambda: any(s[1] == "sql_execution" for s in stages(alice, slow["data"]["channel"])))
        reply = await bob.op("ask", question="how many orders")
        final = await bob.until_final(reply["data"]["channel"])
        assert final["type"] == "error"
        assert (final["data"]["code"], final["data"]["stage"]) == ("agent_pool_exhausted", "data_processing")
        assert "1 connections" in final["data"]["message"] and final["data"]["suggestions"]

        await cancel_on_agent(alice, slow["data"], data, start, cancelled=1)
        # the slot is free again
        reply = await bob.op("ask", question="how many orders")
        assert (await bob.until_final(reply["data"]["channel"]))["type"] == "result"
        await alice.close()
        await bob.close()


async def test_round_robin_over_two_agents_and_unavailable_when_both_are_gone(tmp_path, demo_duckdb) -> None:
    async with agents("data", "data", demo=demo_duckdb, tmp_path=tmp_path) as (one, two):
        settings = server_settings(tmp_path, demo_duckdb, data_agent_urls=[one.url, two.url],
                                   agent_call_attempts=2, agent_backoff_base_s=0.05, row_cap=7)
        async with run_server(settings) as server:
            client = await server.connect("alice")
            for _ in range(3):
                reply = await client.op("ask", question="how many orders")
                assert (await client.until_final(reply["data"]["channel"]))["type"] == "result"
            # the agents' row_cap is 10,000; the server's own (7) bounds what comes back too
            reply = await client.op("ask", sql="SELECT order_id FROM orders")
            final = await client.until_final(reply["data"]["channel"])
            assert (final["data"]["row_count"], len(final["data"]["rows"]), final["data"]["truncated"]) == (7, 7, True)
            assert ((await one.stats())["websocket"], (await two.stats())["websocket"]) == (2, 2)
            one.stop()
            two.stop()
            reply = await client.op("ask", question="how many orders")
            final = await client.until_final(reply["data"]["channel"])
            assert (final["data"]["code"], final["data"]["stage"]) == ("agent_unavailable", "data_processing")
            await client.close()


async def test_an_unreachable_viz_agent_leaves_the_rows_as_a_table(tmp_path, demo_duckdb) -> None:
    settings = server_settings(tmp_path, demo_duckdb, viz_agent_urls=[f"ws://127.0.0.1:{free_port()}"],
                               agent_call_attempts=2, agent_backoff_base_s=0.05)
    async with run_server(settings) as server:
        client = await server.connect("alice")
        reply = await client.op("ask", question="total revenue by region")
        final = await client.until_final(reply["data"]["channel"])
        assert final["type"] == "result" and final["data"]["rows"]
        assert final["data"]["chart"]["type"] == "table"
        assert any("agent_unavailable" in w for w in final["data"]["warnings"])
        await client.close()


async def test_agent_refuses_unauthenticated_callers_and_validates_sql_itself(data_agent) -> None:
    data = data_agent
    start = await data.stats()
    base = f"127.0.0.1:{data.port}"
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": TOKEN}):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(f"ws://{base}/agent", additional_headers=headers)
        assert refused.value.response.status_code == 403
    call = {"id": "1", "op": "run", "args": {"warehouse": "demo", "sql": "SELECT count(*) FROM orders"}}
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"http://{base}/agent/call", json=call)).status_code == 401
        assert (await http.get(f"http://{base}/stats")).status_code == 401
    stats = delta(await data.stats(), start)
    assert (stats["refused"], stats["http"], stats["websocket"]) == (5, 0, 0)

    # a caller with the token still cannot write: the agent validates again
    async with websockets.connect(f"ws://{base}/agent", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert json.loads(await ws.recv()) == {"type": "hello", "agent": "data", "protocol": 1,
                                              "max_message_bytes": 16 * 1024 * 1024}
        await ws.send(json.dumps({"id": "2", "op": "run", "args": {"warehouse": "demo", "sql": "DROP TABLE orders"}}))
        answer = json.loads(await ws.recv())
        assert (answer["type"], answer["kind"], answer["code"]) == ("error", "warehouse", "forbidden_sql")
        await ws.send(json.dumps({"id": "3", "op": "answer", "args": {}}))
        assert json.loads(await ws.recv())["code"] == "invalid_op"
        await ws.send(b"\xff not json")
        assert json.loads(await ws.recv())["code"] == "bad_json"
        await ws.send(json.dumps({"id": "4", "op": "run", "args": {"warehouse": "demo", "sql": "SELECT count(*) AS n FROM customers WHERE 1 = 0"}}))
        while (answer := json.loads(await ws.recv()))["type"] == "progress":
            pass
        assert answer["data"]["rows"] == [[0]], f"the connection still serves: {answer}"


def test_agent_does_not_start_without_a_token(tmp_path) -> None:
    env = {**os.environ, "LIVEBI_DATA_DIR": str(tmp_path), "LIVEBI_AGENT_TOKEN": ""}
    done = subprocess.run([LIVEBI, "agent", "viz", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "LIVEBI_AGENT_TOKEN" in done.stderr
