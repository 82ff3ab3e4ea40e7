"""The agent notices schema changes: real SQLite and DuckDB files altered between questions."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from livebi.agents.data import DataAgent
from livebi.agents.nlp import NLPAgent, NotUnderstood
from livebi.pipeline import AskRequest, Pipeline
from livebi.warehouse.registry import open_warehouse

TODAY = dt.date(2024, 12, 31)


def make_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, customer_name TEXT, country TEXT);
        CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                             order_date TEXT, revenue NUMERIC);
        INSERT INTO customers VALUES (1, 'Acme', 'France'), (2, 'Globex', 'Japan');
        INSERT INTO orders VALUES (1, 1, '2024-01-05', 100), (2, 2, '2024-02-10', 250), (3, 1, '2024-03-01', 50);
    """)
    con.commit()
    con.close()


def alter_sqlite(path: Path) -> None:
    """Another process adds a column (with values) and a table."""
    con = sqlite3.connect(path)
    con.executescript("""
        ALTER TABLE orders ADD COLUMN shipping_cost NUMERIC;
        UPDATE orders SET shipping_cost = order_id * 10;
        CREATE TABLE refunds (refund_id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(order_id),
                              refund_date TEXT, refund_amount NUMERIC);
        INSERT INTO refunds VALUES (1, 2, '2024-03-01', 25);
    """)
    con.commit()
    con.close()


async def ask(pipeline: Pipeline, question: str) -> dict:
    return await pipeline.answer("q", AskRequest(question=question), lambda *a: None)


async def test_an_added_column_and_table_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    make_sqlite(path)
    wh = open_warehouse("shop", f"sqlite:///{path}")
    agent = NLPAgent(today=TODAY, schema_check_interval_s=0)
    pipeline = Pipeline(warehouses={"shop": wh}, nlp=agent, data=DataAgent(timeout_s=10, row_cap=100))
    try:
        before = await agent.model_for(wh)
        with pytest.raises(NotUnderstood):
            agent.parse("total shipping cost", before, dialect="sqlite")
        assert (await agent.model_for(wh)) is before  # unchanged schema: the same model
        alter_sqlite(path)
        after = await agent.model_for(wh)
        assert after is not before and "refunds" in after.tables
        result = await ask(pipeline, "total shipping cost by country")
        assert sorted(result["rows"]) == [["France", 40], ["Japan", 20]]
        result = await ask(pipeline, "total refund amount")  # the new table, validated and run
        assert result["rows"] == [[25]]
    finally:
        await wh.close()


async def test_checks_are_spaced_by_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    make_sqlite(path)
    wh = open_warehouse("shop", f"sqlite:///{path}")
    agent = NLPAgent(today=TODAY, schema_check_interval_s=3600)
    try:
        before = await agent.model_for(wh)
        alter_sqlite(path)
        assert (await agent.model_for(wh)) is before  # within the interval: no check at all
        agent.schema_check_interval_s = 0
        assert "refunds" in (await agent.model_for(wh)).tables
    finally:
        await wh.close()


async def test_duckdb_schema_change_through_the_shared_connection(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    wh = open_warehouse("shop", f"duckdb:///{path}", read_only=False)
    agent = NLPAgent(today=TODAY, schema_check_interval_s=0)
    pipeline = Pipeline(warehouses={"shop": wh}, nlp=agent, data=DataAgent(timeout_s=10, row_cap=100))

    def run(sql: str) -> None:
        wh.connection().execute(sql)  # type: ignore[attr-defined]

    try:
        await asyncio.to_thread(run, "CREATE TABLE sales (sale_id INTEGER PRIMARY KEY, sold_on DATE, amount DOUBLE)")
        await asyncio.to_thread(run, "INSERT INTO sales VALUES (1, DATE '2024-05-01', 10), (2, DATE '2024-06-01', 5)")
        first = await agent.model_for(wh)
        assert "store" not in first.tables["sales"].columns
        await asyncio.to_thread(run, "ALTER TABLE sales ADD COLUMN store VARCHAR DEFAULT 'North'")
        await asyncio.to_thread(run, "UPDATE sales SET store = 'South' WHERE sale_id = 2")
        result = await ask(pipeline, "amount by store")
        assert sorted(result["rows"]) == [["North", 10], ["South", 5]]
        result = await ask(pipeline, "amount in South")  # the new column's values are indexed too
        assert result["rows"] == [[5]]
    finally:
        await wh.close()


async def test_questions_do_not_queue_behind_a_running_schema_check(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    make_sqlite(path)
    wh = open_warehouse("shop", f"sqlite:///{path}")
    agent = NLPAgent(today=TODAY, schema_check_interval_s=3600)
    try:
        model = await agent.model_for(wh)
        agent._models["shop"].checked_at -= 7200  # the check is due
        async with agent._locks["shop"]:  # ... and another question is running it
            assert await asyncio.wait_for(agent.model_for(wh), 5) is model
    finally:
        await wh.close()
