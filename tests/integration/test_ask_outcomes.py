"""How a question's outcome reaches the client: stored before it is published, slot released
before it is published, a cancel racing the query's own timeout, bugs in the NLP parser and the
viz agent reported as internal errors (logged, counted) without losing the rows."""

from __future__ import annotations

import logging

import httpx

from .conftest import run_server

SLOW_SQL = (
    "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0"
)


async def test_outcome_is_stored_and_slot_released_before_it_is_published(server_settings) -> None:
    """A client that reacts to a result at once (history, next ask) sees the question done."""
    server_settings.max_concurrent_queries_per_user = 1
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        token = await server.token("alice")
        async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
            for i in range(8):
                reply = await client.op("ask", sql=f"SELECT {i} AS n")
                assert reply["ok"], reply
                query_id = reply["data"]["query_id"]
                final = await client.until_final(reply["data"]["channel"])
                assert final["type"] == "result", final
                # React immediately, as a UI does: the next ask must not be refused and the
                # history must already say "done".
                nxt = await client.op("ask", sql="SELECT 1 AS one")
                assert nxt["ok"], f"round {i}: the finished question still held the slot: {nxt}"
                history = (await http.get("/api/history")).json()["queries"]
                status = {q["query_id"]: q["status"] for q in history}
                assert status[query_id] == "done", f"round {i}: published before it was stored"
                await client.until_final(nxt["data"]["channel"])
        await client.close()


async def test_cancel_racing_the_timeout_keeps_the_connection(server_settings) -> None:
    """Cancels that land while a timed-out question is being finished must not escape the op
    handler (that closed the client's socket) nor lose the outcome."""
    server_settings.query_timeout_s = 0.3
    server_settings.op_rate_per_s = 0  # the test sends cancels as fast as it can
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        for _ in range(5):
            reply = await client.op("ask", sql=SLOW_SQL)
            assert reply["ok"], reply
            query_id, channel = reply["data"]["query_id"], reply["data"]["channel"]
            # The moment the timeout's outcome arrives, the server may still be finishing the
            # question: a cancel now races it.
            final = await client.until_final(channel)
            answer = await client.op("cancel", query_id=query_id)
            assert answer["ok"], answer
            assert final["type"] == "error" and final["data"]["code"] == "query_timeout", final
            finals = [p for p in client.on(channel) if p["type"] in ("result", "error")]
            assert len(finals) == 1, finals
            assert (await client.op("ping"))["ok"]
        assert client.closed is None
        await client.close()


async def test_viz_bug_still_delivers_the_rows(server_settings, monkeypatch, caplog) -> None:
    import livebi.pipeline as pipeline

    def broken_choose_chart(*args, **kwargs):
        raise ZeroDivisionError("a bug in the viz agent")

    monkeypatch.setattr(pipeline, "choose_chart", broken_choose_chart)
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        with caplog.at_level(logging.ERROR):
            reply = await client.op("ask", sql="SELECT region, count(*) AS n FROM customers GROUP BY 1 ORDER BY 1")
            final = await client.until_final(reply["data"]["channel"])
        assert final["type"] == "result", final
        data = final["data"]
        assert data["row_count"] == 5 and len(data["rows"]) == 5
        assert data["chart"]["type"] == "table"
        assert any("could not build the chart" in w for w in data["warnings"]), data
        assert any(r.exc_info and "ZeroDivisionError" in r.getMessage() + str(r.exc_info) for r in caplog.records)
        metrics = await _metrics(server)
        assert 'livebi_internal_errors_total{component="viz"} 1.0' in metrics
        await client.close()


async def test_parser_bug_is_an_internal_error_not_not_understood(server_settings, monkeypatch, caplog) -> None:
    import livebi.agents.nlp.parser as parser

    def broken_link(*args, **kwargs):
        raise KeyError("a bug in the linker")

    monkeypatch.setattr(parser, "link", broken_link)
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        with caplog.at_level(logging.ERROR):
            reply = await client.op("ask", question="total revenue by region")
            final = await client.until_final(reply["data"]["channel"])
        assert final["type"] == "error", final
        assert final["data"]["code"] == "internal" and final["data"]["stage"] == "nlp_processing", final
        assert any(r.exc_info for r in caplog.records), "the bug must be logged with its traceback"
        metrics = await _metrics(server)
        assert 'livebi_internal_errors_total{component="nlp"} 1.0' in metrics
        await client.close()


async def _metrics(server) -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.get("/metrics")
        assert response.status_code == 200, response.text
        return response.text
