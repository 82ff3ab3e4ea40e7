"""Engine types and values, made uniform across connectors.

Every engine names its types differently (``DECIMAL(12,2)``, ``numeric``, ``float8``, SQLite's
free-form declared types). The NLP and viz agents only care about a coarse :data:`ColumnKind`,
and the wire protocol needs JSON-friendly values, so connectors funnel both through here.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import math
import re
import uuid
from typing import Any, Iterable

from livebi.warehouse.base import ColumnKind, Schema, WarehouseError

_NUMBER_WORDS = (
    "INT", "DECIMAL", "NUMERIC", "REAL", "DOUBLE", "FLOAT", "MONEY", "SERIAL", "NUMBER", "OID",
)
_TEXT_WORDS = ("CHAR", "TEXT", "CLOB", "STRING", "UUID", "ENUM", "NAME", "CITEXT")
#: Longest binary value rendered in full; longer ones are summarised (photos do not belong
#: in a chart's data).
MAX_BINARY_BYTES = 32


def kind_of(type_name: str | None) -> ColumnKind:
    """Map an engine type name (any supported engine) to a :data:`ColumnKind`.

    Timestamps count as ``date``; times of day, intervals, binaries and nested types are
    ``other``. Unknown names fall back to SQLite's affinity rules (``INT`` inside means
    integer, ``CHAR``/``TEXT`` text, ...), which also covers free-form declared types.
    """
    if not type_name:
        return "other"
    name = type_name.strip().upper()
    if name.endswith("]") or name.startswith(("STRUCT", "MAP", "UNION", "LIST", "ARRAY", "_")):
        return "other"  # nested types; asyncpg names arrays "_int4"
    base = name.split("(", 1)[0].strip()
    if base in ("BOOL", "BOOLEAN", "LOGICAL"):
        return "bool"
    if base.startswith(("TIMESTAMP", "DATETIME")) or base in ("DATE", "TIMESTAMPTZ", "SMALLDATETIME"):
        return "date"
    if base.startswith(("TIME", "INTERVAL")) or base in ("BLOB", "BYTEA", "BINARY", "VARBINARY", "JSON", "JSONB"):
        return "other"
    if base == "POINT":  # contains "INT" but is no number
        return "other"
    if any(word in base for word in _NUMBER_WORDS):
        return "number"
    if any(word in base for word in _TEXT_WORDS) or base in ("VARCHAR", "BPCHAR", "STR"):
        return "text"
    if "DATE" in base or "TIME" in base:
        return "date"
    if "BOOL" in base:
        return "bool"
    return "other"


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?$")


def kind_of_values(values: Iterable[Any]) -> ColumnKind:
    """Guess a column's kind from sample values (engines whose results carry no types).

    ISO-8601 strings count as dates: SQLite stores dates as text by convention, and a chart
    should still put them on a time axis.
    """
    kinds: set[ColumnKind] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            kinds.add("bool")
        elif isinstance(value, (int, float, decimal.Decimal)):
            kinds.add("number")
        elif isinstance(value, (datetime.date, datetime.datetime)):
            kinds.add("date")
        elif isinstance(value, str):
            kinds.add("date" if _ISO_DATE.match(value) else "text")
        else:
            kinds.add("other")
        if len(kinds) > 1:
            break
    if len(kinds) == 1:
        return kinds.pop()
    if kinds == {"date", "text"}:
        return "text"
    return "other"


def to_json_value(value: Any) -> Any:
    """Convert one engine value to something ``json.dumps`` accepts without help.

    Decimals become floats, dates and times ISO strings, NaN/Infinity ``None`` (JSON has no
    such numbers), UUIDs strings, short binaries ``0x``-hex and long ones a size summary.
    """
    kind = type(value)
    if value is None or kind is int or kind is str or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) <= MAX_BINARY_BYTES:
            return "0x" + raw.hex()
        return f"<{len(raw)} bytes>"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, int):  # bool subclasses and numpy-like ints
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "items"):  # asyncpg Record for composite types
        return {str(k): to_json_value(v) for k, v in value.items()}
    return str(value)


def to_json_row(row: Iterable[Any]) -> list[Any]:
    return [to_json_value(v) for v in row]


def quote_identifier(name: str) -> str:
    """Double-quote an identifier (valid in DuckDB, SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    """Single-quote a string literal (valid in DuckDB, SQLite and PostgreSQL)."""
    return "'" + text.replace("'", "''") + "'"


def distinct_values_sql(schema: Schema, table: str, column: str, limit: int) -> str:
    """SQL for the ``limit`` most frequent non-null values of ``table.column``, as text.

    The names are checked against ``schema`` and quoted, so callers may pass user input.
    Most frequent first: those are the values people are likely to name in a question.
    """
    found = schema.table(table)
    if found is None:
        raise WarehouseError("unknown_table", f"no table named {table!r}")
    col = found.column(column)
    if col is None:
        raise WarehouseError("unknown_column", f"table {found.name!r} has no column {column!r}")
    t, c = quote_identifier(found.name), quote_identifier(col.name)
    return (
        f"SELECT CAST({c} AS VARCHAR) AS value FROM {t} WHERE {c} IS NOT NULL "
        f"GROUP BY {c} ORDER BY count(*) DESC, 1 LIMIT {int(limit)}"
    )


def digest_rows(rows: Iterable[Iterable[Any]]) -> str:
    """A short stable digest of catalogue rows (schema fingerprints)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(tuple(row)).encode("utf-8", "replace"))
        h.update(b"\n")
    return h.hexdigest()[:32]
