"""On PostgreSQL, as a read-only role: relative periods on data that ended in the past count
from its last date, growth and rates run, and a semantic layer's default filter applies."""

from __future__ import annotations

import datetime as dt
from typing import AsyncIterator

import pytest

from livebi.agents.nlp import NLPAgent
from livebi.agents.nlp.semantic_layer import parse_semantic_layer
from livebi.warehouse.postgres import PostgresWarehouse

pytestmark = pytest.mark.postgres


@pytest.fixture
async def shop(pg_readonly) -> AsyncIterator[PostgresWarehouse]:
    """One order a day for 400 days up to 2014-05-06; every fifth one cancelled."""
    schema = pg_readonly.schema
    await pg_readonly.admin.execute(
        f"""
        CREATE TABLE {schema}.orders (order_id int PRIMARY KEY, order_date date, placed_at timestamptz,
                                      amount numeric(10, 2), status text);
        INSERT INTO {schema}.orders
        SELECT g, date '2014-05-06' - g, timestamptz '2014-05-06 10:00+00' - g * interval '1 day', 10 + g,
               CASE WHEN g % 5 = 0 THEN 'cancelled' ELSE 'completed' END
        FROM generate_series(0, 399) g;
        """
    )
    wh = PostgresWarehouse("shop", pg_readonly.dsn)
    try:
        yield wh
    finally:
        await wh.close()


async def value(wh: PostgresWarehouse, sql: str):
    return (await wh.execute(sql, timeout=10, row_cap=100)).rows


async def test_relative_periods_growth_rates_and_default_filters(shop: PostgresWarehouse) -> None:
    layer = parse_semantic_layer({"tables": {"orders": {"columns": {"amount": {"filter": "status <> 'cancelled'"}}}}})
    agent = NLPAgent(semantic_layers={"shop": layer})  # the real date: the data ended long ago
    model = await agent.model_for(shop)
    assert model.data_ends[("orders", "order_date")] == dt.date(2014, 5, 6)

    parsed = agent.parse("how many orders last month", model, dialect="postgres")
    assert await value(shop, parsed.sql) == [[30]]
    assert "Counted 'last month' from the latest data, 2014-05-06" in parsed.assumptions

    parsed = agent.parse("amount by month in 2014", model, dialect="postgres")
    gold = ("SELECT SUM(amount)::float FROM orders WHERE status <> 'cancelled' AND order_date >= '2014-01-01' "
            "GROUP BY date_trunc('month', order_date) ORDER BY 1")
    assert sorted(float(r[-1]) for r in await value(shop, parsed.sql)) == sorted(r[0] for r in await value(shop, gold))
    assert "Amount excludes cancelled orders" in parsed.assumptions

    growth = agent.parse("amount growth by month in 2014", model, dialect="postgres")
    rows = await value(shop, growth.sql)
    assert rows[0][-1] is None and all(isinstance(r[-1], float) for r in rows[1:])

    rate = agent.parse("what percentage of orders were cancelled", model, dialect="postgres")
    assert await value(shop, rate.sql) == [[20.0]]
