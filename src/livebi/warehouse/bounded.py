"""Bounded results: values are cut and bytes counted *while* rows are fetched.

A result is published once, kept in channel history and replayed to reconnecting clients, so
its size must be bounded by bytes, not only by the row cap. Cutting after the fetch is too
late: a 0.4 MB answer once cost 700 MB of server memory because the driver had materialised
every huge value first. So each connector bounds a result in two places, both defined here:

- in the engine, :func:`bounded_select` wraps the query so that long text is cut, long binaries
  are summarised and nested values are rendered as cut text *before* they leave the engine
  (``left(repeat('x', 10^8), n)`` never crosses the driver);
- in Python, a :class:`ResultBudget` converts each fetched row to JSON-friendly values, cuts
  what is still too long, counts the estimated JSON bytes, stops the fetch as soon as the row
  cap or the byte budget is reached, and picks the size of the next ``fetchmany`` so that one
  chunk of wide rows never materialises much more than the room left.

The pure parts (no I/O) are unit-tested; connectors only call ``chunk_size()`` / ``add()``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Literal, Sequence

from livebi.warehouse.base import DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_VALUE_CHARS, ColumnKind, QueryResult
from livebi.warehouse.types import MAX_BINARY_BYTES, quote_identifier, to_json_value

ELLIPSIS = "…"
#: Rows asked for by the first ``fetchmany``: small, so that a first chunk of huge rows costs
#: little; the size doubles after each chunk while rows stay small.
FIRST_CHUNK = 16
#: Largest ``fetchmany``: beyond this, bigger chunks save nothing measurable.
MAX_CHUNK = 4096
#: Raw bytes one chunk may bring in even when the budget has less room left (a floor, so that
#: the last rows of a nearly full result are not fetched one by one).
CHUNK_FLOOR_BYTES = 256 * 1024
#: Estimated JSON bytes of an integer below 10^10 (or other short scalar), and of any float.
SCALAR_BYTES = 12
FLOAT_BYTES = 24  # the longest repr: -1.2345678901234567e-300


@dataclasses.dataclass(frozen=True)
class ResultLimits:
    """How big one result may get. Every connector's ``execute()`` receives these."""

    row_cap: int
    max_bytes: int = DEFAULT_MAX_RESULT_BYTES  # estimated JSON bytes of all rows
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS  # longest text; longer ones end in '…'


# ------------------------------------------------------------------------------------------
# values


def bounded_value(value: Any, max_chars: int) -> tuple[Any, int, bool]:
    """``value`` as JSON-friendly data, cut to ``max_chars`` per text.

    Returns ``(value, estimated JSON bytes, whether something was cut)``. Nested lists and
    dicts are walked and each text inside is cut the same way.
    """
    kind = type(value)
    if value is None or kind is bool:
        return value, 5, False
    if kind is int:
        return value, SCALAR_BYTES if -(10**10) < value < 10**10 else len(str(value)), False
    if kind is float:
        return to_json_value(value), FLOAT_BYTES, False
    if kind is str:
        cut = len(value) > max_chars
        if cut:
            value = value[:max_chars] + ELLIPSIS
        return value, _text_bytes(value), cut
    if isinstance(value, (list, tuple)):
        out, size, cut = [], 2, False
        for item in value:
            v, n, c = bounded_value(item, max_chars)
            out.append(v)
            size += n + 1
            cut = cut or c
        return out, size, cut
    if isinstance(value, dict) or (hasattr(value, "items") and not isinstance(value, (str, bytes))):
        out_d: dict[str, Any] = {}
        size, cut = 2, False
        for k, item in value.items():
            key = str(k)[:max_chars]
            v, n, c = bounded_value(item, max_chars)
            out_d[key] = v
            size += _text_bytes(key) + 1 + n + 1
            cut = cut or c
        return out_d, size, cut
    if isinstance(value, (bytes, bytearray, memoryview)):
        converted = to_json_value(value)  # short ones as 0x-hex, long ones a size summary
        return converted, _text_bytes(converted), len(value) > MAX_BINARY_BYTES
    converted = to_json_value(value)  # dates, decimals, UUIDs, ... : short by nature
    if isinstance(converted, str):
        return bounded_value(converted, max_chars)
    return converted, FLOAT_BYTES if isinstance(converted, float) else SCALAR_BYTES, False


def _text_bytes(text: str) -> int:
    """Exact bytes of ``text`` as JSON (frames are dumped with ``ensure_ascii=False``)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2  # the common case, without encoding
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _raw_bytes(row: Sequence[Any]) -> int:
    """Rough memory a fetched (not yet converted) row occupied: what a chunk costs."""
    total = 0
    for value in row:
        if isinstance(value, (str, bytes, bytearray)):
            total += len(value) + 16
        elif isinstance(value, (list, tuple, dict)):
            total += 16 * (len(value) + 1)
        else:
            total += 16
    return total


# ------------------------------------------------------------------------------------------
# the budget


class ResultBudget:
    """The rows of one result as they are fetched, cut and counted against ``limits``.

    Use::

        budget = ResultBudget(limits)
        while not budget.full:
            chunk = cursor.fetchmany(budget.chunk_size())
            if not chunk or not budget.add(chunk):
                break

    ``truncated`` becomes True when rows were left out (row cap, byte budget) or a value was
    cut; ``rows_seen`` counts every row received, including the one that revealed the cap.
    """

    def __init__(self, limits: ResultLimits) -> None:
        if limits.row_cap < 0 or limits.max_bytes < 0 or limits.max_value_chars < 1:
            raise ValueError(f"invalid result limits: {limits}")
        self.limits = limits
        self.rows: list[list[Any]] = []
        self.bytes = 2  # the enclosing brackets
        self.rows_seen = 0
        self.truncated = False
        self.full = False
        self._next_chunk = FIRST_CHUNK
        self._raw_total = 0

    def chunk_size(self) -> int:
        """How many rows the next fetch may ask for (at least 1).

        Never more than the row cap needs (+1 reveals that the cap cut the result), and, once
        rows have been seen, no more than the room left in the byte budget holds at the rows'
        average *raw* size: a chunk of 50 MB values is fetched one row at a time.
        """
        size = min(self._next_chunk, self.limits.row_cap + 1 - len(self.rows))
        if self.rows_seen:
            average = max(1.0, self._raw_total / self.rows_seen)
            room = max(self.limits.max_bytes - self.bytes, CHUNK_FLOOR_BYTES)
            size = min(size, int(room / average))
        return max(1, size)

    def add(self, chunk: Iterable[Sequence[Any]]) -> bool:
        """Convert and keep rows while the limits allow. Returns False once the result is
        full (stop fetching): the row cap or the byte budget was reached."""
        limits = self.limits
        for raw in chunk:
            self.rows_seen += 1
            self._raw_total += _raw_bytes(raw)
            if len(self.rows) >= limits.row_cap:
                return self._stop()
            row, size = [], 2
            for value in raw:
                converted, n, cut = bounded_value(value, limits.max_value_chars)
                row.append(converted)
                size += n + 1
                if cut:
                    self.truncated = True
            if self.bytes + size + 1 > limits.max_bytes:
                return self._stop()
            self.bytes += size + 1
            self.rows.append(row)
        self._next_chunk = min(self._next_chunk * 2, MAX_CHUNK)
        return True

    def result(self, columns: list[str], kinds: list[ColumnKind], elapsed_ms: float) -> QueryResult:
        return QueryResult(
            columns=columns,
            column_kinds=kinds,
            rows=self.rows,
            row_count=len(self.rows),
            truncated=self.truncated,
            elapsed_ms=elapsed_ms,
        )

    def _stop(self) -> bool:
        self.truncated = True
        self.full = True
        return False


# ------------------------------------------------------------------------------------------
# cutting in the engine

#: What the engine should do with a result column before its values reach the driver.
#: ``keep``: fixed-size values (numbers, dates, booleans, UUIDs); ``text``: cut;
#: ``binary``: short ones kept as ``0x`` hex, long ones replaced by a size summary;
#: ``nested``/unknown: rendered as text, then cut.
Shape = Literal["keep", "text", "binary", "nested", "any"]

Dialect = Literal["duckdb", "postgres", "sqlite"]


def bounded_select(sql: str, shapes: Sequence[Shape], names: Sequence[str], *, dialect: Dialect, max_chars: int) -> str | None:
    """``sql`` wrapped so the engine cuts long values itself; None when nothing needs it.

    The wrapped query keeps the column names, their order and the row order (a projection
    over the query), and renames the inner columns positionally so duplicate names are fine.
    ``any`` (SQLite, whose results carry no types) decides per value at run time.
    """
    if all(shape == "keep" for shape in shapes):
        return None
    limit = max_chars + 1  # one more than allowed, so that Python knows to add '…'
    inner = [f"c{i}" for i in range(len(shapes))]
    exprs = []
    for col, shape, name in zip(inner, shapes, names):
        exprs.append(f"{_cut_expression(col, shape, dialect, limit)} AS {quote_identifier(name)}")
    body = strip_statement(sql)
    select = ", ".join(exprs)
    if dialect == "sqlite":  # no column aliases on subqueries: a CTE with a column list
        return f"WITH q({', '.join(inner)}) AS NOT MATERIALIZED (\n{body}\n) SELECT {select} FROM q"
    return f"SELECT {select} FROM (\n{body}\n) AS q({', '.join(inner)})"


def _cut_expression(col: str, shape: Shape, dialect: Dialect, limit: int) -> str:
    c = f"q.{col}"
    if shape == "keep":
        return c
    if dialect == "sqlite":
        # the value's own type decides; short blobs stay blobs so the kind guess sees bytes
        return (
            f"CASE typeof({c}) WHEN 'text' THEN substr({c}, 1, {limit}) "
            f"WHEN 'blob' THEN CASE WHEN length({c}) <= {MAX_BINARY_BYTES} THEN {c} "
            f"ELSE '<' || length({c}) || ' bytes>' END ELSE {c} END"
        )
    hex_ = f"lower(hex({c}))" if dialect == "duckdb" else f"encode({c}, 'hex')"
    if shape == "binary":
        return (
            f"CASE WHEN octet_length({c}) <= {MAX_BINARY_BYTES} THEN '0x' || {hex_} "
            f"ELSE '<' || octet_length({c}) || ' bytes>' END"
        )
    if shape == "text":
        return f"left({c}, {limit})"
    return f"left(CAST({c} AS {'VARCHAR' if dialect == 'duckdb' else 'text'}), {limit})"


def strip_statement(sql: str) -> str:
    """``sql`` without surrounding blanks and trailing semicolons, ready to be wrapped."""
    # A trailing ';' would end the wrapped statement early; the newline before ')' (added by
    # the caller) ends a trailing line comment.
    body = sql.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body


_DUCKDB_KEEP = frozenset(
    {
        "boolean", "tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
        "uinteger", "ubigint", "uhugeint", "float", "double", "decimal", "date", "time", "time_ns",
        "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns", "timestamp with time zone",
        "time with time zone", "interval", "uuid", "enum", "null", '"null"',
    }
)
_POSTGRES_KEEP = frozenset(
    {
        "int2", "int4", "int8", "float4", "float8", "numeric", "money", "oid", "bool", "date",
        "time", "timetz", "timestamp", "timestamptz", "interval", "uuid", "inet", "cidr",
        "macaddr", "macaddr8", "void",
    }
)


def duckdb_shape(type_id: str) -> Shape:
    """Shape of a DuckDB result column from its type id (``DuckDBPyType.id``)."""
    if type_id in _DUCKDB_KEEP:
        return "keep"
    if type_id == "varchar":
        return "text"
    if type_id == "blob":
        return "binary"
    return "nested"


def postgres_shape(type_name: str, type_kind: str) -> Shape:
    """Shape of a PostgreSQL result column from asyncpg's type name and kind."""
    if type_kind == "scalar" and type_name in _POSTGRES_KEEP:
        return "keep"
    if type_name in ("text", "varchar", "bpchar", "name", "citext", "char"):
        return "text"
    if type_name == "bytea":
        return "binary"
    return "nested"  # arrays, composites, json, xml, domains, ranges...: as cut text

