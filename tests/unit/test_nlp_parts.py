"""The NLP parser's parts: names, time expressions, intent, a third schema, the agent's cache."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3

import duckdb
import pytest

from livebi.warehouse.duckdb import DuckDBWarehouse

from livebi.agents.nlp import NLPAgent, NotUnderstood, SemanticModel
from livebi.agents.nlp import lexicon as lx
from livebi.agents.nlp.intent import extract_intent
from livebi.agents.nlp.normalize import closest_words, edit_distance, tokenize
from livebi.agents.nlp.timeexpr import extract_time
from livebi.warehouse.base import Column, Schema, Table

TODAY = dt.date(2025, 7, 15)


# -- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("identifier, human", [
    ("BillingCountry", "billing country"), ("order_date", "order date"), ("cust_seg", "customer segment"),
    ("OrderDetail", "order detail"), ("UnitsInStock", "units in stock"), ("HTTPStatus", "http status"),
    ("qty_sold", "quantity sold"), ("total_amt", "total amount"), ("CategoryID", "category id"),
])
def test_humanize(identifier, human):
    assert lx.humanize(identifier) == human


@pytest.mark.parametrize("plural, single", [
    ("categories", "category"), ("countries", "country"), ("boxes", "box"), ("orders", "order"),
    ("sales", "sales"), ("people", "person"), ("addresses", "address"), ("status", "status"),
])
def test_singular_and_plural(plural, single):
    assert lx.singular(plural) == single
    assert lx.singular(lx.plural(single)) == single


def test_tokenize_numbers_and_quotes():
    tokens = tokenize("orders over $1,500 and 10k, 15% in 'Middle East & Africa' year-to-date")
    assert [t.value for t in tokens if t.kind == "number"] == [1500, 10000, 0.15]
    quoted = [t for t in tokens if t.kind == "quoted"]
    assert quoted[0].norm == "middle east & africa"
    assert [t.norm for t in tokens][-3:] == ["year", "to", "date"]


def test_edit_distance_and_closest_words():
    assert edit_distance("regoin", "region", 2) == 1  # a swap is one edit
    assert edit_distance("revnue", "revenue", 2) == 1
    assert edit_distance("abc", "xyz", 1) == 2  # stops early: more than the limit
    vocab = {}
    for word in ["revenue", "region", "money", "regions"]:
        vocab.setdefault(len(word), []).append(word)
    assert closest_words("revnue", vocab) == ["revenue"]
    assert closest_words("monkey", vocab) == []  # an extra letter in a short word is another word
    assert closest_words("cat", vocab) == []  # too short to correct


# -- time expressions ---------------------------------------------------------------------------

def _period(text: str, today: dt.date = TODAY):
    found = extract_time(tokenize(text), today)
    assert len(found.periods) == 1, found
    p = found.periods[0]
    return (p.start.isoformat() if p.start else None, p.end.isoformat() if p.end else None)


@pytest.mark.parametrize("text, start, end", [
    ("in 2024", "2024-01-01", "2025-01-01"),
    ("Q2 2023", "2023-04-01", "2023-07-01"),
    ("2023 Q4", "2023-10-01", "2024-01-01"),
    ("q3", "2025-07-01", "2025-10-01"),  # the most recent Q3 that has started
    ("q4", "2024-10-01", "2025-01-01"),
    ("H1 2024", "2024-01-01", "2024-07-01"),
    ("in March 2024", "2024-03-01", "2024-04-01"),
    ("sept 2022", "2022-09-01", "2022-10-01"),
    ("in march", "2025-03-01", "2025-04-01"),
    ("in december", "2024-12-01", "2025-01-01"),
    ("between 2022 and 2023", "2022-01-01", "2024-01-01"),
    ("from Jan 2023 to June 2023", "2023-01-01", "2023-07-01"),
    ("from 2023-01-15 to 2023-02-15", "2023-01-15", "2023-02-16"),
    ("since March 2024", "2024-03-01", None),
    ("after 2022", "2023-01-01", None),
    ("before 2024", None, "2024-01-01"),
    ("last 6 months", "2025-01-16", "2025-07-16"),
    ("past 12 months", "2024-07-16", "2025-07-16"),
    ("last 30 days", "2025-06-16", "2025-07-16"),
    ("last 2 weeks", "2025-07-02", "2025-07-16"),
    ("this year", "2025-01-01", "2025-07-16"),
    ("last year", "2024-01-01", "2025-01-01"),
    ("previous quarter", "2025-04-01", "2025-07-01"),
    ("this quarter", "2025-07-01", "2025-07-16"),
    ("last month", "2025-06-01", "2025-07-01"),
    ("last week", "2025-07-07", "2025-07-14"),
    ("ytd", "2025-01-01", "2025-07-16"),
    ("year to date", "2025-01-01", "2025-07-16"),
    ("mtd", "2025-07-01", "2025-07-16"),
    ("today", "2025-07-15", "2025-07-16"),
    ("yesterday", "2025-07-14", "2025-07-15"),
])
def test_periods(text, start, end):
    assert _period(text) == (start, end)


def test_leap_day_arithmetic():
    assert _period("last 12 months", dt.date(2024, 2, 29)) == ("2023-03-01", "2024-03-01")


@pytest.mark.parametrize("text, grain", [
    ("monthly revenue", "month"), ("revenue by quarter", "quarter"), ("revenue per year", "year"),
    ("revenue for each week", "week"), ("daily orders", "day"), ("annual sales", "year"),
    ("revenue month over month", "month"), ("yoy revenue", "year"),
])
def test_grains(text, grain):
    assert extract_time(tokenize(text), TODAY).grain == grain


def test_may_is_a_month_only_in_context():
    assert not extract_time(tokenize("which customers may order"), TODAY).periods
    assert _period("in may") == ("2025-05-01", "2025-06-01")
    assert _period("May 2023") == ("2023-05-01", "2023-06-01")


def test_numbers_that_are_not_years():
    assert not extract_time(tokenize("top 2000 customers"), TODAY).periods
    intent = extract_intent(tokenize("orders with quantity over 2000"), TODAY)
    assert not intent.time.periods and intent.comparisons[0].value == 2000


# -- intent -----------------------------------------------------------------------------------

def test_intent_structure():
    intent = extract_intent(tokenize("top 5 products by average revenue in 2024"), TODAY)
    assert (intent.rank_n, intent.rank_dir, intent.rank_explicit) == (5, "desc", True)
    assert list(intent.aggs.values()) == ["avg"]
    assert "by" in intent.markers.values()
    assert intent.time.periods[0].start == dt.date(2024, 1, 1)
    intent = extract_intent(tokenize("customers with at least 3 orders"), TODAY)
    assert [(c.op, c.value) for c in intent.comparisons] == [(">=", 3)]
    intent = extract_intent(tokenize("products with 10 or more orders"), TODAY)
    assert [(c.op, c.value) for c in intent.comparisons] == [(">=", 10)]
    intent = extract_intent(tokenize("bottom three regions"), TODAY)
    assert (intent.rank_n, intent.rank_dir) == (3, "asc")
    intent = extract_intent(tokenize("which country has the most customers"), TODAY)
    assert intent.rank_superlative is not None and intent.rank_dir == "desc"


def test_schema_phrases_shadow_aggregation_words():
    tokens = tokenize("list employees by last name")
    intent = extract_intent(tokens, TODAY, is_schema_phrase=lambda i, n: [t.norm for t in tokens[i:i + n]] == ["last", "name"])
    assert not intent.aggs


# -- a third schema: Chinook-like names (``InvoiceId`` keys, ``Name`` labels) ------------------------

CHINOOK = """
CREATE TABLE Genre (GenreId INTEGER PRIMARY KEY, Name TEXT);
CREATE TABLE Track (TrackId INTEGER PRIMARY KEY, Name TEXT, GenreId INTEGER, Milliseconds INTEGER);
CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY, FirstName TEXT, LastName TEXT, Country TEXT);
CREATE TABLE Invoice (InvoiceId INTEGER PRIMARY KEY, CustomerId INTEGER, InvoiceDate TEXT, BillingCountry TEXT);
CREATE TABLE InvoiceLine (InvoiceLineId INTEGER PRIMARY KEY, InvoiceId INTEGER, TrackId INTEGER,
                          UnitPrice NUMERIC, Quantity INTEGER);
INSERT INTO Genre VALUES (1, 'Rock'), (2, 'Jazz'), (3, 'Blues');
INSERT INTO Track VALUES (1, 'Song A', 1, 200000), (2, 'Song B', 1, 180000), (3, 'Tune C', 2, 300000),
                         (4, 'Tune D', 3, 240000);
INSERT INTO Customer VALUES (1, 'Ana', 'Silva', 'Brazil'), (2, 'Bo', 'Berg', 'Sweden'), (3, 'Cy', 'Cole', 'Canada');
INSERT INTO Invoice VALUES (1, 1, '2021-01-05', 'Brazil'), (2, 2, '2021-02-10', 'Sweden'),
                           (3, 1, '2021-02-20', 'Brazil'), (4, 3, '2022-03-01', 'Canada');
INSERT INTO InvoiceLine VALUES (1, 1, 1, 0.99, 2), (2, 1, 3, 1.99, 1), (3, 2, 2, 0.99, 5), (4, 3, 4, 1.49, 3),
                               (5, 4, 1, 0.99, 1), (6, 4, 3, 1.99, 4);
"""


@pytest.fixture(scope="module")
def chinook():
    con = sqlite3.connect(":memory:")
    con.executescript(CHINOOK)
    tables = []
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        info = con.execute(f"PRAGMA table_info({name})").fetchall()
        kinds = {"INTEGER": "number", "NUMERIC": "number", "TEXT": "text"}
        cols = tuple(Column(r[1], r[2], kinds[r[2]]) for r in info)
        tables.append(Table(name, cols, tuple(r[1] for r in info if r[5])))
    schema = Schema(tuple(tables))
    values = {(t, c): [r[0] for r in con.execute(f"SELECT DISTINCT {c} FROM {t}")]
              for t, c in SemanticModel.value_columns(schema)}
    yield con, SemanticModel.from_schema(schema, values)
    con.close()


@pytest.mark.parametrize("question, gold", [
    ("total sales", "SELECT SUM(UnitPrice * Quantity) FROM InvoiceLine"),
    ("revenue by genre", "SELECT g.Name, SUM(il.UnitPrice * il.Quantity) FROM InvoiceLine il "
                         "JOIN Track t ON il.TrackId = t.TrackId JOIN Genre g ON t.GenreId = g.GenreId GROUP BY g.GenreId"),
    ("revenue by billing country", "SELECT i.BillingCountry, SUM(il.UnitPrice * il.Quantity) FROM InvoiceLine il "
                                   "JOIN Invoice i ON il.InvoiceId = i.InvoiceId GROUP BY 1"),
    ("revenue in 2021", "SELECT SUM(il.UnitPrice * il.Quantity) FROM InvoiceLine il JOIN Invoice i "
                        "ON il.InvoiceId = i.InvoiceId WHERE i.InvoiceDate < '2022-01-01'"),
    ("sales of Jazz", "SELECT SUM(il.UnitPrice * il.Quantity) FROM InvoiceLine il JOIN Track t ON il.TrackId = t.TrackId "
                      "JOIN Genre g ON t.GenreId = g.GenreId WHERE g.Name = 'Jazz'"),
    ("how many invoices", "SELECT COUNT(*) FROM Invoice"),
    ("customers with at least 2 invoices", "SELECT c.LastName, COUNT(*) FROM Invoice i JOIN Customer c "
                                           "ON i.CustomerId = c.CustomerId GROUP BY c.CustomerId HAVING COUNT(*) >= 2"),
    ("top 2 tracks by quantity", "SELECT t.Name, SUM(il.Quantity) q FROM InvoiceLine il JOIN Track t "
                                 "ON il.TrackId = t.TrackId GROUP BY t.TrackId ORDER BY q DESC LIMIT 2"),
    ("average milliseconds by genre", "SELECT g.Name, AVG(t.Milliseconds) FROM Track t JOIN Genre g "
                                      "ON t.GenreId = g.GenreId GROUP BY g.GenreId"),
])
def test_a_schema_the_parser_never_saw(chinook, question, gold):
    con, model = chinook
    parsed = NLPAgent(today=TODAY).parse(question, model, dialect="sqlite")
    got = sorted(con.execute(parsed.sql).fetchall(), key=repr)
    want = sorted(con.execute(gold).fetchall(), key=repr)
    assert [tuple(round(v, 4) if isinstance(v, float) else v for v in r) for r in got] == \
        [tuple(round(v, 4) if isinstance(v, float) else v for v in r) for r in want], parsed.sql


def test_chinook_model(chinook):
    _, model = chinook
    edges = {(e.child, e.child_cols[0], e.parent) for e in model.edges}
    assert {("Invoice", "CustomerId", "Customer"), ("InvoiceLine", "InvoiceId", "Invoice"),
            ("InvoiceLine", "TrackId", "Track"), ("Track", "GenreId", "Genre")} <= edges
    assert model.fact_table == "InvoiceLine"
    assert model.tables["Genre"].label_column == "Name"
    assert model.default_dates["InvoiceLine"] == ("Invoice", "InvoiceDate")


# -- the agent's model cache ----------------------------------------------------------------------

class CountingWarehouse(DuckDBWarehouse):
    """A real DuckDB warehouse (a small file) that counts the agent's calls into it."""

    def __init__(self, path) -> None:
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE sales (sale_id INTEGER PRIMARY KEY, sold_on DATE, store VARCHAR, sku VARCHAR, amount DOUBLE)")
        # 250 distinct SKUs: more than the value index keeps, so sku must not be indexed.
        con.execute(
            "INSERT INTO sales SELECT i, DATE '2024-01-01' + CAST(i AS INTEGER), CASE WHEN i % 2 = 0 THEN 'North Store' ELSE 'South Store' END, "
            "'SKU-' || i, i * 1.5 FROM range(250) t(i)"
        )
        con.close()
        super().__init__("fake", f"duckdb:///{path}")
        self.schema_calls = 0
        self.value_calls: list[tuple[str, str, int]] = []

    async def _read_schema(self):
        self.schema_calls += 1  # real introspections of the database
        return await super()._read_schema()

    async def distinct_values(self, table: str, column: str, limit: int) -> list[str]:
        self.value_calls.append((table, column, limit))
        return await super().distinct_values(table, column, limit)


def test_model_for_builds_once_and_skips_high_cardinality(tmp_path):
    warehouse = CountingWarehouse(tmp_path / "sales.duckdb")
    agent = NLPAgent(today=TODAY)

    async def twice():
        return await asyncio.gather(agent.model_for(warehouse), agent.model_for(warehouse))

    first, second = asyncio.run(twice())
    assert first is second and warehouse.schema_calls == 1
    assert {c for _, c, _ in warehouse.value_calls} == {"store", "sku"}
    assert first.column("sales", "store").indexed and not first.column("sales", "sku").indexed
    parsed = agent.parse("amount in North Store by month", first, dialect="duckdb")
    assert "'North Store'" in parsed.sql and "DATE_TRUNC('month', sales.sold_on)" in parsed.sql
    agent.forget("fake")
    rebuilt = asyncio.run(agent.model_for(warehouse))
    assert rebuilt is not first, "forget() drops the cached model"


def test_not_understood_carries_examples(tmp_path):
    warehouse = CountingWarehouse(tmp_path / "sales.duckdb")
    agent = NLPAgent(today=TODAY)
    model = asyncio.run(agent.model_for(warehouse))
    with pytest.raises(NotUnderstood) as info:
        agent.parse("colorless green ideas", model, dialect="duckdb")
    assert info.value.suggestions[-len(model.example_questions()):] == model.example_questions()
    assert not any('"ids"' in s for s in info.value.suggestions)
    assert all(agent.parse(q, model, dialect="duckdb").sql for q in model.example_questions())


# -- the real demo warehouse ----------------------------------------------------------------------

def test_on_the_generated_demo(demo_duckdb):
    from livebi.warehouse import duckdb as duckdb_module
    import duckdb

    warehouse = duckdb_module.DuckDBWarehouse("demo", f"duckdb:///{demo_duckdb}")
    agent = NLPAgent(today=dt.date(2025, 12, 31))

    async def build():
        try:
            return await agent.model_for(warehouse)
        finally:
            await warehouse.close()

    model = asyncio.run(build())
    con = duckdb.connect(str(demo_duckdb), read_only=True)
    try:
        cases = {
            "revenue by region": "SELECT c.region, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) GROUP BY 1",
            "monthly revenue in 2024": "SELECT CAST(DATE_TRUNC('month', order_date) AS DATE), SUM(revenue) FROM orders "
                                       "WHERE order_date >= DATE '2024-01-01' AND order_date < DATE '2025-01-01' GROUP BY 1",
            "how many customers": "SELECT COUNT(*) FROM customers",
            "revenue in Middle East & Africa": "SELECT SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
                                               "WHERE c.region = 'Middle East & Africa'",
            "budget vs actual by department": "SELECT department, SUM(budget_amount), SUM(actual_amount) FROM budget GROUP BY 1",
            "top 5 products by revenue": "SELECT p.product_name, SUM(o.revenue) r FROM orders o JOIN products p "
                                         "USING (product_id) GROUP BY p.product_id, p.product_name ORDER BY r DESC LIMIT 5",
        }
        for question, gold in cases.items():
            sql = agent.parse(question, model, dialect="duckdb").sql
            assert sorted(con.execute(sql).fetchall(), key=repr) == sorted(con.execute(gold).fetchall(), key=repr), sql
    finally:
        con.close()
