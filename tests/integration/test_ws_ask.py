"""Asking over a real WebSocket on a real server and a real DuckDB demo warehouse."""

from __future__ import annotations


import pytest


from .conftest import run_server

SLOW_SQL = (
    "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0"
)


async def test_ask_streams_progress_through_every_stage_then_result(live_server) -> None:
    client = await live_server.connect("alice")
    reply = await client.op("ask", question="total revenue by region")
    assert reply["ok"], reply
    channel = reply["data"]["channel"]
    final = await client.until_final(channel)
    assert final["type"] == "result", final
    pubs = client.on(channel)
    seqs = [p["seq"] for p in pubs]
    assert seqs == list(range(1, len(pubs) + 1)), "seq must increase by one with nothing missing"
    progress = [p["data"] for p in pubs if p["type"] == "progress"]
    stages = [p["stage"] for p in progress]
    # Stages appear in order, each at least once, never going back.
    order = ["nlp_processing", "data_processing", "visualization"]
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == order
    substages = {p["substage"] for p in progress}
    assert {"intent_extraction", "sql_generation", "sql_validation", "sql_execution", "chart_selection"} <= substages
    percents = [p["progress"] for p in progress]
    assert percents == sorted(percents) and all(0 <= x <= 100 for x in percents)
    result = final["data"]
    assert result["query_id"] == reply["data"]["query_id"]
    assert "region" in [c.lower() for c in result["columns"]]
    assert result["row_count"] == 5 and len(result["rows"]) == 5
    assert result["sql"].lower().startswith(("select", "with"))
    assert result["chart"]["type"] in ("bar", "column", "pie") and result["chart"]["figure"]["data"]
    assert set(result["timings_ms"]) >= {"nlp", "data", "viz", "total"}
    await client.close()


async def test_result_matches_the_warehouse(live_server, demo_duckdb) -> None:
    import duckdb

    client = await live_server.connect("alice")
    reply = await client.op("ask", question="total revenue by region")
    final = await client.until_final(reply["data"]["channel"])
    got = {row[0]: row[1] for row in final["data"]["rows"]}
    con = duckdb.connect(str(demo_duckdb), read_only=True)
    expected = dict(con.execute(
        "SELECT c.region, sum(o.revenue) FROM orders o JOIN customers c USING (customer_id) GROUP BY 1"
    ).fetchall())
    con.close()
    assert got.keys() == expected.keys()
    for k in got:
        assert got[k] == pytest.approx(float(expected[k]), rel=1e-6)
    await client.close()


async def test_slow_query_reports_engine_progress_and_cancel_stops_it(live_server) -> None:
    client = await live_server.connect("alice")
    reply = await client.op("ask", sql=SLOW_SQL)
    assert reply["ok"], reply
    channel, query_id = reply["data"]["channel"], reply["data"]["query_id"]
    # Wait for at least three progress messages from the running engine.
    await client._wait_for(
        lambda: len([p for p in client.on(channel) if p["data"].get("substage") == "sql_execution"]) >= 4, timeout=20
    )
    cancel = await client.op("cancel", query_id=query_id)
    assert cancel["ok"] and cancel["data"]["cancelled"] is True
    final = await client.until_final(channel, timeout=10)
    assert final["type"] == "error"
    assert final["data"]["code"] == "cancelled" and final["data"]["stage"] == "data_processing"
    executing = [p["data"] for p in client.on(channel) if p["data"].get("substage") == "sql_execution"]
    assert len(executing) >= 4
    # Engine progress reports carry a details line and a percent inside the execution band.
    assert all(30 <= p["progress"] <= 80 for p in executing)
    # The server is still fine: the next question is answered.
    again = await client.op("ask", question="how many orders")
    assert (await client.until_final(again["data"]["channel"]))["type"] == "result"
    await client.close()


async def test_timeout_stops_the_engine_and_names_the_stage(server_settings) -> None:
    server_settings.query_timeout_s = 1.0
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        reply = await client.op("ask", sql=SLOW_SQL)
        final = await client.until_final(reply["data"]["channel"], timeout=20)
        assert final["data"]["code"] == "query_timeout" and final["data"]["stage"] == "data_processing"
        await client.close()


async def test_unknown_question_gets_nlp_error_with_suggestions(live_server) -> None:
    client = await live_server.connect("alice")
    reply = await client.op("ask", question="purple monkey dishwasher")
    final = await client.until_final(reply["data"]["channel"])
    assert final["type"] == "error"
    data = final["data"]
    assert data["stage"] == "nlp_processing" and data["code"] == "not_understood"
    assert data["suggestions"], "example questions for this schema are suggested"
    await client.close()


@pytest.mark.parametrize(
    "sql, code",
    [
        ("DELETE FROM orders", "forbidden_sql"),
        ("SELECT 1; DROP TABLE orders", "multiple_statements"),
        ("INSERT INTO orders SELECT * FROM orders", "forbidden_sql"),
        ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_sql"),
        ("SELECT nope FROM orders", "unknown_column"),
        ("SELECT * FROM ordrs", "unknown_table"),
        ("SELEC 1", "invalid_sql"),
    ],
)
async def test_sql_that_writes_or_is_wrong_is_refused_at_validation(live_server, sql, code) -> None:
    client = await live_server.connect("alice")
    reply = await client.op("ask", sql=sql)
    final = await client.until_final(reply["data"]["channel"])
    assert final["type"] == "error"
    assert final["data"]["stage"] == "data_processing" and final["data"]["code"] == code
    await client.close()


async def test_power_user_sql_goes_through_the_same_stages(live_server) -> None:
    client = await live_server.connect("alice")
    reply = await client.op("ask", sql="SELECT segment, count(*) AS customers FROM customers GROUP BY segment")
    final = await client.until_final(reply["data"]["channel"])
    assert final["type"] == "result" and final["data"]["engine"] == "sql"
    assert final["data"]["row_count"] == 4
    stages = {p["data"]["stage"] for p in client.on(reply["data"]["channel"]) if p["type"] == "progress"}
    assert stages == {"nlp_processing", "data_processing", "visualization"}
    await client.close()
