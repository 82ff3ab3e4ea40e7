"""The LLM's prompt on the demo-like schema with the example semantic layer (pure: no endpoint)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from livebi.agents.nlp import SemanticModel, load_semantic_layer
from livebi.agents.nlp.llm import build_prompt, link_schema

from .test_nlp import _schema, data, duck  # noqa: F401 (fixtures)

LAYER = Path(__file__).resolve().parents[2] / "examples" / "demo-semantic.yaml"
TODAY = dt.date(2024, 6, 30)


@pytest.fixture(scope="module")
def layered(duck) -> SemanticModel:  # noqa: F811
    schema = _schema()
    layer = load_semantic_layer(LAYER)
    values = {}
    for table, column in SemanticModel.value_columns(schema, layer):
        values[(table, column)] = [r[0] for r in duck.execute(f"SELECT DISTINCT {column} FROM {table}").fetchall()]
    return SemanticModel.from_schema(schema, values, layer=layer)


def test_the_semantic_layer_reaches_the_prompt(layered) -> None:
    _, user, _ = build_prompt("gross margin by tier", layered, dialect="duckdb", today=TODAY)
    assert 'metric "gross margin" = (SUM(revenue) - SUM(cost)) / NULLIF(SUM(revenue), 0) -- (revenue - cost) / revenue' in user
    assert 'also called "deals", "transactions"' in user  # a table's synonyms
    assert 'also called "tier", "customer tier"' in user  # a column's
    assert '"unit_cost"' not in user  # hidden by the layer


def test_linking_follows_the_words_values_and_keys(layered) -> None:
    linked = link_schema("revenue in Furniture for Europe", layered, today=TODAY)
    assert {"orders", "products", "customers"} <= set(linked.tables)  # budget has regions too
    assert "cash_flow" not in linked.tables
    assert "Furniture" in linked.values[("products", "category")]
    assert linked.values[("customers", "region")] == ["Europe"]
    assert linked.tables.index("orders") < linked.tables.index("budget")  # the tables most words link to first
    assert link_schema("purple monkey dishwasher", layered, today=TODAY).tables == []


def test_matched_values_are_shown_first(layered) -> None:
    _, user, _ = build_prompt("revenue in North America", layered, dialect="duckdb", today=TODAY)
    line = next(ln for ln in user.splitlines() if ln.strip().startswith('"region"'))
    assert "values: 'North America', " in line  # listed last by the value index
