"""Answers a BI user can trust, on the generated demo warehouse: a ratio is hinted as a
percentage, a semantic layer's default filter applies wherever its measure is used and is said,
and relative dates on data that ends in the past count from the data's latest date."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from livebi.agents.nlp import NLPAgent, SemanticLayerError, SemanticModel, load_semantic_layer
from livebi.agents.nlp.semantic_layer import parse_semantic_layer
from livebi.warehouse.registry import open_warehouse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "demo-semantic.yaml"
TODAY = dt.date(2025, 12, 31)
KEPT = "status NOT IN ('cancelled', 'returned')"


def build(path: Path, layer=None, today: dt.date | None = TODAY) -> tuple[NLPAgent, SemanticModel]:
    agent = NLPAgent(today=today, semantic_layers={"demo": layer} if layer is not None else None)

    async def go():
        wh = open_warehouse("demo", f"duckdb:///{path}")
        try:
            return await agent.model_for(wh)
        finally:
            await wh.close()

    return agent, asyncio.run(go())


@pytest.fixture(scope="module")
def layered(demo_duckdb: Path):
    return build(demo_duckdb, load_semantic_layer(EXAMPLE))


@pytest.fixture(scope="module")
def plain(demo_duckdb: Path):
    return build(demo_duckdb)


@pytest.fixture(scope="module")
def con(demo_duckdb: Path):
    connection = duckdb.connect(str(demo_duckdb), read_only=True)
    yield connection
    connection.close()


def one(con, sql: str) -> list[tuple]:
    return sorted((tuple(round(float(v), 4) if isinstance(v, (int, float)) or type(v).__name__ == "Decimal" else v
                         for v in row)
                   for row in con.execute(sql).fetchall()), key=repr)


def answers(agent: NLPAgent, model: SemanticModel, con, question: str, gold: str):
    """The parsed question, after checking that its SQL returns what ``gold`` returns."""
    parsed = agent.parse(question, model, dialect="duckdb")
    assert one(con, parsed.sql) == one(con, gold), (question, parsed.sql)
    return parsed


# --- 1. formats in the chart hint ------------------------------------------------------------------


def test_ratios_are_hinted_as_percentages_and_money_as_money(layered, plain) -> None:
    agent, model = layered
    hint = agent.parse("gross margin by category", model, dialect="duckdb").chart_hint
    assert hint["percent_columns"] == ["gross_margin"] and "gross_margin" not in hint["money_columns"]
    agent, model = plain
    hint = agent.parse("profit margin by category", model, dialect="duckdb").chart_hint
    assert hint["percent_columns"] == ["profit_margin"] and hint["money_columns"] == []
    hint = agent.parse("revenue by category", model, dialect="duckdb").chart_hint
    assert hint["money_columns"] == ["total_revenue"] and hint["percent_columns"] == []


def test_a_money_over_money_metric_is_a_percentage_and_money_per_order_is_money(demo_duckdb: Path) -> None:
    layer = parse_semantic_layer({"metrics": {
        "take rate": {"table": "orders", "expression": "SUM(cost) / SUM(revenue)"},
        "ticket size": {"table": "orders", "expression": "SUM(revenue) / COUNT(*)"},
    }, "tables": {"orders": {"columns": {"discount": {"format": "percent"}}}}})
    agent, model = build(demo_duckdb, layer)
    assert agent.parse("take rate by channel", model, dialect="duckdb").chart_hint["percent_columns"] == ["take_rate"]
    hint = agent.parse("ticket size by channel", model, dialect="duckdb").chart_hint
    assert hint["percent_columns"] == [] and "ticket_size" in hint["measures"]
    hint = agent.parse("average discount by channel", model, dialect="duckdb").chart_hint
    assert hint["percent_columns"] == ["avg_discount"]


# --- 5. a measure's default filter ----------------------------------------------------------------


def test_the_default_filter_applies_wherever_revenue_is_used(layered, con) -> None:
    agent, model = layered
    cases = {
        "revenue by channel": f"SELECT channel, SUM(revenue) FROM orders WHERE {KEPT} GROUP BY 1",
        "bookings by tier": ("SELECT c.segment, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
                             f"WHERE o.{KEPT} GROUP BY 1"),
        "average revenue in 2024": (f"SELECT AVG(revenue) FROM orders WHERE {KEPT} "
                                    "AND order_date >= DATE '2024-01-01' AND order_date < DATE '2025-01-01'"),
        # other measures of the same question count every order
        "revenue and number of orders by channel": (
            f"SELECT channel, SUM(revenue) FILTER (WHERE {KEPT}), COUNT(*) FROM orders GROUP BY 1"),
        "gross margin by line of business": (
            "SELECT p.category, (SUM(o.revenue) - SUM(o.cost)) / SUM(o.revenue) FROM orders o "
            f"JOIN products p USING (product_id) WHERE o.{KEPT} GROUP BY 1"),
    }
    for question, gold in cases.items():
        parsed = agent.parse(question, model, dialect="duckdb")
        assert one(con, parsed.sql) == one(con, gold), (question, parsed.sql)
        assert "Revenue excludes cancelled and returned orders" in parsed.assumptions \
            or "Gross margin excludes cancelled and returned orders" in parsed.assumptions, parsed.assumptions
    counted = agent.parse("number of orders by channel", model, dialect="duckdb")
    assert not any("excludes" in a for a in counted.assumptions)


def test_without_the_layer_revenue_counts_every_order(plain, con) -> None:
    agent, model = plain
    parsed = agent.parse("revenue by channel", model, dialect="duckdb")
    assert one(con, parsed.sql) == one(con, "SELECT channel, SUM(revenue) FROM orders GROUP BY 1")


def test_a_filter_in_words(demo_duckdb: Path) -> None:
    layer = parse_semantic_layer({"tables": {"orders": {"columns": {
        "quantity": {"filter": "channel = 'Online'"},
        "cost": {"filter": "quantity > 1"}}}}})
    agent, model = build(demo_duckdb, layer)
    assert "Quantity counts only Online orders" in agent.parse("quantity by region", model, dialect="duckdb").assumptions
    assert "Cost counts only orders where quantity > 1" in agent.parse("total cost", model, dialect="duckdb").assumptions


@pytest.mark.parametrize("filter_, problem", [
    ("statuz = 'x'", 'no column "statuz" in orders; did you mean status?'),
    ("customers.region = 'Europe'", "columns of the measure's table (orders)"),
    ("status = read_csv('/etc/passwd')", "not allowed"),
])
def test_bad_filters_against_the_schema(demo_duckdb: Path, filter_: str, problem: str) -> None:
    layer = parse_semantic_layer({"tables": {"orders": {"columns": {"revenue": {"filter": filter_}}}}}, "l.yaml")
    with pytest.raises(SemanticLayerError) as info:
        build(demo_duckdb, layer)
    assert "tables → orders → columns → revenue → filter" in str(info.value) and problem in str(info.value)


@pytest.mark.parametrize("filter_, problem", [
    ("SUM(revenue) > 0", "no aggregates"),
    ("status IN (SELECT 1)", "not a query"),
    ("status = ", "does not parse"),
    ("1 = 1", "must name a column"),
])
def test_bad_filters_by_shape(filter_: str, problem: str) -> None:
    with pytest.raises(SemanticLayerError, match=problem):
        parse_semantic_layer({"metrics": {"m": {"expression": "SUM(revenue)", "filter": filter_}}})


# --- 4. relative dates on data that ends in the past -----------------------------------------------


def _shop(path: Path, last: dt.date) -> Path:
    """A tiny warehouse: one order a day for 400 days up to ``last``."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, order_date DATE, amount DOUBLE)")
    con.execute(f"INSERT INTO orders SELECT i, DATE '{last.isoformat()}' - INTERVAL (i) DAY, 10 + i "
                "FROM range(400) t(i)")
    con.close()
    return path


def test_last_month_counts_from_the_latest_data_when_the_present_has_none(tmp_path: Path) -> None:
    path = _shop(tmp_path / "old.duckdb", dt.date(2014, 5, 6))
    agent, model = build(path, today=None)  # the real date, as a server runs
    con = duckdb.connect(str(path), read_only=True)
    cases = {
        "how many orders last month": ("last month", "order_date >= DATE '2014-04-01' AND order_date < DATE '2014-05-01'"),
        "amount in the last 3 months": ("last 3 months", "order_date >= DATE '2014-02-07' AND order_date <= DATE '2014-05-06'"),
        "amount this year": ("this year", "order_date >= DATE '2014-01-01' AND order_date <= DATE '2014-05-06'"),
    }
    for question, (words, where) in cases.items():
        parsed = agent.parse(question, model, dialect="duckdb")
        measure = "COUNT(*)" if "how many" in question else "SUM(amount)"
        assert one(con, parsed.sql) == one(con, f"SELECT {measure} FROM orders WHERE {where}"), parsed.sql
        assert f"Counted '{words}' from the latest data, 2014-05-06" in parsed.assumptions, parsed.assumptions
    # an absolute period is what the user asked for, data or not
    parsed = agent.parse("how many orders in 2030", model, dialect="duckdb")
    assert one(con, parsed.sql) == [(0,)] and not any("latest data" in a for a in parsed.assumptions)
    con.close()


def test_a_pinned_today_or_current_data_is_never_moved(tmp_path: Path) -> None:
    old = _shop(tmp_path / "old.duckdb", dt.date(2014, 5, 6))
    agent, model = build(old, today=dt.date(2026, 1, 15))  # LIVEBI_TODAY / today= pins the date
    parsed = agent.parse("how many orders last month", model, dialect="duckdb")
    assert "2025-12-01" in parsed.sql and not any("latest data" in a for a in parsed.assumptions)
    current = _shop(tmp_path / "current.duckdb", dt.date.today())
    agent, model = build(current, today=None)
    parsed = agent.parse("how many orders yesterday", model, dialect="duckdb")
    assert (dt.date.today() - dt.timedelta(days=1)).isoformat() in parsed.sql
    assert not any("latest data" in a for a in parsed.assumptions)


# --- 3. comparing years: the rows of the years named, by month --------------------------------------


def test_years_compared_by_month_have_the_rows_of_those_years_only(plain, con) -> None:
    agent, model = plain
    for question, years in {"compare revenue 2024 vs 2023 by month": (2023, 2024),
                            "compare revenue 2024 vs 2022 by month": (2022, 2024)}.items():
        parsed = agent.parse(question, model, dialect="duckdb")
        gold = ("SELECT DATE_TRUNC('month', order_date)::DATE, SUM(revenue) FROM orders "
                f"WHERE YEAR(order_date) IN {years} GROUP BY 1")
        assert one(con, parsed.sql) == one(con, gold), parsed.sql
        assert parsed.chart_hint["time_grain"] == "month"


# --- 6. growth, best sellers, rates within groups -----------------------------------------------------


def test_growth_year_over_year_is_the_change_against_the_previous_year(plain, con) -> None:
    agent, model = plain
    gold = ("SELECT y, r, 100.0 * (r - LAG(r) OVER (ORDER BY y)) / LAG(r) OVER (ORDER BY y) FROM "
            "(SELECT DATE_TRUNC('year', order_date)::DATE y, SUM(revenue) r FROM orders GROUP BY 1)")
    for question in ("revenue growth year over year", "by how much did revenue grow each year"):
        parsed = answers(agent, model, con, question, gold)
        assert "growth_pct" in parsed.chart_hint["percent_columns"] and not parsed.ignored
    by_month = agent.parse("monthly revenue growth in 2025", model, dialect="duckdb")
    assert "LAG(" in by_month.sql and "growth" in by_month.explanation


def test_which_products_sell_best_is_a_short_ranking(plain, con) -> None:
    agent, model = plain
    gold = ("SELECT p.product_name, SUM(o.revenue) r FROM orders o JOIN products p USING (product_id) "
            "JOIN customers c USING (customer_id) WHERE c.region = 'Europe' "
            "GROUP BY p.product_id, 1 ORDER BY r DESC LIMIT 5")
    parsed = answers(agent, model, con, "which products sell best in Europe", gold)
    assert parsed.chart_hint["kind"] == "top_n" and not parsed.ignored
    worst = agent.parse("which product performed worst in 2024", model, dialect="duckdb")
    assert "LIMIT 1" in worst.sql and "ASC" in worst.sql


def test_share_of_returned_orders_by_channel_is_the_return_rate_of_each_channel(plain, con) -> None:
    agent, model = plain
    gold = ("SELECT channel, COUNT(*) FILTER (WHERE status = 'returned'), "
            "100.0 * COUNT(*) FILTER (WHERE status = 'returned') / COUNT(*) FROM orders GROUP BY 1")
    for question in ("share of returned orders by channel", "percentage of returned orders by channel"):
        assert "share_pct" in answers(agent, model, con, question, gold).chart_hint["measures"]
    # a share of a total split by a joined table's value keeps its reading
    split = agent.parse("share of revenue by region in 2024", model, dialect="duckdb")
    assert "SUM(SUM(orders.revenue)) OVER ()" in split.sql


def test_what_percentage_of_orders_were_cancelled_is_one_rate(plain, con) -> None:
    agent, model = plain
    gold = ("SELECT 100.0 * COUNT(*) FILTER (WHERE status = 'cancelled') / COUNT(*) FROM orders "
            "WHERE order_date >= DATE '2025-01-01' AND order_date < DATE '2026-01-01'")
    parsed = answers(agent, model, con, "what percentage of orders were cancelled in 2025", gold)
    assert parsed.chart_hint["percent_columns"] == ["share_pct"]
    assert parsed.explanation.startswith("Share of orders where status is cancelled, in percent, among orders")
    # a share of a sum by a joined table's value still shows every value's share
    europe = agent.parse("what share of revenue comes from Europe", model, dialect="duckdb")
    assert "OVER ()" in europe.sql and "GROUP BY customers.region" in europe.sql


def test_what_percent_of_products_are_discontinued_is_one_rate(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    with duckdb.connect(str(path)) as setup:
        setup.execute("CREATE TABLE products (product_id INTEGER PRIMARY KEY, product_name VARCHAR, "
                      "category VARCHAR, discontinued BOOLEAN)")
        setup.execute("INSERT INTO products SELECT i, 'P' || i, ['Tea', 'Cheese'][1 + i % 2], i % 5 = 0 "
                      "FROM range(40) t(i)")
    agent, model = build(path)
    con = duckdb.connect(str(path), read_only=True)
    answers(agent, model, con, "what percent of our products are discontinued",
            "SELECT 100.0 * COUNT(*) FILTER (WHERE discontinued) / COUNT(*) FROM products")
    answers(agent, model, con, "share of discontinued products by category",
            "SELECT category, COUNT(*) FILTER (WHERE discontinued), "
            "100.0 * COUNT(*) FILTER (WHERE discontinued) / COUNT(*) FROM products GROUP BY 1")
    con.close()
