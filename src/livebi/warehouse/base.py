"""The warehouse interface: what every connector offers the data agent.

A connector owns one database. It introspects the schema, runs *validated* read-only SQL off
the event loop, reports progress while the engine works, honours a timeout and a row cap, and
interrupts the engine when the awaiting task is cancelled.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from typing import Any, Callable, Literal, Sequence

ColumnKind = Literal["number", "text", "date", "bool", "other"]

#: Schemas (namespaces) a warehouse exposes when its configuration names none.
DEFAULT_SCHEMAS: dict[str, tuple[str, ...]] = {"duckdb": ("main",), "sqlite": ("main",), "postgres": ("public",)}
#: Engine catalogues: never exposed, whatever the configuration says.
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "pg_temp", "temp", "system"})


def exposed_schemas(dialect: str, schemas: "Sequence[str] | None") -> tuple[str, ...]:
    """The schemas a warehouse exposes, in resolution order: ``schemas`` or the dialect's
    default, without duplicates.

    Raises:
        ValueError: a system schema (``pg_catalog``, ``information_schema``...) was named, or
            the list is empty.
    """
    chosen = tuple(dict.fromkeys(schemas)) if schemas else DEFAULT_SCHEMAS[dialect]
    if not chosen:
        raise ValueError("a warehouse must expose at least one schema")
    for name in chosen:
        if name.lower() in SYSTEM_SCHEMAS or name.lower().startswith(("pg_temp", "pg_toast")):
            raise ValueError(f"schema {name!r} is an engine catalogue and cannot be exposed")
    return chosen
#: Defaults of the result bounds every ``execute()`` enforces while fetching (settings
#: ``max_result_bytes`` and ``max_value_chars`` override them in a server).
DEFAULT_MAX_RESULT_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_VALUE_CHARS = 10_000


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str  # the engine's own type name, e.g. "DECIMAL(12,2)"
    kind: ColumnKind  # what the NLP and viz agents care about


@dataclasses.dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    declared: bool = True  # False when inferred from naming (``customer_id`` -> customers)


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    row_count: int | None = None
    #: the namespace the table lives in; "" means the warehouse's first exposed schema
    schema: str = ""

    def column(self, name: str) -> Column | None:
        lowered = name.lower()
        for col in self.columns:
            if col.name.lower() == lowered:
                return col
        return None


@dataclasses.dataclass(frozen=True)
class Schema:
    """What a warehouse exposes to queries.

    ``tables`` holds the tables an unqualified name reaches (the first of each name along
    ``schemas``), which is all the NLP agent sees. A same-named table in a later exposed schema
    is in ``shadowed``: reachable only by a qualified name (``other.sales``).
    """

    tables: tuple[Table, ...]
    #: the database's own name (DuckDB catalog, PostgreSQL database); "" when unknown, and
    #: then a catalog-qualified name is refused
    catalog: str = ""
    #: the exposed schemas in resolution order; () means the dialect's default (DEFAULT_SCHEMAS)
    schemas: tuple[str, ...] = ()
    shadowed: tuple[Table, ...] = ()

    @classmethod
    def of(cls, tables: "Sequence[Table]", *, schemas: Sequence[str], catalog: str = "") -> "Schema":
        """A schema from every table of the exposed ``schemas``, ordered the way names resolve
        (schema order, then name) and split into reachable and shadowed tables."""
        order = {name: i for i, name in enumerate(schemas)}
        ranked = sorted(tables, key=lambda t: (order.get(t.schema, len(order)), t.name))
        visible: list[Table] = []
        shadowed: list[Table] = []
        seen: set[str] = set()
        for table in ranked:
            key = table.name.lower()
            (shadowed if key in seen else visible).append(table)
            seen.add(key)
        return cls(tuple(visible), catalog=catalog, schemas=tuple(schemas), shadowed=tuple(shadowed))

    def table(self, name: str) -> Table | None:
        lowered = name.lower()
        for table in self.tables:
            if table.name.lower() == lowered:
                return table
        return None

    def as_sqlglot_mapping(self) -> dict[str, dict[str, str]]:
        """``{table: {column: type}}`` as ``sqlglot.optimizer.qualify`` expects."""
        return {t.name: {c.name: c.type for c in t.columns} for t in self.tables}


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report from the engine while a query runs."""

    percent: float | None  # 0-100 when the engine knows it, else None
    rows_processed: int  # rows fetched so far (0 while the engine has produced none)
    detail: str = ""


@dataclasses.dataclass
class QueryResult:
    columns: list[str]
    column_kinds: list[ColumnKind]
    rows: list[list[Any]]  # JSON-friendly values (dates as ISO strings, decimals as floats)
    row_count: int
    truncated: bool  # True when rows were left out (row cap, byte budget) or a value was cut
    elapsed_ms: float


ProgressCallback = Callable[[Progress], None]


class WarehouseError(Exception):
    """Raised for engine failures; ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ResourcesExceeded(WarehouseError):
    """The query needed more memory, or built a larger value, than the engine or this process
    may use (DuckDB's out-of-memory error under the server's address-space limit, SQLite's
    ``MemoryError`` or value-length limit, PostgreSQL's 53200/54000). Only that query fails."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "resources_exceeded",
            f"the query needs more memory than this server allows ({detail}); ask for less: filter, "
            "aggregate, or shorter values",
        )


class QueryTimeout(WarehouseError):
    def __init__(self, seconds: float) -> None:
        super().__init__("query_timeout", f"the query ran longer than {seconds:g} s and was stopped")


class Warehouse(abc.ABC):
    """A database the data agent can query. Instances are shared across requests."""

    #: sqlglot dialect name used to generate and validate SQL for this engine
    dialect: str = ""
    #: queries the connector can run at once (worker threads, pooled connections); None:
    #: unbounded. Admission never lets more through, so an admitted query starts at once.
    max_concurrent_queries: int | None = None

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self._schema: Schema | None = None
        self._schema_lock = asyncio.Lock()

    async def schema(self, *, refresh: bool = False) -> Schema:
        """Tables, columns, keys; read once and cached until ``refresh``."""
        async with self._schema_lock:
            if self._schema is None or refresh:
                self._schema = await self._read_schema()
            return self._schema

    @abc.abstractmethod
    async def _read_schema(self) -> Schema:
        """Introspect the database (called by :meth:`schema` when the cache is empty)."""

    @abc.abstractmethod
    async def execute(
        self,
        sql: str,
        *,
        timeout: float,
        row_cap: int,
        max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
        on_progress: ProgressCallback | None = None,
    ) -> QueryResult:
        """Run one already-validated SELECT.

        The result is bounded *while* it is fetched (:mod:`livebi.warehouse.bounded`): at most
        ``row_cap`` rows and ``max_bytes`` of estimated JSON, text cut to ``max_value_chars``,
        long binaries summarised; the fetch stops as soon as a bound is reached and the result
        says ``truncated``. Connectors also refuse, in the engine itself, anything but reading
        (defence in depth behind :func:`validate_select`).

        Reports progress through ``on_progress`` (called on the event loop) at least twice a
        second while the engine works. Cancelling the awaiting task interrupts the engine.

        Raises:
            QueryTimeout: the query ran past ``timeout`` seconds (the engine is interrupted).
            WarehouseError: the engine rejected or failed the query.
        """

    async def distinct_values(self, table: str, column: str, limit: int) -> list[str]:
        """Up to ``limit`` distinct non-null text values (most frequent first), for the NLP
        value index; runs through :meth:`execute` like any other query."""
        from .types import distinct_values_sql  # types builds on this module

        sql = distinct_values_sql(await self.schema(), table, column, limit)
        result = await self.execute(sql, timeout=30.0, row_cap=limit)
        return [str(row[0]) for row in result.rows]

    async def schema_fingerprint(self) -> str:
        """A digest of the table and column lists that changes when the schema does.

        Meant to be cheap enough to call every few seconds: connectors override it with one
        catalogue query. This default re-reads the whole schema (and refreshes the cache).
        """
        from livebi.warehouse.types import digest_rows

        schema = await self.schema(refresh=True)
        return digest_rows([(t.name, c.name, c.type) for t in schema.tables for c in t.columns])

    async def check_access(self) -> None:
        """Refuse to serve with more power than reading needs (called at server start).

        Raises:
            WarehouseError: the connection could write or administer the database and the
                deployment did not explicitly allow that (see docs/deployment.md).
        """
        return None

    async def close(self) -> None:  # pragma: no cover - trivial default
        return None

    def public_info(self) -> dict[str, Any]:
        """What clients may see about this warehouse (never the URL: it may hold credentials)."""
        return {"name": self.name, "dialect": self.dialect}
