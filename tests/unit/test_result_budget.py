"""The result budget every connector fetches through (pure: rows in, bounded rows out)."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest

from livebi.warehouse.bounded import (
    FIRST_CHUNK,
    MAX_CHUNK,
    ResultBudget,
    ResultLimits,
    bounded_select,
    bounded_value,
)


def fill(budget: ResultBudget, rows: list[tuple]) -> list[int]:
    """Feed ``rows`` the way a connector does; return the chunk sizes asked for."""
    sizes, position = [], 0
    while not budget.full and position < len(rows):
        size = budget.chunk_size()
        sizes.append(size)
        budget.add(rows[position:position + size])
        position += size
    return sizes


def test_chunks_start_small_and_grow_while_rows_are_small() -> None:
    budget = ResultBudget(ResultLimits(row_cap=100_000))
    sizes = fill(budget, [(i, "x") for i in range(30_000)])
    assert sizes[0] == FIRST_CHUNK and sizes[1] == 2 * FIRST_CHUNK and max(sizes) == MAX_CHUNK
    assert budget.rows[:2] == [[0, "x"], [1, "x"]] and not budget.truncated and budget.rows_seen == 30_000


def test_huge_rows_are_fetched_one_at_a_time() -> None:
    budget = ResultBudget(ResultLimits(row_cap=1000, max_bytes=100_000, max_value_chars=100))
    sizes = fill(budget, [("x" * 5_000_000,)] * 50)
    assert sizes[0] == FIRST_CHUNK and set(sizes[1:]) == {1}
    assert budget.rows[0] == ["x" * 100 + "…"] and budget.truncated


def test_row_cap_is_revealed_by_one_extra_row() -> None:
    budget = ResultBudget(ResultLimits(row_cap=20))
    sizes = fill(budget, [(i,) for i in range(100)])
    assert sum(sizes) == 21 and budget.rows_seen == 21 and len(budget.rows) == 20 and budget.truncated
    exact = ResultBudget(ResultLimits(row_cap=20))
    fill(exact, [(i,) for i in range(20)])
    assert len(exact.rows) == 20 and not exact.truncated


def test_byte_budget_keeps_the_first_rows_in_order_and_stops() -> None:
    budget = ResultBudget(ResultLimits(row_cap=1000, max_bytes=1000, max_value_chars=1000))
    fill(budget, [("x" * 90, i) for i in range(100)])
    assert 0 < len(budget.rows) < 100 and budget.truncated and budget.full
    assert [row[1] for row in budget.rows] == list(range(len(budget.rows)))


@pytest.mark.parametrize("value", [
    "ascii", "é" * 50, "日本語" * 30, 'quote " and \\ backslash', 3, -(10**30), 1.2345678901234567e300, True, None,
    decimal.Decimal("12.50"), datetime.date(2024, 1, 2), b"\x00\xff", b"z" * 100, ["a" * 10, 1, [2.5, None]], {"k": "v" * 40},
])
def test_estimated_bytes_cover_the_json(value) -> None:
    converted, size, _ = bounded_value(value, 20)
    assert len(json.dumps(converted, separators=(",", ":"), ensure_ascii=False).encode()) <= size


def test_nested_values_are_cut_inside() -> None:
    converted, _, cut = bounded_value({"a": ["x" * 50, 1]}, 10)
    assert converted == {"a": ["x" * 10 + "…", 1]} and cut


def test_bounded_select_wraps_only_what_needs_cutting() -> None:
    assert bounded_select("SELECT 1", ["keep"], ["n"], dialect="duckdb", max_chars=10) is None
    duck = bounded_select("SELECT a, a, b FROM t;", ["keep", "text", "binary"], ["a", "a", 'we"ird'], dialect="duckdb", max_chars=10)
    assert duck == (
        'SELECT q.c0 AS "a", left(q.c1, 11) AS "a", CASE WHEN octet_length(q.c2) <= 32 THEN \'0x\' || lower(hex(q.c2)) '
        "ELSE '<' || octet_length(q.c2) || ' bytes>' END AS \"we\"\"ird\" FROM (\nSELECT a, a, b FROM t\n) AS q(c0, c1, c2)"
    )
    pg = bounded_select("SELECT x -- trailing comment", ["nested"], ["x"], dialect="postgres", max_chars=5)
    assert pg == 'SELECT left(CAST(q.c0 AS text), 6) AS "x" FROM (\nSELECT x -- trailing comment\n) AS q(c0)'
    lite = bounded_select("SELECT x FROM t", ["any"], ["x"], dialect="sqlite", max_chars=5)
    assert lite.startswith("WITH q(c0) AS NOT MATERIALIZED (\nSELECT x FROM t\n) SELECT CASE typeof(q.c0)")
