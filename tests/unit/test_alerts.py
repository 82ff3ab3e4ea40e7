"""Alerts, the pure core: the value a widget's result shows, and firing once per crossing.

Property tests (hypothesis) feed ``evaluate`` arbitrary value sequences and compare with a
direct definition of a crossing; ``value_of`` against plain Python over the rows.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from livebi.live.alerts import AGGREGATES, OPS, condition_text, evaluate, holds, message, side, value_of

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
number = st.one_of(st.integers(min_value=-10**9, max_value=10**9), finite)
maybe_number = st.one_of(st.none(), number)
ops = st.sampled_from(OPS)


def result(rows, columns=("region", "revenue"), kinds=("text", "number")):
    return {"columns": list(columns), "column_kinds": list(kinds), "rows": [list(r) for r in rows]}


def condition(value, op, threshold) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[op]


# -- evaluate ------------------------------------------------------------------------------------


@given(st.lists(maybe_number, max_size=40), ops, finite)
def test_fires_exactly_once_per_crossing_into_the_condition(values, op, threshold) -> None:
    state, fired_at = "unknown", []
    for i, value in enumerate(values):
        state, fired = evaluate(state, value, op, threshold)
        if fired:
            fired_at.append(i)
    # A crossing: a value meeting the condition whose previous known value did not (or none yet).
    expected, previous = [], None
    for i, value in enumerate(values):
        if value is None:
            continue
        now = condition(value, op, threshold)
        if now and not previous:
            expected.append(i)
        previous = now
    assert fired_at == expected


@given(st.lists(maybe_number, max_size=40), ops, finite)
def test_state_is_the_side_of_the_last_known_value(values, op, threshold) -> None:
    state = "unknown"
    for value in values:
        state, _ = evaluate(state, value, op, threshold)
    known = [v for v in values if v is not None]
    if not known:
        assert state == "unknown"
    else:
        assert holds(state, op) == condition(known[-1], op, threshold)


@given(number, ops, finite)
def test_never_fires_twice_while_the_condition_holds(value, op, threshold) -> None:
    state, first = evaluate("unknown", value, op, threshold)
    again, second = evaluate(state, value, op, threshold)
    assert again == state and not second
    assert first == condition(value, op, threshold)


@given(st.sampled_from(["above", "below", "unknown"]), ops, finite)
def test_no_value_changes_nothing(state, op, threshold) -> None:
    for nothing in (None, float("nan"), float("inf"), True, "12"):
        assert evaluate(state, nothing, op, threshold) == (state, False)


def test_the_boundary_belongs_to_the_op() -> None:
    assert side(10, ">", 10) == "below" and side(10, ">=", 10) == "above"
    assert side(10, "<", 10) == "above" and side(10, "<=", 10) == "below"
    assert evaluate("below", 10, ">=", 10) == ("above", True)
    assert evaluate("above", 10, "<=", 10) == ("below", True)


def test_rearms_after_leaving_the_condition() -> None:
    steps = [(5, False), (12, True), (15, False), (8, False), (11, True)]
    state = "unknown"
    for value, fires in steps:
        state, fired = evaluate(state, value, ">", 10)
        assert fired == fires, value


def test_unknown_op_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown op"):
        evaluate("unknown", 1, "==", 1)


# -- value_of ------------------------------------------------------------------------------------


rows_strategy = st.lists(st.tuples(st.text(max_size=3), maybe_number), max_size=30)


@given(rows_strategy)
def test_aggregates_match_plain_python(rows) -> None:
    data = result(rows)
    numbers = [v for _, v in rows if v is not None]
    assert value_of(data, None, "count") == len(rows)
    assert value_of(data, "revenue", "last") == (rows[-1][1] if rows else None)
    assert value_of(data, "revenue", "first") == (rows[0][1] if rows else None)
    assert value_of(data, "revenue", "max") == (max(numbers) if numbers else None)
    assert value_of(data, "revenue", "min") == (min(numbers) if numbers else None)
    total = value_of(data, "revenue", "sum")
    if numbers:
        assert math.isclose(total, math.fsum(numbers), rel_tol=1e-9, abs_tol=1e-6)
    else:
        assert total is None


@given(rows_strategy, st.randoms())
def test_order_free_aggregates_do_not_depend_on_row_order(rows, random) -> None:
    shuffled = list(rows)
    random.shuffle(shuffled)
    for aggregate in ("max", "min", "count"):
        assert value_of(result(rows), None, aggregate) == value_of(result(shuffled), None, aggregate)


@given(rows_strategy)
def test_max_is_at_least_min_and_last_and_first(rows) -> None:
    data = result(rows)
    high, low = value_of(data, None, "max"), value_of(data, None, "min")
    if high is None:
        assert low is None
        return
    assert low <= high
    for aggregate in ("last", "first"):
        v = value_of(data, None, aggregate)
        assert v is None or low <= v <= high


def test_default_column_is_the_first_numeric_one() -> None:
    data = result([("a", 1, 100), ("b", 2, 200)], columns=("name", "n", "total"), kinds=("text", "number", "number"))
    assert value_of(data) == 2
    assert value_of(data, "total", "sum") == 300
    assert value_of(result([("x",)], columns=("name",), kinds=("text",))) is None
    assert value_of(result([("x",)], columns=("name",), kinds=("text",)), None, "count") == 1


def test_what_gives_no_value() -> None:
    assert value_of(result([]), None, "last") is None
    assert value_of(result([("a", None)]), None, "last") is None
    assert value_of(result([("a", 1)]), "missing", "last") is None
    assert value_of(result([("a", 1)]), "region", "max") is None  # a text column has no number
    assert value_of(result([("a", True)]), None, "last") is None  # bools are not numbers
    assert value_of(result([("a", 1e308), ("b", 1e308)]), None, "sum") is None  # overflow, not inf
    with pytest.raises(ValueError, match="unknown aggregate"):
        value_of(result([("a", 1)]), None, "avg")
    assert set(AGGREGATES) == {"last", "first", "max", "min", "sum", "count"}


def test_words() -> None:
    assert condition_text(">", 10000, column="revenue", aggregate="last") == "revenue > 10,000"
    assert condition_text(">=", 50, column=None, aggregate="count") == "row count >= 50"
    assert message(12345.678, ">", 10000.0, column="revenue", aggregate="last") == "Revenue is 12,345.68, above 10,000"
    assert message(3, "<=", 5.0, column="n", aggregate="min") == "Smallest n is 3, at or below 5"
