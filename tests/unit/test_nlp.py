"""The NLP parser on a demo-like warehouse: generated SQL runs and gives the gold answer.

A small, deterministic copy of the demo schema (customers, products, orders, budget,
cash_flow) lives in in-memory DuckDB and SQLite databases; the semantic model is built from a
hand-written :class:`Schema` plus a value index read from the data, exactly as the agent would
build it from a connector. Every question's SQL is executed and compared with hand-written
gold SQL on the same data, in DuckDB and (for the same question) SQLite.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random
import sqlite3

import duckdb
import pytest
import sqlglot

from livebi.agents.nlp import NLPAgent, NotUnderstood, ParsedQuestion, SemanticModel
from livebi.warehouse.base import Column, ForeignKey, Schema, Table

TODAY = dt.date(2025, 7, 15)

DDL = """
CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, customer_name VARCHAR, segment VARCHAR,
    country VARCHAR, region VARCHAR, city VARCHAR, signup_date DATE);
CREATE TABLE products (product_id INTEGER PRIMARY KEY, product_name VARCHAR, category VARCHAR,
    subcategory VARCHAR, unit_price DECIMAL(12,2), unit_cost DECIMAL(12,2));
CREATE TABLE orders (order_id INTEGER PRIMARY KEY, order_date DATE, customer_id INTEGER,
    product_id INTEGER, quantity INTEGER, unit_price DECIMAL(12,2), discount DOUBLE,
    revenue DECIMAL(14,2), cost DECIMAL(14,2), channel VARCHAR, status VARCHAR);
CREATE TABLE budget (month DATE, department VARCHAR, region VARCHAR, budget_amount DECIMAL(14,2),
    actual_amount DECIMAL(14,2), PRIMARY KEY (month, department, region));
CREATE TABLE cash_flow (month DATE, category VARCHAR, subcategory VARCHAR, amount DECIMAL(14,2),
    PRIMARY KEY (month, category, subcategory));
"""

PLACES = [
    ("Germany", "Europe", "Berlin"), ("France", "Europe", "Paris"), ("Brazil", "Latin America", "Sao Paulo"),
    ("United States", "North America", "Seattle"), ("Japan", "Asia Pacific", "Tokyo"),
    ("South Africa", "Middle East & Africa", "Cape Town"),
]
SEGMENTS = ["Consumer", "Corporate", "Small Business"]
PRODUCTS = [
    ("Apex Laptop", "Electronics", "Laptops", 1200.0, 800.0), ("Nova Phone", "Electronics", "Phones", 650.0, 400.0),
    ("Oak Desk", "Furniture", "Desks", 420.0, 250.0), ("Task Chair", "Furniture", "Chairs", 180.0, 90.0),
    ("Ledger Pro", "Software", "Finance", 300.0, 30.0), ("Chart Studio", "Software", "Analytics", 90.0, 10.0),
    ("Paper Pack", "Office Supplies", "Paper", 12.5, 6.0), ("Pen Set", "Office Supplies", "Pens", 8.0, 3.0),
]


def _data():
    rnd = random.Random(7)
    customers = []
    for i in range(1, 25):
        country, region, city = PLACES[(i * i + i // 5) % len(PLACES)]  # uneven: no ties at the top
        signup = dt.date(2020, 1, 1) + dt.timedelta(days=rnd.randrange(0, 2000))
        customers.append((i, f"Customer {i:02d}", SEGMENTS[i % 3], country, region, city, signup))
    products = [(i + 1, *p) for i, p in enumerate(PRODUCTS)]
    orders = []
    start = dt.date(2021, 1, 1)
    for i in range(1, 901):
        day = start + dt.timedelta(days=rnd.randrange(0, 1826))
        customer = rnd.randrange(1, 25)
        product = rnd.randrange(1, 9)
        price = PRODUCTS[product - 1][3]
        unit_cost = PRODUCTS[product - 1][4]
        quantity = rnd.randrange(1, 26)
        discount = rnd.choice([0.0, 0.0, 0.05, 0.1])
        revenue = round(quantity * price * (1 - discount), 2)
        orders.append((i, day, customer, product, quantity, price, discount, revenue,
                       round(quantity * unit_cost, 2), rnd.choice(["Online", "Retail", "Partner"]),
                       rnd.choice(["Completed", "Completed", "Returned"])))
    budget, cash = [], []
    for m in range(1, 13):
        month = dt.date(2024, m, 1)
        for dept in ("Sales", "Marketing", "R&D"):
            for region in ("Europe", "North America"):
                amount = 1000.0 * m + len(dept) * 10 + len(region)
                budget.append((month, dept, region, amount, amount * 0.97))
        for category, sub, amount in (("Operating", "Receipts", 5000.0 + m), ("Operating", "Payroll", -3000.0),
                                      ("Investing", "Equipment", -500.0 - m)):
            cash.append((month, category, sub, amount))
    return {"customers": customers, "products": products, "orders": orders, "budget": budget, "cash_flow": cash}


def _schema() -> Schema:
    """What a connector reports for the demo tables."""
    def cols(*spec):
        return tuple(Column(name, type_, kind) for name, type_, kind in spec)

    return Schema((
        Table("customers", cols(("customer_id", "INTEGER", "number"), ("customer_name", "VARCHAR", "text"),
                                ("segment", "VARCHAR", "text"), ("country", "VARCHAR", "text"),
                                ("region", "VARCHAR", "text"), ("city", "VARCHAR", "text"),
                                ("signup_date", "DATE", "date")), ("customer_id",), (), 24),
        Table("products", cols(("product_id", "INTEGER", "number"), ("product_name", "VARCHAR", "text"),
                               ("category", "VARCHAR", "text"), ("subcategory", "VARCHAR", "text"),
                               ("unit_price", "DECIMAL(12,2)", "number"), ("unit_cost", "DECIMAL(12,2)", "number")),
              ("product_id",), (), 8),
        Table("orders", cols(("order_id", "INTEGER", "number"), ("order_date", "DATE", "date"),
                             ("customer_id", "INTEGER", "number"), ("product_id", "INTEGER", "number"),
                             ("quantity", "INTEGER", "number"), ("unit_price", "DECIMAL(12,2)", "number"),
                             ("discount", "DOUBLE", "number"), ("revenue", "DECIMAL(14,2)", "number"),
                             ("cost", "DECIMAL(14,2)", "number"), ("channel", "VARCHAR", "text"),
                             ("status", "VARCHAR", "text")),
              ("order_id",), (ForeignKey(("customer_id",), "customers", ("customer_id",)),
                              ForeignKey(("product_id",), "products", ("product_id",))), 900),
        Table("budget", cols(("month", "DATE", "date"), ("department", "VARCHAR", "text"),
                             ("region", "VARCHAR", "text"), ("budget_amount", "DECIMAL(14,2)", "number"),
                             ("actual_amount", "DECIMAL(14,2)", "number")), ("month", "department", "region"), (), 72),
        Table("cash_flow", cols(("month", "DATE", "date"), ("category", "VARCHAR", "text"),
                                ("subcategory", "VARCHAR", "text"), ("amount", "DECIMAL(14,2)", "number")),
              ("month", "category", "subcategory"), (), 36),
    ))


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def duck(data):
    con = duckdb.connect(":memory:")
    con.execute(DDL)
    for table, rows in data.items():
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    yield con
    con.close()


@pytest.fixture(scope="module")
def lite(data):
    """The same data in SQLite, where dates are ISO text (as SQLite stores them)."""
    con = sqlite3.connect(":memory:")
    con.executescript(DDL)
    for table, rows in data.items():
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})",
                        [tuple(v.isoformat() if isinstance(v, dt.date) else v for v in r) for r in rows])
    yield con
    con.close()


@pytest.fixture(scope="module")
def model(duck) -> SemanticModel:
    schema = _schema()
    values = {}
    for table, column in SemanticModel.value_columns(schema):
        found = [r[0] for r in duck.execute(f"SELECT DISTINCT {column} FROM {table} LIMIT 201").fetchall()]
        if len(found) <= 200:
            values[(table, column)] = found
    return SemanticModel.from_schema(schema, values)


@pytest.fixture(scope="module")
def agent() -> NLPAgent:
    return NLPAgent(today=TODAY)


def _norm(value):
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    return value


def rows(con, sql: str) -> list[tuple]:
    return [tuple(_norm(v) for v in row) for row in con.execute(sql).fetchall()]


def check(agent, model, con, question: str, gold: str, *, dialect: str = "duckdb", ordered: bool = False,
          kind: str | None = None) -> ParsedQuestion:
    """Parse, validate, execute and compare with the gold SQL's result."""
    parsed = agent.parse(question, model, dialect=dialect)
    sqlglot.parse_one(parsed.sql, read=dialect)  # one valid statement in the dialect
    got, want = rows(con, parsed.sql), rows(con, gold)
    if not ordered:
        got, want = sorted(got, key=repr), sorted(want, key=repr)
    assert got == want, f"{question!r}\n  sql:  {parsed.sql}\n  gold: {gold}"
    if kind is not None:
        assert parsed.chart_hint["kind"] == kind, parsed.chart_hint
    return parsed


# -- totals and aggregates ----------------------------------------------------------------------

@pytest.mark.parametrize("question, gold", [
    ("total revenue", "SELECT SUM(revenue) FROM orders"),
    ("What is the sum of revenue?", "SELECT SUM(revenue) FROM orders"),
    ("how many orders", "SELECT COUNT(*) FROM orders"),
    ("How many customers are there?", "SELECT COUNT(*) FROM customers"),
    ("number of unique customers", "SELECT COUNT(DISTINCT customer_id) FROM orders"),
    ("average revenue", "SELECT AVG(revenue) FROM orders"),
    ("mean discount", "SELECT AVG(discount) FROM orders"),
    ("lowest unit price", "SELECT MIN(unit_price) FROM orders"),
    ("maximum quantity", "SELECT MAX(quantity) FROM orders"),
    ("how many distinct countries", "SELECT COUNT(DISTINCT country) FROM customers"),
    ("total profit", "SELECT SUM(revenue - cost) FROM orders"),
    ("average unit price of products", "SELECT AVG(unit_price) FROM products"),
    ("first order date", "SELECT MIN(order_date) FROM orders"),
    ("average revenue per customer", "SELECT SUM(revenue) / COUNT(DISTINCT customer_id) FROM orders"),
])
def test_totals(agent, model, duck, question, gold):
    parsed = check(agent, model, duck, question, gold, kind="kpi")
    assert len(parsed.chart_hint["measures"]) == 1


def test_total_revenue_reads_well(agent, model):
    parsed = agent.parse("total revenue", model, dialect="duckdb")
    assert parsed.sql == "SELECT SUM(orders.revenue) AS total_revenue FROM orders"
    assert parsed.explanation == "Total revenue from orders"
    assert parsed.engine == "parser"
    assert parsed.chart_hint == {"kind": "kpi", "time_grain": None, "measures": ["total_revenue"],
                                 "dimensions": [], "money_columns": ["total_revenue"],
                                 "percent_columns": [], "number_columns": []}
    assert json.loads(json.dumps(parsed.to_dict()))["intent"]["measures"][0]["column"] == "revenue"


def test_sales_is_revenue_and_says_so(agent, model, duck):
    parsed = check(agent, model, duck, "sales", "SELECT SUM(revenue) FROM orders")
    assert any('"sales"' in a and "orders.revenue" in a for a in parsed.assumptions)


# -- breakdowns -----------------------------------------------------------------------------------

REGION_REVENUE = ("SELECT c.region, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
                  "GROUP BY 1")


@pytest.mark.parametrize("question, gold", [
    ("revenue by region", REGION_REVENUE),
    ("Revenue per region", REGION_REVENUE),
    ("for each region, what is the total revenue?", REGION_REVENUE),
    ("revenue by category", "SELECT p.category, SUM(o.revenue) FROM orders o JOIN products p USING (product_id) GROUP BY 1"),
    ("average revenue per segment", "SELECT c.segment, AVG(o.revenue) FROM orders o JOIN customers c USING (customer_id) GROUP BY 1"),
    ("revenue by region and segment",
     "SELECT c.region, c.segment, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) GROUP BY 1, 2"),
    ("number of orders by channel", "SELECT channel, COUNT(*) FROM orders GROUP BY 1"),
    ("customers by country", "SELECT country, COUNT(*) FROM customers GROUP BY 1"),
    ("quantity by product category and channel",
     "SELECT p.category, o.channel, SUM(o.quantity) FROM orders o JOIN products p USING (product_id) GROUP BY 1, 2"),
    ("budget by department", "SELECT department, SUM(budget_amount) FROM budget GROUP BY 1"),
    ("profit by region",
     "SELECT c.region, SUM(o.revenue - o.cost) FROM orders o JOIN customers c USING (customer_id) GROUP BY 1"),
])
def test_breakdowns(agent, model, duck, question, gold):
    parsed = check(agent, model, duck, question, gold, kind="breakdown")
    assert parsed.chart_hint["dimensions"]
    order = parsed.intent["order"]
    assert order and order[0]["direction"] == "desc" and order[0]["by"] == parsed.chart_hint["measures"][0]


def test_breakdown_aliases_and_explanation(agent, model):
    parsed = agent.parse("revenue by region", model, dialect="duckdb")
    assert parsed.chart_hint["dimensions"] == ["region"]
    assert parsed.chart_hint["measures"] == ["total_revenue"]
    assert parsed.explanation == "Total revenue from orders, grouped by customer region"
    assert parsed.intent["dimensions"] == [{"table": "customers", "column": "region", "alias": "region"}]
    assert "LEFT JOIN customers ON orders.customer_id = customers.customer_id" in parsed.sql


def test_region_prefers_the_joinable_table(agent, model):
    """budget also has a region column, but it cannot be joined to orders."""
    parsed = agent.parse("revenue by region", model, dialect="duckdb")
    assert "budget" not in parsed.sql
    parsed = agent.parse("budget by region", model, dialect="duckdb")
    assert "budget.region" in parsed.sql and "customers" not in parsed.sql


def test_budget_vs_actual_is_a_comparison(agent, model, duck):
    check(agent, model, duck, "budget vs actual by department",
          "SELECT department, SUM(budget_amount), SUM(actual_amount) FROM budget GROUP BY 1", kind="comparison")


def test_share(agent, model, duck):
    parsed = check(agent, model, duck, "share of revenue by region",
                   "SELECT c.region, SUM(o.revenue), 100.0 * SUM(o.revenue) / SUM(SUM(o.revenue)) OVER () "
                   "FROM orders o JOIN customers c USING (customer_id) GROUP BY 1", kind="share")
    assert parsed.chart_hint["measures"] == ["total_revenue", "share_pct"]


# -- time grains -----------------------------------------------------------------------------------

@pytest.mark.parametrize("question, grain", [
    ("monthly revenue", "month"),
    ("revenue by month", "month"),
    ("revenue by quarter", "quarter"),
    ("revenue per year", "year"),
    ("yearly revenue", "year"),
    ("weekly revenue", "week"),
    ("revenue by day", "day"),
    ("revenue trend", "month"),
    ("revenue over time", "month"),
])
def test_time_grains_duckdb_and_sqlite(agent, model, duck, lite, question, grain):
    gold = (f"SELECT CAST(DATE_TRUNC('{grain}', order_date) AS DATE) AS t, SUM(revenue) FROM orders "
            "GROUP BY 1 ORDER BY 1")
    parsed = check(agent, model, duck, question, gold, ordered=True, kind="trend")
    assert parsed.chart_hint["time_grain"] == grain
    assert parsed.chart_hint["dimensions"] == [grain]
    # the same question on SQLite (dates as text, no DATE_TRUNC) gives the same series
    sqlite_sql = agent.parse(question, model, dialect="sqlite").sql
    assert "DATE_TRUNC" not in sqlite_sql.upper()
    assert rows(lite, sqlite_sql) == rows(duck, gold)


def test_trend_with_a_breakdown(agent, model, duck):
    check(agent, model, duck, "monthly revenue by region",
          "SELECT CAST(DATE_TRUNC('month', o.order_date) AS DATE), c.region, SUM(o.revenue) FROM orders o "
          "JOIN customers c USING (customer_id) GROUP BY 1, 2", kind="trend")


def test_orders_per_month_counts_orders(agent, model, duck):
    check(agent, model, duck, "number of orders per month",
          "SELECT CAST(DATE_TRUNC('month', order_date) AS DATE), COUNT(*) FROM orders GROUP BY 1 ORDER BY 1",
          ordered=True, kind="trend")


def test_cash_flow_by_month_uses_its_month_column(agent, model, duck):
    check(agent, model, duck, "cash flow by month",
          "SELECT month, SUM(amount) FROM cash_flow GROUP BY 1 ORDER BY 1", ordered=True, kind="trend")


# -- periods --------------------------------------------------------------------------------------

def _between(start: str, end: str) -> str:
    return f"SELECT SUM(revenue) FROM orders WHERE order_date >= DATE '{start}' AND order_date < DATE '{end}'"


@pytest.mark.parametrize("question, start, end", [
    ("revenue in 2024", "2024-01-01", "2025-01-01"),
    ("total revenue in Q2 2023", "2023-04-01", "2023-07-01"),
    ("revenue in March 2024", "2024-03-01", "2024-04-01"),
    ("revenue between 2022 and 2023", "2022-01-01", "2024-01-01"),
    ("revenue from Jan 2023 to June 2023", "2023-01-01", "2023-07-01"),
    ("revenue last 6 months", "2025-01-16", "2025-07-16"),
    ("revenue this year", "2025-01-01", "2025-07-16"),
    ("revenue last year", "2024-01-01", "2025-01-01"),
    ("revenue YTD", "2025-01-01", "2025-07-16"),
    ("revenue year to date", "2025-01-01", "2025-07-16"),
    ("revenue last quarter", "2025-04-01", "2025-07-01"),
    ("revenue last 30 days", "2025-06-16", "2025-07-16"),
    ("revenue last month", "2025-06-01", "2025-07-01"),
    ("revenue in 2023-05-17", "2023-05-17", "2023-05-18"),
])
def test_periods(agent, model, duck, lite, question, start, end):
    parsed = check(agent, model, duck, question, _between(start, end), kind="kpi")
    date_filter = next(f for f in parsed.intent["filters"] if f["op"] == "date_range")
    assert date_filter["values"] == [start, end]
    assert any("orders.order_date" in a for a in parsed.assumptions)
    assert rows(lite, agent.parse(question, model, dialect="sqlite").sql) == rows(duck, _between(start, end))


def test_open_ended_periods(agent, model, duck):
    check(agent, model, duck, "revenue since 2024", "SELECT SUM(revenue) FROM orders WHERE order_date >= DATE '2024-01-01'")
    check(agent, model, duck, "revenue before 2022", "SELECT SUM(revenue) FROM orders WHERE order_date < DATE '2022-01-01'")


def test_period_and_grain_together(agent, model, duck):
    check(agent, model, duck, "weekly revenue in 2024",
          "SELECT CAST(DATE_TRUNC('week', order_date) AS DATE), SUM(revenue) FROM orders "
          "WHERE order_date >= DATE '2024-01-01' AND order_date < DATE '2025-01-01' GROUP BY 1", kind="trend")


def test_year_comparison(agent, model, duck):
    check(agent, model, duck, "revenue 2023 vs 2024",
          "SELECT CAST(DATE_TRUNC('year', order_date) AS DATE), SUM(revenue) FROM orders "
          "WHERE order_date >= DATE '2023-01-01' AND order_date < DATE '2025-01-01' GROUP BY 1", kind="comparison")


def test_relative_periods_follow_today(model):
    later = NLPAgent(today=dt.date(2026, 2, 10))
    parsed = later.parse("revenue last year", model, dialect="duckdb")
    assert "2025-01-01" in parsed.sql and "2026-01-01" in parsed.sql


# -- value filters ----------------------------------------------------------------------------------

def test_revenue_in_europe(agent, model, duck, lite):
    gold = "SELECT SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) WHERE c.region = 'Europe'"
    parsed = check(agent, model, duck, "revenue in Europe", gold)
    assert "'Europe'" in parsed.sql
    assert rows(lite, agent.parse("revenue in Europe", model, dialect="sqlite").sql) == rows(duck, gold)


def test_sales_of_electronics(agent, model, duck):
    check(agent, model, duck, "sales of Electronics",
          "SELECT SUM(o.revenue) FROM orders o JOIN products p USING (product_id) WHERE p.category = 'Electronics'")


def test_value_with_ampersand_and_and(agent, model, duck):
    gold = ("SELECT SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
            "WHERE c.region = 'Middle East & Africa'")
    check(agent, model, duck, "revenue in Middle East & Africa", gold)
    check(agent, model, duck, "revenue in middle east and africa", gold)


def test_two_values_compare(agent, model, duck):
    check(agent, model, duck, "revenue in Europe vs Asia Pacific",
          "SELECT c.region, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
          "WHERE c.region IN ('Europe', 'Asia Pacific') GROUP BY 1", kind="comparison")


def test_value_filter_with_breakdown_and_period(agent, model, duck):
    check(agent, model, duck, "revenue by channel in Germany in 2024",
          "SELECT o.channel, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
          "WHERE c.country = 'Germany' AND o.order_date >= DATE '2024-01-01' AND o.order_date < DATE '2025-01-01' "
          "GROUP BY 1")


def test_pinned_dimension_is_not_a_breakdown(agent, model, duck):
    check(agent, model, duck, "revenue for the online channel",
          "SELECT SUM(revenue) FROM orders WHERE channel = 'Online'", kind="kpi")


def test_measure_word_that_is_also_a_value(agent, model, duck):
    """"Sales" is a department in budget; "sales" alone still means revenue."""
    check(agent, model, duck, "sales by region", REGION_REVENUE)
    check(agent, model, duck, "budget for Sales", "SELECT SUM(budget_amount) FROM budget WHERE department = 'Sales'")


# -- listing ---------------------------------------------------------------------------------------

def test_customers_from_brazil(agent, model, duck):
    parsed = agent.parse("customers from Brazil", model, dialect="duckdb")
    got = duck.execute(parsed.sql).fetchall()
    want = duck.execute("SELECT customer_name FROM customers WHERE country = 'Brazil'").fetchall()
    assert sorted(r[0] for r in got) == sorted(r[0] for r in want)
    assert parsed.chart_hint["kind"] == "list"
    assert parsed.chart_hint["dimensions"][0] == "customer_name"
    assert parsed.intent["limit"] == 100


def test_list_products_in_furniture(agent, model, duck):
    parsed = agent.parse("list products in Furniture", model, dialect="duckdb")
    got = sorted(r[0] for r in duck.execute(parsed.sql).fetchall())
    assert got == sorted(r[0] for r in duck.execute(
        "SELECT product_name FROM products WHERE category = 'Furniture'").fetchall())
    assert "LIMIT 100" in parsed.sql


def test_orders_from_germany(agent, model, duck):
    parsed = agent.parse("orders from Germany", model, dialect="duckdb")
    got = {r[0] for r in duck.execute(parsed.sql).fetchall()}
    want = {r[0] for r in duck.execute("SELECT o.order_id FROM orders o JOIN customers c USING (customer_id) "
                                       "WHERE c.country = 'Germany' ORDER BY o.order_date DESC LIMIT 100").fetchall()}
    assert len(got) == len(want) and got <= {r[0] for r in duck.execute(
        "SELECT o.order_id FROM orders o JOIN customers c USING (customer_id) WHERE c.country = 'Germany'").fetchall()}


# -- numeric comparisons ---------------------------------------------------------------------------

def test_orders_with_quantity_over_15(agent, model, duck):
    parsed = agent.parse("orders with quantity over 15", model, dialect="duckdb")
    assert parsed.chart_hint["kind"] == "list"
    assert "orders.quantity > 15" in parsed.sql
    count = duck.execute(f"SELECT COUNT(*) FROM ({parsed.sql.replace('LIMIT 100', '')})").fetchone()[0]
    assert count == duck.execute("SELECT COUNT(*) FROM orders WHERE quantity > 15").fetchone()[0]


def test_how_many_orders_with_quantity_at_least(agent, model, duck):
    check(agent, model, duck, "how many orders with quantity of at least 20",
          "SELECT COUNT(*) FROM orders WHERE quantity >= 20")


def test_customers_with_at_least_n_orders(agent, model, duck):
    parsed = check(agent, model, duck, "customers with at least 40 orders",
                   "SELECT c.customer_name, COUNT(*) FROM orders o JOIN customers c USING (customer_id) "
                   "GROUP BY c.customer_id, c.customer_name HAVING COUNT(*) >= 40")
    assert "HAVING COUNT(*) >= 40" in parsed.sql


def test_customers_with_revenue_over(agent, model, duck):
    check(agent, model, duck, "customers with revenue over 400000",
          "SELECT c.customer_name, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
          "GROUP BY c.customer_id, c.customer_name HAVING SUM(o.revenue) > 400000")


def test_regions_with_revenue_over(agent, model, duck):
    check(agent, model, duck, "regions with revenue over 2M",
          "SELECT c.region, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
          "GROUP BY 1 HAVING SUM(o.revenue) > 2000000")


def test_products_with_price_between(agent, model, duck):
    parsed = agent.parse("products with unit price between 100 and 500", model, dialect="duckdb")
    got = sorted(r[0] for r in duck.execute(parsed.sql).fetchall())
    assert got == sorted(r[0] for r in duck.execute(
        "SELECT product_name FROM products WHERE unit_price BETWEEN 100 AND 500").fetchall())


def test_orders_over_an_amount(agent, model, duck):
    parsed = agent.parse("orders over $5,000", model, dialect="duckdb")
    assert "orders.revenue > 5000" in parsed.sql
    assert any("revenue" in a for a in parsed.assumptions)


# -- ranking ---------------------------------------------------------------------------------------

def test_top_5_products_by_revenue(agent, model, duck):
    parsed = check(agent, model, duck, "top 5 products by revenue",
                   "SELECT p.product_name, SUM(o.revenue) AS r FROM orders o JOIN products p USING (product_id) "
                   "GROUP BY p.product_id, p.product_name ORDER BY r DESC LIMIT 5", ordered=True, kind="top_n")
    assert parsed.intent["limit"] == 5


def test_bottom_3_regions_uses_the_default_measure(agent, model, duck):
    parsed = check(agent, model, duck, "bottom 3 regions",
                   "SELECT c.region, SUM(o.revenue) AS r FROM orders o JOIN customers c USING (customer_id) "
                   "GROUP BY 1 ORDER BY r ASC LIMIT 3", ordered=True, kind="top_n")
    assert any("revenue" in a for a in parsed.assumptions)


def test_which_country_has_the_most_customers(agent, model, duck):
    check(agent, model, duck, "which country has the most customers",
          "SELECT country, COUNT(*) AS n FROM customers GROUP BY 1 ORDER BY n DESC LIMIT 1", ordered=True,
          kind="top_n")


def test_which_region_has_the_highest_revenue(agent, model, duck):
    check(agent, model, duck, "Which region has the highest revenue?",
          "SELECT c.region, SUM(o.revenue) AS r FROM orders o JOIN customers c USING (customer_id) "
          "GROUP BY 1 ORDER BY r DESC LIMIT 1", ordered=True)


def test_top_three_in_words_with_period(agent, model, duck):
    check(agent, model, duck, "top three categories by quantity in 2024",
          "SELECT p.category, SUM(o.quantity) AS q FROM orders o JOIN products p USING (product_id) "
          "WHERE o.order_date >= DATE '2024-01-01' AND o.order_date < DATE '2025-01-01' "
          "GROUP BY 1 ORDER BY q DESC LIMIT 3", ordered=True)


# -- other dialects -----------------------------------------------------------------------------------

@pytest.mark.parametrize("question", [
    "monthly revenue by region", "revenue by quarter in 2024", "share of revenue by region",
    "top 5 products by revenue", "customers with at least 40 orders", "revenue last 6 months",
    "weekly revenue", "average revenue per customer",
])
def test_postgres_sql_is_valid(agent, model, question):
    sql = agent.parse(question, model, dialect="postgres").sql
    sqlglot.parse_one(sql, read="postgres")
    assert "STRFTIME" not in sql.upper()


# -- the parse contract ---------------------------------------------------------------------------

def test_substages_are_reported_in_order(agent, model):
    seen = []
    agent.parse("revenue by region", model, dialect="duckdb", on_substage=lambda s, p, d: seen.append((s, p)))
    stages = [s for s, _ in seen]
    assert stages == ["intent_extraction", "intent_extraction", "schema_linking", "schema_linking",
                      "sql_generation", "sql_generation"]
    assert [p for _, p in seen] == [0, 100, 0, 100, 0, 100]


def test_to_dict_is_json(agent, model):
    for question in ("revenue by region in 2024", "customers from Brazil", "top 5 products by revenue"):
        data = agent.parse(question, model, dialect="duckdb").to_dict()
        assert set(data) == {"sql", "engine", "intent", "explanation", "assumptions", "alternatives", "chart_hint",
                             "ignored"}
        json.dumps(data)


def test_ambiguity_offers_alternatives(agent, model):
    parsed = agent.parse("average unit price", model, dialect="duckdb")
    assert "orders.unit_price" in parsed.sql
    assert any("product" in alt for alt in parsed.alternatives)


def test_example_questions_parse(agent, model, duck):
    examples = model.example_questions(6)
    assert len(examples) >= 4
    for question in examples:
        duck.execute(agent.parse(question, model, dialect="duckdb").sql).fetchall()


# -- failures and hostile input ---------------------------------------------------------------------

def test_empty_question(agent, model):
    for question in ("", "   ", "\n\t"):
        with pytest.raises(NotUnderstood) as info:
            agent.parse(question, model, dialect="duckdb")
        assert info.value.code == "empty_question"
        assert info.value.suggestions


def test_question_too_long(model):
    agent = NLPAgent(today=TODAY, max_question_chars=50)
    with pytest.raises(NotUnderstood) as info:
        agent.parse("revenue by region " * 5, model, dialect="duckdb")
    assert info.value.code == "question_too_long"


def test_nonsense_is_not_understood(agent, model):
    with pytest.raises(NotUnderstood) as info:
        agent.parse("purple monkey dishwasher", model, dialect="duckdb")
    assert info.value.code == "not_understood"
    assert set(model.example_questions()) <= set(info.value.suggestions)


def test_typos_are_corrected_and_reported(agent, model, duck):
    parsed = check(agent, model, duck, "revnue by regoin", REGION_REVENUE)
    assert 'Read "revnue" as "revenue"' in parsed.assumptions
    assert 'Read "regoin" as "region"' in parsed.assumptions
    check(agent, model, duck, "revenue in Germny",
          "SELECT SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) WHERE c.country = 'Germany'")


def test_unknown_breakdown_gets_did_you_mean(agent, model):
    with pytest.raises(NotUnderstood) as info:
        agent.parse("revenue by regn", model, dialect="duckdb")
    assert any('"region"' in s for s in info.value.suggestions)


HOSTILE = [
    "revenue by region; drop table orders",
    "revenue by region'; DROP TABLE orders; --",
    "revenue in 'Europe'; DELETE FROM orders",
    'revenue by region" OR 1=1 --',
    "revenue /* comment */ by region",
    "Robert'); DROP TABLE Students;--",
    "customers named 'x'' OR ''1''=''1'",
    "select * from orders",
    "revenue by region union select password from users",
    "' OR 1=1; ATTACH 'x.db' AS y; --",
    "top 99999999999999999999 products",
    "revenue > 1e308",
    "customers with more than -5 orders",
    "\x00\x01 revenue \u202e by region",
    "📈 revenue by region 🚀",
    "revenue " * 60,
    ";;;;",
    "'",
    "\"\"\"",
]


@pytest.mark.parametrize("question", HOSTILE)
def test_hostile_input_never_reaches_sql(agent, model, duck, question):
    try:
        parsed = agent.parse(question, model, dialect="duckdb")
    except NotUnderstood as exc:
        assert exc.code in {"not_understood", "question_too_long", "empty_question"}
        return
    statements = sqlglot.parse(parsed.sql, read="duckdb")
    assert len(statements) == 1 and isinstance(statements[0], sqlglot.exp.Select)
    upper = parsed.sql.upper()
    for word in ("DROP", "DELETE", "ATTACH", "PASSWORD", "UNION", "STUDENTS", "--", "/*"):
        assert word not in upper.replace("'", " ")
    duck.execute(parsed.sql).fetchall()


def test_quoted_text_is_only_a_literal(agent, model, duck):
    parsed = agent.parse("customers named 'O''Brien; DROP TABLE x'", model, dialect="duckdb")
    statements = sqlglot.parse(parsed.sql, read="duckdb")
    assert len(statements) == 1
    literals = [lit.this for lit in statements[0].find_all(sqlglot.exp.Literal) if lit.is_string]
    assert any("drop table x" in lit for lit in literals)
    duck.execute(parsed.sql).fetchall()


def test_fuzz_never_raises_anything_else(agent, model, duck):
    rnd = random.Random(3)
    words = sorted(model.vocabulary)[:400] + ["by", "per", "top", "5", "in", "2024", "last", "over", "'", ";",
                                               "--", "vs", "how", "many", "which", "most", "between", "and"]
    for _ in range(300):
        question = " ".join(rnd.choice(words) for _ in range(rnd.randrange(1, 9)))
        try:
            parsed = agent.parse(question, model, dialect="duckdb")
        except NotUnderstood:
            continue
        duck.execute(parsed.sql).fetchall()


# -- measures at the right grain, ratios, medians ------------------------------------------------

def test_average_order_value(agent, model, duck):
    check(agent, model, duck, "average order value", "SELECT SUM(revenue) / COUNT(*) FROM orders", kind="kpi")


def test_biggest_orders_rank_rows(agent, model, duck):
    parsed = check(agent, model, duck, "show the 3 biggest orders",
                   "SELECT order_id, revenue FROM orders ORDER BY revenue DESC LIMIT 3", ordered=True, kind="top_n")
    assert parsed.intent["limit"] == 3
    check(agent, model, duck, "smallest customer",
          "SELECT c.customer_name, SUM(o.revenue) r FROM orders o JOIN customers c USING (customer_id) "
          "GROUP BY c.customer_id, c.customer_name ORDER BY r ASC LIMIT 1", ordered=True)


def test_profit_margin_is_a_ratio_of_sums(agent, model, duck):
    parsed = check(agent, model, duck, "profit margin by category",
                   "SELECT p.category, SUM(o.revenue - o.cost) / SUM(o.revenue) FROM orders o "
                   "JOIN products p USING (product_id) GROUP BY 1")
    assert parsed.chart_hint["measures"] == ["profit_margin"]


def test_median(agent, model, duck, lite):
    check(agent, model, duck, "median revenue by region",
          "SELECT c.region, MEDIAN(o.revenue) FROM orders o JOIN customers c USING (customer_id) GROUP BY 1")
    parsed = agent.parse("median revenue", model, dialect="sqlite")
    assert "AVG(" in parsed.sql and any("median" in a for a in parsed.assumptions)
    assert "PERCENTILE_CONT" in agent.parse("median revenue", model, dialect="postgres").sql


def test_share_of_one_value_shows_every_share(agent, model, duck):
    parsed = check(agent, model, duck, "what percentage of revenue comes from Europe",
                   "SELECT c.region, SUM(o.revenue), 100.0 * SUM(o.revenue) / SUM(SUM(o.revenue)) OVER () "
                   "FROM orders o JOIN customers c USING (customer_id) GROUP BY 1", kind="share")
    assert any("Europe" in a for a in parsed.assumptions)


def test_share_of_counts_is_not_integer_division(agent, model, lite, duck):
    question = "distribution of orders by status"
    gold = "SELECT status, COUNT(*), 100.0 * COUNT(*) / SUM(COUNT(*)) OVER () FROM orders GROUP BY 1"
    check(agent, model, duck, question, gold, kind="share")
    assert sorted(rows(lite, agent.parse(question, model, dialect="sqlite").sql)) == sorted(rows(duck, gold))


# -- more phrasing --------------------------------------------------------------------------------

def test_more_phrasings(agent, model, duck):
    check(agent, model, duck, "Revenue for 2024, by month, in Europe",
          "SELECT CAST(DATE_TRUNC('month', o.order_date) AS DATE), SUM(o.revenue) FROM orders o JOIN customers c "
          "USING (customer_id) WHERE c.region = 'Europe' AND o.order_date >= DATE '2024-01-01' "
          "AND o.order_date < DATE '2025-01-01' GROUP BY 1")
    check(agent, model, duck, "revenue in the second quarter of 2024", _between("2024-04-01", "2024-07-01"))
    check(agent, model, duck, "revenue by customer segment and year",
          "SELECT CAST(DATE_TRUNC('year', o.order_date) AS DATE), c.segment, SUM(o.revenue) FROM orders o "
          "JOIN customers c USING (customer_id) GROUP BY 1, 2", kind="trend")
    check(agent, model, duck, "how many orders over 1,500", "SELECT COUNT(*) FROM orders WHERE revenue > 1500")
    check(agent, model, duck, "returned orders by month",
          "SELECT CAST(DATE_TRUNC('month', order_date) AS DATE), COUNT(*) FROM orders WHERE status = 'Returned' "
          "GROUP BY 1", kind="trend")
    check(agent, model, duck, "revenue for Online and Retail",
          "SELECT SUM(revenue) FROM orders WHERE channel IN ('Online', 'Retail')")
    # (every segment has 8 customers in this data, so a segment question would tie)
    check(agent, model, duck, "which region has the fewest customers",
          "SELECT region, COUNT(*) n FROM customers GROUP BY 1 ORDER BY n ASC LIMIT 1", ordered=True)
    check(agent, model, duck, "list customer names in Brazil",
          "SELECT customer_name FROM customers WHERE country = 'Brazil'", kind="list")


def test_words_that_are_not_typos_stay_unread(agent, model):
    parsed = agent.parse("how many orders did each customer handle", model, dialect="duckdb")
    assert not any(a.startswith("Read ") for a in parsed.assumptions)
    assert "handle" not in parsed.ignored  # a verb of the business, understood, not a typo


# -- phrasings learned from the accuracy benchmark (benchmarks/nlp_accuracy.py) ---------------------

def test_negated_values_are_left_out(agent, model, duck):
    parsed = check(agent, model, duck, "total revenue excluding returned orders",
                   "SELECT SUM(revenue) FROM orders WHERE status <> 'Returned'")
    assert any("Left out" in a for a in parsed.assumptions)
    check(agent, model, duck, "revenue of orders that were not returned, by channel",
          "SELECT channel, SUM(revenue) FROM orders WHERE status <> 'Returned' GROUP BY 1")
    check(agent, model, duck, "revenue other than Online and Retail",
          "SELECT SUM(revenue) FROM orders WHERE channel NOT IN ('Online', 'Retail')")


def test_scale_words_multiply_numbers(agent, model, duck):
    check(agent, model, duck, "how many orders over 1.5 thousand", "SELECT COUNT(*) FROM orders WHERE revenue > 1500")


def test_which_n_and_sold_the_most(agent, model, duck):
    check(agent, model, duck, "Which 2 countries brought in the most money?",
          "SELECT c.country, SUM(o.revenue) r FROM orders o JOIN customers c USING (customer_id) "
          "GROUP BY 1 ORDER BY r DESC LIMIT 2", ordered=True)
    check(agent, model, duck, "which category sold the most in 2024",
          "SELECT p.category, SUM(o.revenue) FROM orders o JOIN products p USING (product_id) "
          "WHERE o.order_date >= DATE '2024-01-01' AND o.order_date < DATE '2025-01-01' "
          "GROUP BY 1 ORDER BY 2 DESC LIMIT 1")


def test_how_much_asks_for_an_amount(agent, model, duck):
    check(agent, model, duck, "How much did Furniture sell in 2023?",
          "SELECT SUM(o.revenue) FROM orders o JOIN products p USING (product_id) WHERE p.category = 'Furniture' "
          "AND o.order_date >= DATE '2023-01-01' AND o.order_date < DATE '2024-01-01'")


def test_which_month_ranks_time_buckets(agent, model, duck):
    parsed = check(agent, model, duck, "which month of 2024 had the highest revenue",
                   "SELECT DATE_TRUNC('month', order_date), SUM(revenue) FROM orders WHERE order_date >= "
                   "DATE '2024-01-01' AND order_date < DATE '2025-01-01' GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
    assert parsed.chart_hint["kind"] == "top_n"


def test_best_selling_and_most_expensive(agent, model, duck):
    check(agent, model, duck, "best-selling subcategories by quantity, top 2",
          "SELECT p.subcategory, SUM(o.quantity) q FROM orders o JOIN products p USING (product_id) "
          "GROUP BY 1 ORDER BY q DESC LIMIT 2", ordered=True)
    check(agent, model, duck, "what is the most expensive product",
          "SELECT product_name, unit_price FROM products ORDER BY unit_price DESC LIMIT 1")
    check(agent, model, duck, "the cheapest product",
          "SELECT product_name, unit_price FROM products ORDER BY unit_price LIMIT 1")


def test_value_words_between_count_and_entity(agent, model, duck):
    check(agent, model, duck, "number of returned orders", "SELECT COUNT(*) FROM orders WHERE status = 'Returned'")


def test_price_verbs(agent, model, duck):
    check(agent, model, duck, "how many products cost more than 200", "SELECT COUNT(*) FROM products WHERE unit_price > 200")
    check(agent, model, duck, "how many orders cost more than 5000", "SELECT COUNT(*) FROM orders WHERE revenue > 5000")
