"""JSON rows checked and converted against a table's columns, before anything is written.

Pure (no I/O): the ingest service runs :func:`prepare_rows` in a worker thread, then hands the
result to a :mod:`~livebi.warehouse.writers` writer, which inserts it in one transaction. Every
problem is collected (up to a limit) as ``{"row": i, "column": c, "message": m}`` so a client
can fix its whole batch at once; one bad row means nothing is written.

What a column accepts is decided by its engine type name (:func:`value_type`), the same way for
DuckDB, SQLite and PostgreSQL:

- integers: JSON integers (or floats without a fraction) within the type's range
  (``TINYINT`` .. ``HUGEINT``, unsigned variants, ``smallint``/``integer``/``bigint``);
- decimals ``DECIMAL(p,s)``: numbers or numeric strings ("12.30") with at most ``p - s``
  integer digits, rounded half-even to ``s`` places as the engines do;
- floats: finite JSON numbers (``REAL``/``FLOAT4`` within single precision);
- booleans: ``true``/``false`` only;
- text: strings without NUL characters, at most ``n`` characters for ``VARCHAR(n)``;
- dates ``"YYYY-MM-DD"``; timestamps ISO 8601 (``"2025-12-31T10:00:00"``, an offset or ``Z``
  allowed; a timestamp without time zone stores the UTC time, one with a zone assumes UTC when
  none is given); times ``"HH:MM[:SS[.ffffff]]"``; UUIDs as strings; JSON columns any value;
- SQLite columns without a declared type: any scalar.

Types nothing maps (binary, intervals, nested types) take only ``null``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import re
import uuid
from typing import Any, Callable, Literal, Mapping, Sequence

#: Problems listed in one answer; the total is reported too.
MAX_PROBLEMS = 100

Family = Literal["integer", "decimal", "float", "bool", "text", "date", "timestamp", "timestamptz",
                 "time", "uuid", "json", "any", "unsupported"]

_INT_BITS = {
    # DuckDB
    "TINYINT": (8, True), "INT1": (8, True), "SMALLINT": (16, True), "INT2": (16, True), "SHORT": (16, True),
    "INTEGER": (32, True), "INT4": (32, True), "INT": (32, True), "SIGNED": (32, True),
    "BIGINT": (64, True), "INT8": (64, True), "LONG": (64, True), "HUGEINT": (128, True), "INT128": (128, True),
    "UTINYINT": (8, False), "USMALLINT": (16, False), "UINTEGER": (32, False), "UBIGINT": (64, False),
    "UHUGEINT": (128, False),
    # PostgreSQL (format_type names)
    "SERIAL": (32, True), "BIGSERIAL": (64, True), "SMALLSERIAL": (16, True),
}
_FLOAT32 = {"REAL", "FLOAT4", "FLOAT"}  # DuckDB FLOAT and PostgreSQL real are single precision
_FLOAT64 = {"DOUBLE", "DOUBLE PRECISION", "FLOAT8", "DOUBLE_PRECISION"}
_TEXT = {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "CHARACTER", "CHARACTER VARYING", "NAME", "CITEXT",
         "NVARCHAR", "NCHAR", "CLOB"}
_FLOAT32_MAX = 3.4028234663852886e38
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")
_SIZE_RE = re.compile(r"^([A-Z_ ]+?)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


@dataclasses.dataclass(frozen=True)
class ValueType:
    """What a column accepts (see the module docstring)."""

    family: Family
    low: int | None = None  # integers: inclusive range
    high: int | None = None
    precision: int | None = None  # decimals; None: unbounded (PostgreSQL numeric)
    scale: int | None = None
    length: int | None = None  # text: most characters
    single: bool = False  # floats: single precision


@dataclasses.dataclass(frozen=True)
class TargetColumn:
    """A column of a table rows are inserted into, as the engine's catalogue describes it."""

    name: str
    type: str  # the engine's own type name
    nullable: bool = True
    #: the engine fills it when a row leaves it out (a default, identity, serial, rowid alias)
    has_default: bool = False
    #: computed by the engine (generated column): a row may not give it
    generated: bool = False
    #: PostgreSQL enum (and other user-defined labels): text the engine checks
    enum: bool = False


@dataclasses.dataclass(frozen=True)
class TargetTable:
    """A table rows can be inserted into (never a view)."""

    schema: str
    name: str
    columns: tuple[TargetColumn, ...]

    def column(self, name: str) -> TargetColumn | None:
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


@dataclasses.dataclass(frozen=True)
class Batch:
    """Rows that name the same columns: one INSERT statement."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class RowsInvalid(Exception):
    """Some rows cannot be inserted; ``problems`` lists the first :data:`MAX_PROBLEMS`."""

    def __init__(self, problems: list[dict[str, Any]], total: int) -> None:
        first = problems[0]
        where = f"row {first['row']}" + (f", column {first['column']!r}" if first.get("column") else "")
        more = f" (and {total - 1} more problem{'s' if total > 2 else ''})" if total > 1 else ""
        super().__init__(f"{where}: {first['message']}{more}; nothing was written")
        self.problems = problems
        self.total = total


class _Bad(ValueError):
    """One value does not fit its column (the message says why)."""


def value_type(type_name: str, dialect: str, *, enum: bool = False) -> ValueType:
    """What a column of engine type ``type_name`` accepts on ``dialect``."""
    raw = (type_name or "").strip()
    upper = re.sub(r"\s+", " ", raw.upper())
    if enum or upper.startswith("ENUM"):
        return ValueType("text")
    if upper.endswith("]") or upper.startswith(("STRUCT", "MAP", "UNION", "LIST", "_")):
        return ValueType("unsupported")
    size = _SIZE_RE.match(upper)
    base = size.group(1).strip() if size else upper
    first, second = (int(size.group(2)), size.group(3)) if size else (None, None)
    if dialect == "sqlite":
        return _sqlite_type(upper, base, first, second)
    if base in _INT_BITS:
        return _int_type(*_INT_BITS[base])
    if base in ("DECIMAL", "NUMERIC"):
        if first is None:  # PostgreSQL numeric: any precision; DuckDB DECIMAL alone is (18,3)
            return ValueType("decimal", precision=18, scale=3) if dialect == "duckdb" else ValueType("decimal")
        return ValueType("decimal", precision=first, scale=int(second or 0))
    if base in _FLOAT32:
        return ValueType("float", single=True)
    if base in _FLOAT64:
        return ValueType("float")
    if base in ("BOOLEAN", "BOOL", "LOGICAL"):
        return ValueType("bool")
    if base in _TEXT or base.startswith(("CHARACTER VARYING", "VARCHAR")):
        return ValueType("text", length=first)
    if base == "DATE":
        return ValueType("date")
    if base in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE") or (base.startswith("TIMESTAMP") and "WITH TIME ZONE" in upper):
        return ValueType("timestamptz")
    if base.startswith(("TIMESTAMP", "DATETIME")):
        return ValueType("timestamp")
    if base in ("TIME", "TIME WITHOUT TIME ZONE") or (base.startswith("TIME") and "WITH TIME ZONE" not in upper and "STAMP" not in base):
        return ValueType("time")
    if base == "UUID":
        return ValueType("uuid")
    if base in ("JSON", "JSONB"):
        return ValueType("json")
    return ValueType("unsupported")


def _int_type(bits: int, signed: bool) -> ValueType:
    if signed:
        return ValueType("integer", low=-(2 ** (bits - 1)), high=2 ** (bits - 1) - 1)
    return ValueType("integer", low=0, high=2**bits - 1)


def _sqlite_type(upper: str, base: str, first: int | None, second: str | None) -> ValueType:
    """SQLite's declared types follow its affinity rules; a few names mean dates or booleans."""
    if not upper:
        return ValueType("any")
    if "INT" in upper:
        return _int_type(64, True)
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return ValueType("text", length=first)
    if "BLOB" in upper:
        return ValueType("unsupported")
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return ValueType("float")
    if base in ("BOOLEAN", "BOOL"):
        return ValueType("bool")
    if base == "DATE":
        return ValueType("date")
    if base.startswith(("DATETIME", "TIMESTAMP")):
        return ValueType("timestamp")
    if base in ("DECIMAL", "NUMERIC") and first is not None:
        return ValueType("decimal", precision=first, scale=int(second or 0))
    return ValueType("float")  # NUMERIC affinity: any number


# -- one value ---------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """A JSON value's type, as a client would name it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _integer(value: Any, vt: ValueType) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"expected an integer, got {_kind(value)}")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise _Bad(f"expected an integer, got {value!r}")
        value = int(value)
    if not vt.low <= value <= vt.high:  # type: ignore[operator]
        raise _Bad(f"{value} is out of range for this column ({vt.low} to {vt.high})")
    return value


def _decimal(value: Any, vt: ValueType) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Bad(f"expected a number or a numeric string, got {_kind(value)}")
    try:
        # repr of a float is the shortest text that reads back the same: 0.1 stays 0.1
        number = decimal.Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except decimal.InvalidOperation:
        raise _Bad(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise _Bad(f"{value!r} is not a finite number")
    if vt.scale is not None:
        with decimal.localcontext() as ctx:
            ctx.prec = max(28, len(number.as_tuple().digits) + 2)
            ctx.rounding = decimal.ROUND_HALF_EVEN
            number = number.quantize(decimal.Decimal(1).scaleb(-vt.scale))
    if vt.precision is not None:
        shape = number.as_tuple()
        whole = max(0, len(shape.digits) + int(shape.exponent))  # digits before the point
        if whole > vt.precision - (vt.scale or 0):
            raise _Bad(
                f"{value} is out of range for DECIMAL({vt.precision},{vt.scale}): at most "
                f"{vt.precision - (vt.scale or 0)} digits before the decimal point"
            )
    return number


def _float(value: Any, vt: ValueType) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _Bad(f"{value} is out of range for this column") from None
    if not math.isfinite(number):
        raise _Bad(f"expected a finite number, got {value!r}")
    if vt.single and abs(number) > _FLOAT32_MAX:
        raise _Bad(f"{value} is out of range for a single-precision column")
    return number


def _bool(value: Any, vt: ValueType) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"expected true or false, got {_kind(value)}")
    return value


def _text(value: Any, vt: ValueType) -> str:
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {_kind(value)}")
    if "\x00" in value:
        raise _Bad("text may not contain NUL characters")
    if vt.length is not None and len(value) > vt.length:
        raise _Bad(f"{len(value)} characters; this column holds at most {vt.length}")
    return value


def _iso(value: Any, pattern: re.Pattern[str], parse: Callable[[str], Any], what: str, example: str) -> Any:
    """A date or time written as ``pattern`` (ISO 8601), parsed by ``parse``."""
    if not isinstance(value, str) or not pattern.match(value):
        got = repr(value) if isinstance(value, str) else _kind(value)
        raise _Bad(f"expected a {what} as \"{example}\", got {got}")
    try:
        return parse(value)
    except ValueError as exc:
        raise _Bad(f"{value!r} is not a valid {what} ({exc})") from None


def _date(value: Any, vt: ValueType) -> dt.date:
    return _iso(value, _DATE_RE, dt.date.fromisoformat, "date", "YYYY-MM-DD")


def _timestamp(value: Any, vt: ValueType) -> dt.datetime:
    if not isinstance(value, str):
        raise _Bad(f"expected an ISO 8601 timestamp such as \"2025-12-31T10:30:00Z\", got {_kind(value)}")
    try:
        if not value[:4].isdigit():
            raise ValueError(value)
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"{value!r} is not an ISO 8601 timestamp (e.g. \"2025-12-31T10:30:00Z\")") from None
    if vt.family == "timestamptz":
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.astimezone(dt.timezone.utc).replace(tzinfo=None) if stamp.tzinfo else stamp


def _time(value: Any, vt: ValueType) -> dt.time:
    return _iso(value, _TIME_RE, dt.time.fromisoformat, "time", "HH:MM:SS")


def _uuid(value: Any, vt: ValueType) -> uuid.UUID:
    if not isinstance(value, str):
        raise _Bad(f"expected a UUID string, got {_kind(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _Bad(f"{value!r} is not a UUID") from None


def _json(value: Any, vt: ValueType) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise _Bad("JSON values may not hold NaN or Infinity") from None


def _any(value: Any, vt: ValueType) -> Any:
    if isinstance(value, (list, dict)):
        raise _Bad(f"expected a scalar, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(f"expected a finite number, got {value!r}")
    if isinstance(value, str) and "\x00" in value:
        raise _Bad("text may not contain NUL characters")
    return value


def _unsupported(value: Any, vt: ValueType) -> Any:
    raise _Bad("the ingest API cannot write this column's type; leave it out or send null")


_CONVERT: dict[str, Callable[[Any, ValueType], Any]] = {
    "integer": _integer, "decimal": _decimal, "float": _float, "bool": _bool, "text": _text, "date": _date,
    "timestamp": _timestamp, "timestamptz": _timestamp, "time": _time, "uuid": _uuid, "json": _json,
    "any": _any, "unsupported": _unsupported,
}


def _for_sqlite(value: Any) -> Any:
    """sqlite3 binds none of Decimal, date, UUID, bool as SQLite stores them by convention."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time, uuid.UUID)):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    return value


def convert_value(value: Any, column: TargetColumn, dialect: str) -> Any:
    """``value`` (from JSON) as the driver of ``dialect`` binds it into ``column``.

    Raises:
        ValueError: the value does not fit; the message says why (never naming the row).
    """
    return _convert(value, column, value_type(column.type, dialect, enum=column.enum), dialect)


def _convert(value: Any, column: TargetColumn, vt: ValueType, dialect: str) -> Any:
    if value is None:
        if not column.nullable:
            raise _Bad("must not be null (the column is NOT NULL)")
        return None
    converted = _CONVERT[vt.family](value, vt)
    return _for_sqlite(converted) if dialect == "sqlite" else converted


# -- whole rows --------------------------------------------------------------------------------


def prepare_rows(table: TargetTable, rows: Sequence[Any], dialect: str, *, max_problems: int = MAX_PROBLEMS) -> list[Batch]:
    """Check every row against ``table`` and convert its values for ``dialect``'s driver.

    Rows are JSON objects naming columns (case-insensitively); a column left out gets the
    engine's default, so rows naming different columns go into different batches (in the
    table's column order, rows in their given order within a batch).

    Raises:
        RowsInvalid: at least one row has a problem (all are listed, up to ``max_problems``).
    """
    problems: list[dict[str, Any]] = []
    total = 0

    def problem(row: int, column: str | None, message: str) -> None:
        nonlocal total
        total += 1
        if len(problems) < max_problems:
            problems.append({"row": row, "column": column, "message": message})

    required = [c for c in table.columns if not c.nullable and not c.has_default and not c.generated]
    order = {c.name: i for i, c in enumerate(table.columns)}
    # what each column accepts, parsed once per call rather than once per value
    lookup = {c.name.lower(): (c, value_type(c.type, dialect, enum=c.enum)) for c in table.columns}
    batches: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            problem(index, None, f"a row must be a JSON object of column values, not {_kind(row)}")
            continue
        if not row:
            problem(index, None, "the row names no column")
            continue
        values: dict[str, Any] = {}
        ok = True
        for key, value in row.items():
            column, vt = lookup.get(key.lower(), (None, None)) if isinstance(key, str) else (None, None)
            if column is None or vt is None:
                problem(index, str(key), f"table {table.name!r} has no column {key!r}")
                ok = False
                continue
            if column.name in values:
                problem(index, str(key), f"column {column.name!r} is given twice (names are case-insensitive)")
                ok = False
                continue
            if column.generated:
                problem(index, column.name, "the database computes this column; leave it out")
                ok = False
                continue
            try:
                values[column.name] = _convert(value, column, vt, dialect)
            except ValueError as exc:
                problem(index, column.name, str(exc))
                ok = False
        given = {k.lower() for k in row if isinstance(k, str)}
        for column in required:
            if column.name.lower() not in given:
                problem(index, column.name, "missing: the column is NOT NULL and has no default")
                ok = False
        if ok:
            names = tuple(sorted(values, key=order.__getitem__))
            batches.setdefault(names, []).append(tuple(values[n] for n in names))
    if total:
        raise RowsInvalid(problems, total)
    return [Batch(columns, batch_rows) for columns, batch_rows in batches.items()]
