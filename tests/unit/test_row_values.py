"""Ingested rows are checked against the table before anything is written (pure, no engine)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livebi.warehouse.row_values import (
    MAX_PROBLEMS,
    RowsInvalid,
    TargetColumn,
    TargetTable,
    convert_value,
    prepare_rows,
    value_type,
)

ORDERS = TargetTable("main", "orders", (
    TargetColumn("order_id", "INTEGER", nullable=False),
    TargetColumn("order_date", "DATE", nullable=False),
    TargetColumn("revenue", "DECIMAL(8,2)", nullable=False),
    TargetColumn("channel", "VARCHAR(12)"),
    TargetColumn("paid", "BOOLEAN", nullable=False, has_default=True),
    TargetColumn("created_at", "TIMESTAMP"),
    TargetColumn("total", "DOUBLE", generated=True),
))


def problems(rows, table=ORDERS, dialect="duckdb") -> list[tuple[int, str | None, str]]:
    with pytest.raises(RowsInvalid) as info:
        prepare_rows(table, rows, dialect)
    return [(p["row"], p["column"], p["message"]) for p in info.value.problems]


GOOD = {"order_id": 7, "order_date": "2025-12-31", "revenue": 12.5}


def test_a_good_row_is_converted_for_the_driver() -> None:
    [batch] = prepare_rows(ORDERS, [{**GOOD, "Channel": "Online", "created_at": "2025-12-31T10:30:00+02:00"}], "duckdb")
    assert batch.columns == ("order_id", "order_date", "revenue", "channel", "created_at")
    assert batch.rows == [(7, dt.date(2025, 12, 31), decimal.Decimal("12.50"), "Online", dt.datetime(2025, 12, 31, 8, 30))]


def test_rows_naming_different_columns_go_into_separate_batches_in_column_order() -> None:
    batches = prepare_rows(ORDERS, [GOOD, {**GOOD, "order_id": 8, "paid": False}, {**GOOD, "order_id": 9}], "duckdb")
    assert [(b.columns, [r[0] for r in b.rows]) for b in batches] == [
        (("order_id", "order_date", "revenue"), [7, 9]),
        (("order_id", "order_date", "revenue", "paid"), [8]),
    ]


@pytest.mark.parametrize("row, expected", [
    ({**GOOD, "nope": 1}, ("nope", "table 'orders' has no column 'nope'")),
    ({"order_id": 1, "revenue": 1}, ("order_date", "missing: the column is NOT NULL and has no default")),
    ({**GOOD, "order_id": None}, ("order_id", "must not be null (the column is NOT NULL)")),
    ({**GOOD, "order_id": "7"}, ("order_id", "expected an integer, got a string")),
    ({**GOOD, "order_id": True}, ("order_id", "expected an integer, got a boolean")),
    ({**GOOD, "order_id": 2**31}, ("order_id", "2147483648 is out of range for this column (-2147483648 to 2147483647)")),
    ({**GOOD, "order_id": 1.5}, ("order_id", "expected an integer, got 1.5")),
    ({**GOOD, "order_date": "31/12/2025"}, ("order_date", "expected a date as \"YYYY-MM-DD\", got '31/12/2025'")),
    ({**GOOD, "order_date": "2025-02-30"}, ("order_date", "'2025-02-30' is not a valid date (day is out of range for month)")),
    ({**GOOD, "revenue": 1_000_000}, ("revenue", "1000000 is out of range for DECIMAL(8,2): at most 6 digits before the decimal point")),
    ({**GOOD, "revenue": "twelve"}, ("revenue", "'twelve' is not a number")),
    ({**GOOD, "revenue": float("nan")}, ("revenue", "nan is not a finite number")),
    ({**GOOD, "channel": "x" * 13}, ("channel", "13 characters; this column holds at most 12")),
    ({**GOOD, "channel": "a\x00b"}, ("channel", "text may not contain NUL characters")),
    ({**GOOD, "channel": 3}, ("channel", "expected a string, got an integer")),
    ({**GOOD, "paid": "yes"}, ("paid", "expected true or false, got a string")),
    ({**GOOD, "created_at": "yesterday"}, ("created_at", "'yesterday' is not an ISO 8601 timestamp (e.g. \"2025-12-31T10:30:00Z\")")),
    ({**GOOD, "total": 1.0}, ("total", "the database computes this column; leave it out")),
    ({**GOOD, "ORDER_ID": 8}, ("ORDER_ID", "column 'order_id' is given twice (names are case-insensitive)")),
])
def test_each_kind_of_bad_value_is_named_with_its_row_and_column(row, expected) -> None:
    assert problems([GOOD, row]) == [(1, *expected)]


def test_rows_that_are_not_objects_or_empty() -> None:
    assert problems([["order_id", 1], {}, None]) == [
        (0, None, "a row must be a JSON object of column values, not an array"),
        (1, None, "the row names no column"),
        (2, None, "a row must be a JSON object of column values, not NoneType"),
    ]


def test_every_problem_is_counted_but_only_the_first_are_listed() -> None:
    with pytest.raises(RowsInvalid) as info:
        prepare_rows(ORDERS, [{**GOOD, "order_id": "x"}] * (MAX_PROBLEMS + 50), "duckdb")
    assert info.value.total == MAX_PROBLEMS + 50 and len(info.value.problems) == MAX_PROBLEMS
    assert str(info.value) == f"row 0, column 'order_id': expected an integer, got a string (and {MAX_PROBLEMS + 49} more problems); nothing was written"


@pytest.mark.parametrize("type_name, dialect, family, extra", [
    ("TINYINT", "duckdb", "integer", {"low": -128, "high": 127}),
    ("UBIGINT", "duckdb", "integer", {"low": 0, "high": 2**64 - 1}),
    ("HUGEINT", "duckdb", "integer", {"high": 2**127 - 1}),
    ("smallint", "postgres", "integer", {"high": 32767}),
    ("bigint", "postgres", "integer", {"high": 2**63 - 1}),
    ("numeric(12,2)", "postgres", "decimal", {"precision": 12, "scale": 2}),
    ("numeric", "postgres", "decimal", {"precision": None}),
    ("DECIMAL", "duckdb", "decimal", {"precision": 18, "scale": 3}),
    ("double precision", "postgres", "float", {"single": False}),
    ("real", "postgres", "float", {"single": True}),
    ("FLOAT", "duckdb", "float", {"single": True}),
    ("character varying(20)", "postgres", "text", {"length": 20}),
    ("character(3)", "postgres", "text", {"length": 3}),
    ("timestamp(3) without time zone", "postgres", "timestamp", {}),
    ("timestamp with time zone", "postgres", "timestamptz", {}),
    ("TIMESTAMP WITH TIME ZONE", "duckdb", "timestamptz", {}),
    ("TIMESTAMP_NS", "duckdb", "timestamp", {}),
    ("time without time zone", "postgres", "time", {}),
    ("ENUM('a', 'b')", "duckdb", "text", {}),
    ("jsonb", "postgres", "json", {}),
    ("BLOB", "duckdb", "unsupported", {}),
    ("INTERVAL", "duckdb", "unsupported", {}),
    ("INTEGER[]", "duckdb", "unsupported", {}),
    ("", "sqlite", "any", {}),
    ("NUMERIC(10,2)", "sqlite", "decimal", {"precision": 10}),
    ("NVARCHAR(40)", "sqlite", "text", {"length": 40}),
    ("DATETIME", "sqlite", "timestamp", {}),
    ("BIGINT", "sqlite", "integer", {"high": 2**63 - 1}),
])
def test_engine_type_names_map_to_what_a_column_accepts(type_name, dialect, family, extra) -> None:
    vt = value_type(type_name, dialect)
    assert vt.family == family
    for key, value in extra.items():
        assert getattr(vt, key) == value, key


def test_sqlite_gets_the_values_it_stores_by_convention() -> None:
    def col(type_name: str) -> TargetColumn:
        return TargetColumn("c", type_name)

    assert convert_value("2025-12-31", col("DATE"), "sqlite") == "2025-12-31"
    assert convert_value("2025-12-31T10:00:00Z", col("TIMESTAMP"), "sqlite") == "2025-12-31 10:00:00"
    assert convert_value(True, col("BOOLEAN"), "sqlite") == 1
    assert convert_value("12.345", col("NUMERIC(10,2)"), "sqlite") == 12.34  # half-even, as the engines round
    assert convert_value({"a": 1}, TargetColumn("j", "jsonb"), "postgres") == '{"a": 1}'
    assert convert_value("7c9e6679-7425-40de-944b-e07fc1f90ae7", col("uuid"), "postgres") == uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
    assert convert_value("2025-12-31T10:00:00", TargetColumn("t", "timestamptz"), "postgres").tzinfo == dt.timezone.utc
    with pytest.raises(ValueError, match="cannot write this column's type"):
        convert_value("0xff", col("BLOB"), "sqlite")
    assert convert_value(None, col("BLOB"), "sqlite") is None


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_integers_are_accepted_exactly_within_their_type(n: int) -> None:
    column = TargetColumn("n", "BIGINT")
    if -(2**63) <= n < 2**63:
        assert convert_value(n, column, "duckdb") == n
    else:
        with pytest.raises(ValueError, match="out of range"):
            convert_value(n, column, "duckdb")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**9, max_value=10**9))
def test_decimals_round_half_even_and_respect_the_precision(value: decimal.Decimal) -> None:
    column = TargetColumn("d", "DECIMAL(8,2)")
    rounded = value.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN)
    if abs(rounded) < 10**6:
        assert convert_value(str(value), column, "duckdb") == rounded
    else:
        with pytest.raises(ValueError, match="out of range"):
            convert_value(str(value), column, "duckdb")
