"""Alerts, the pure part: a widget result's value, and whether a new value crosses a condition.

No I/O here (:mod:`.alert_service` stores and publishes). An alert watches one number taken from
each refreshed result of a widget (:func:`value_of`) and compares it with a threshold. Its
``state`` says on which side of the threshold the value was last seen, ``above`` or ``below``
(``unknown`` before any value); the op decides which side the boundary itself belongs to
(``>``: a value equal to the threshold is ``below``; ``>=``: ``above``). The condition holds on
the ``above`` side for ``>``/``>=`` and on the ``below`` side for ``<``/``<=``.

:func:`evaluate` fires once per crossing into the condition: when the new state is the
condition's side and the old one was not (``unknown`` included, so an alert whose condition
already holds at its first evaluation fires then). While the condition holds nothing fires; it
re-arms when the value leaves it. A refresh without a usable value (no rows, a null, a column
that is gone) changes nothing: no information is not a crossing.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping

Aggregate = Literal["last", "first", "max", "min", "sum", "count"]
Op = Literal[">", ">=", "<", "<="]
State = Literal["above", "below", "unknown"]

AGGREGATES: tuple[str, ...] = ("last", "first", "max", "min", "sum", "count")
OPS: tuple[str, ...] = (">", ">=", "<", "<=")
STATES: tuple[str, ...] = ("above", "below", "unknown")

#: Words for ops in messages ("rose above", "fell to or below", ...).
_OP_WORDS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


def _number(value: Any) -> float | int | None:
    """``value`` if it is a finite number (bools are not numbers here), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def column_index(data: Mapping[str, Any], column: str | None) -> int | None:
    """Where ``column`` is in the result (None: the first numeric column); None when it is not
    there or no column is numeric."""
    columns = list(data.get("columns") or [])
    if column is not None:
        return columns.index(column) if column in columns else None
    kinds = list(data.get("column_kinds") or [])
    return next((i for i, kind in enumerate(kinds) if kind == "number" and i < len(columns)), None)


def value_of(data: Mapping[str, Any], column: str | None = None, aggregate: str = "last") -> float | int | None:
    """The number an alert watches in a ``result``-shaped dict (``columns``, ``column_kinds``,
    ``rows``).

    Args:
        column: the column to read; None: the first column whose kind is ``number``.
        aggregate: ``last`` / ``first`` (the value in the last / first row), ``max``, ``min``,
            ``sum`` (over the column's numeric values), ``count`` (the number of rows; the
            column does not matter).

    Returns:
        The number, or None when there is none: no rows, no such (or no numeric) column, a null
        or non-numeric value in the row that ``last``/``first`` read, no numeric value at all
        for ``max``/``min``/``sum``.

    Raises:
        ValueError: an unknown aggregate (alerts are validated when they are created).
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}: expected one of {', '.join(AGGREGATES)}")
    rows = data.get("rows") or []
    if aggregate == "count":
        return len(rows)
    index = column_index(data, column)
    if index is None or not rows:
        return None
    if aggregate in ("last", "first"):
        row = rows[-1] if aggregate == "last" else rows[0]
        return _number(row[index]) if index < len(row) else None
    values = [v for row in rows if index < len(row) and (v := _number(row[index])) is not None]
    if not values:
        return None
    if aggregate == "max":
        return max(values)
    if aggregate == "min":
        return min(values)
    if not any(isinstance(v, float) for v in values):
        return sum(values)
    try:
        return _number(math.fsum(values))
    except OverflowError:  # beyond the float range: no number to compare
        return None


def side(value: float | int, op: str, threshold: float) -> State:
    """Which side of ``threshold`` ``value`` is on; the op says where the boundary belongs."""
    if op == ">":
        return "above" if value > threshold else "below"
    if op == ">=":
        return "above" if value >= threshold else "below"
    if op == "<":
        return "below" if value < threshold else "above"
    if op == "<=":
        return "below" if value <= threshold else "above"
    raise ValueError(f"unknown op {op!r}: expected one of {', '.join(OPS)}")


def holds(state: str, op: str) -> bool:
    """Whether an alert in ``state`` has its condition met."""
    return state == ("above" if op in (">", ">=") else "below")


def evaluate(state: str, value: float | int | None, op: str, threshold: float) -> tuple[State, bool]:
    """The alert's next state after seeing ``value``, and whether it fires now.

    Fires exactly when the new state meets the condition and ``state`` did not: once per
    crossing into it. ``value`` None (nothing to compare) keeps the state and never fires.
    """
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}: expected one of {', '.join(OPS)}")
    number = _number(value)
    if number is None:
        return (state if state in STATES else "unknown"), False  # type: ignore[return-value]
    new = side(number, op, threshold)
    return new, holds(new, op) and not holds(state, op)


def format_number(value: float | int) -> str:
    """12345.678 -> '12,345.68'; integers without decimals."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4g}"


def _what(aggregate: str, column: str | None) -> str:
    """'revenue', 'largest revenue', 'row count', ... (what the alert watches)."""
    name = column or "value"
    return {"last": name, "first": f"{name} (first row)", "max": f"largest {name}", "min": f"smallest {name}",
            "sum": f"sum of {name}", "count": "row count"}[aggregate]


def condition_text(op: str, threshold: float, *, column: str | None, aggregate: str) -> str:
    """'revenue > 10,000' (what the alert watches, for lists and messages)."""
    return f"{_what(aggregate, column)} {op} {format_number(threshold)}"


def message(value: float | int, op: str, threshold: float, *, column: str | None, aggregate: str) -> str:
    """The notification's sentence: 'Revenue is 12,345, above 10,000'."""
    what = _what(aggregate, column)
    return f"{what[:1].upper()}{what[1:]} is {format_number(value)}, {_OP_WORDS[op]} {format_number(threshold)}"
