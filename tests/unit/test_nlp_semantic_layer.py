"""The semantic layer: the demo example changes answers; bad files fail clearly, naming the place.

Models are built by the real agent from the generated demo warehouse (DuckDB, in process), so
synonyms, metrics and hidden columns are checked on the SQL they produce and its results.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from livebi.agents.nlp import NLPAgent, NotUnderstood, SemanticLayerError, SemanticModel, load_semantic_layer
from livebi.agents.nlp.semantic_layer import parse_semantic_layer
from livebi.config import Settings
from livebi.services import build_nlp_agent
from livebi.warehouse.registry import open_warehouse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "demo-semantic.yaml"
TODAY = dt.date(2025, 12, 31)
KEPT = "status NOT IN ('cancelled', 'returned')"  # the example layer's default filter on revenue


@pytest.fixture(scope="module")
def models(demo_duckdb: Path) -> tuple[SemanticModel, SemanticModel]:
    """(without the layer, with the example layer) for the same demo warehouse."""

    async def build():
        wh = open_warehouse("demo", f"duckdb:///{demo_duckdb}")
        try:
            plain = await NLPAgent(today=TODAY).model_for(wh)
            layered = await NLPAgent(today=TODAY, semantic_layers={"demo": load_semantic_layer(EXAMPLE)}).model_for(wh)
        finally:
            await wh.close()
        return plain, layered

    return asyncio.run(build())


@pytest.fixture(scope="module")
def con(demo_duckdb: Path):
    connection = duckdb.connect(str(demo_duckdb), read_only=True)
    yield connection
    connection.close()


def parse(model: SemanticModel, question: str):
    return NLPAgent(today=TODAY).parse(question, model, dialect="duckdb")


def rows(con, sql: str) -> list[tuple]:
    return sorted((tuple(round(float(v), 4) if isinstance(v, (int, float)) or type(v).__name__ == "Decimal" else v
                         for v in row) for row in con.execute(sql).fetchall()), key=repr)


def test_synonyms_teach_words_the_schema_does_not_have(models, con) -> None:
    plain, layered = models
    gold = ("SELECT c.segment, SUM(o.revenue) FROM orders o JOIN customers c USING (customer_id) "
            f"WHERE o.{KEPT} GROUP BY 1")  # the layer's revenue leaves cancelled and returned orders out
    for question in ("bookings by tier", "turnover by client segment"):
        with pytest.raises(NotUnderstood):
            parse(plain, question)
        parsed = parse(layered, question)
        assert rows(con, parsed.sql) == rows(con, gold), question
    # a value synonym: "returns" are orders whose status is 'returned'
    parsed = parse(layered, "how many returns in 2024")
    assert rows(con, parsed.sql) == rows(con, "SELECT COUNT(*) FROM orders WHERE status = 'returned' "
                                              "AND order_date >= DATE '2024-01-01' AND order_date < DATE '2025-01-01'")


def test_metrics_are_computed_as_defined(models, con) -> None:
    plain, layered = models
    parsed = parse(layered, "gross margin by line of business")
    assert "NULLIF(SUM(CASE WHEN NOT orders.status IN ('cancelled', 'returned') THEN orders.revenue END), 0)" \
        in parsed.sql
    assert rows(con, parsed.sql) == rows(con, "SELECT p.category, (SUM(o.revenue) - SUM(o.cost)) / SUM(o.revenue) "
                                              f"FROM orders o JOIN products p USING (product_id) WHERE o.{KEPT} "
                                              "GROUP BY 1")
    assert any("gross margin" in a for a in parsed.assumptions)
    # a row-level metric takes the aggregation asked for: "average list revenue"
    parsed = parse(layered, "average list revenue per channel")
    assert rows(con, parsed.sql) == rows(con, "SELECT channel, AVG(quantity * unit_price) FROM orders GROUP BY 1")
    with pytest.raises(NotUnderstood):
        parse(plain, "gm by line of business")
    top = parse(layered, "top 3 clients by gross profit")
    assert rows(con, top.sql) == rows(con, "SELECT c.customer_name, SUM(o.revenue - o.cost) AS gp FROM orders o "
                                           f"JOIN customers c USING (customer_id) WHERE o.{KEPT} "
                                           "GROUP BY c.customer_id, 1 ORDER BY gp DESC LIMIT 3")


def test_hidden_columns_are_never_used(models) -> None:
    plain, layered = models
    assert "orders.unit_price" in parse(plain, "average price by category").sql
    parsed = parse(layered, "average price by category")
    assert "orders.unit_price" not in parsed.sql and "AVG(products.unit_price)" in parsed.sql
    listing = parse(layered, "list orders from Germany")
    assert "unit_price" not in listing.sql and "unit_price" in parse(plain, "list orders from Germany").sql
    assert "unit_cost" not in parse(layered, "show products").sql
    assert "unit_cost" not in parse(layered, "total unit cost").sql


def test_default_aggregation_and_human_names(models, demo_duckdb: Path) -> None:
    plain, layered = models
    assert "SUM(orders.quantity)" in parse(plain, "quantity by channel").sql
    parsed = parse(layered, "discount rate by channel")  # "discount rate" is the layer's name
    assert "AVG(orders.discount)" in parsed.sql and "avg_discount_rate" in parsed.sql
    layer = parse_semantic_layer({"tables": {"orders": {"columns": {"quantity": {"aggregation": "max"}}}}})

    async def build():
        wh = open_warehouse("demo", f"duckdb:///{demo_duckdb}")
        try:
            return await NLPAgent(semantic_layers={"demo": layer}).model_for(wh)
        finally:
            await wh.close()

    assert "MAX(orders.quantity)" in parse(asyncio.run(build()), "quantity by channel").sql


def test_example_questions_follow_the_layer(models) -> None:
    _, layered = models
    assert all("unit cost" not in q for q in layered.example_questions(10))


# -- bad files ---------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "layer.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, where, problem", [
    ("tables:\n  orders:\n    columns: [a\n", "line ", "not valid YAML"),
    ("- just\n- a list\n", "", "expected a mapping"),
    ("metrix:\n  x: SUM(a)\n", "metrix", 'unknown key "metrix"; did you mean "metrics"?'),
    ("tables:\n  orders:\n    columns:\n      revenue: {aggregation: total}\n",
     "tables → orders → columns → revenue → aggregation", '"total" is not one of sum, avg'),
    ("tables:\n  orders:\n    columns:\n      revenue: {hidden: yes please}\n",
     "tables → orders → columns → revenue → hidden", "expected true or false"),
    ("metrics:\n  m: SUM(revenue\n", "metrics → m", "the expression does not parse"),
    ("metrics:\n  m: revenue * 2\n", "metrics → m", "a metric must aggregate"),
    ("metrics:\n  m: SUM(x) OVER ()\n", "metrics → m", "window functions"),
    ("metrics:\n  m: (SELECT SUM(revenue) FROM orders)\n", "metrics → m", "not a query"),
    ("metrics:\n  m:\n    table: orders\n", "metrics → m", "needs an expression"),
    ("relationships:\n  - {from: orders, to: customers.customer_id}\n", "relationships → 1 → from", "table.column"),
])
def test_bad_files_name_the_file_the_place_and_the_problem(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SemanticLayerError) as info:
        load_semantic_layer(path)
    message = str(info.value)
    assert message.startswith(str(path)) and where in message and problem in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SemanticLayerError, match="cannot read the file"):
        load_semantic_layer(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, problem", [
    ("tables:\n  oders: {}\n", 'no table "oders"; did you mean orders?'),
    ("tables:\n  orders:\n    columns:\n      revnue: {hidden: true}\n", 'no column "revnue" in orders; did you mean revenue?'),
    ("metrics:\n  m: SUM(revnue)\n", "no table has all its columns"),
    ("metrics:\n  m: {table: orders, expression: SUM(revnue)}\n", 'no column "revnue" in orders; did you mean revenue?'),
    ("metrics:\n  m: SUM(unit_price)\n", "its columns are in orders, products: say which with table:"),
    ("metrics:\n  m: {table: orders, expression: SUM(customers.region)}\n", "columns of one table (orders)"),
    ("metrics:\n  m: {table: orders, expression: \"SUM(read_csv('/etc/passwd'))\"}\n", "not allowed"),
    ("synonyms:\n  x: orders.nope\n", 'no column "nope" in orders'),
    ("synonyms:\n  x: nowhere\n", 'no table "nowhere"'),
    ("tables:\n  orders: {date: channel}\n", "orders.channel is not a date column"),
    ("tables:\n  orders: {measure: profitz}\n", 'no measure "profitz" in orders'),
    ("relationships:\n  - {from: orders.client_id, to: customers.customer_id}\n", 'no column "client_id" in orders'),
])
def test_layers_that_do_not_fit_the_schema(tmp_path: Path, demo_duckdb: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    layer = load_semantic_layer(path)  # the shape is fine: only the schema can tell

    async def build():
        wh = open_warehouse("demo", f"duckdb:///{demo_duckdb}")
        try:
            await NLPAgent(semantic_layers={"demo": layer}).check_semantic_layers({"demo": wh})
        finally:
            await wh.close()

    with pytest.raises(SemanticLayerError) as info:
        asyncio.run(build())
    assert str(info.value).startswith(str(path)) and problem in str(info.value), str(info.value)


def test_startup_refuses_a_bad_layer_or_an_unknown_warehouse(tmp_path: Path) -> None:
    bad = write(tmp_path, "tables: [orders]\n")
    with pytest.raises(SemanticLayerError, match="layer.yaml: tables: expected a mapping"):
        build_nlp_agent(Settings(semantic_layers={"demo": bad}))
    agent = build_nlp_agent(Settings(semantic_layers={"sales": EXAMPLE}))
    with pytest.raises(SemanticLayerError, match="no warehouse is named 'sales'"):
        asyncio.run(agent.check_semantic_layers({"demo": object()}))  # type: ignore[dict-item]


def test_an_empty_file_is_an_empty_layer() -> None:
    assert parse_semantic_layer(None, "x.yaml").metrics == {}
