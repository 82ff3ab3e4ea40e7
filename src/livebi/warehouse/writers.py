"""Writers: how rows get into a warehouse table, per engine, in one transaction.

Queries never write (connectors run validated SELECTs, and refuse anything else in the engine
itself). Ingest is the one way in, and each engine gets it differently so the query side keeps
its guarantees:

- **DuckDB** allows one configuration per database file in a process, so the warehouse itself
  is opened read-write (:func:`opens_read_write`) and the writer uses cursors of its shared
  connection (``DuckDBWarehouse.connection()``), in the warehouse's worker threads. The lock-down
  (external access off, limits, locked configuration) applies all the same, and queries still
  run only single SELECT statements.
- **SQLite**: the warehouse stays read-only (``mode=ro``, ``query_only``, the authorizer); the
  writer opens a separate writable connection, used by nothing else, with foreign keys enforced.
- **PostgreSQL**: the warehouse's role stays read-only; the writer connects with its own URL
  (the ``ingest_urls`` setting), whose role needs INSERT on the tables it feeds.

Table and column names always come from the engine's catalogue (the caller resolves the table
by name against the warehouse schema first) and are quoted; values are bound as parameters.
Writes to one DuckDB or SQLite warehouse run one at a time (both engines have a single writer).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import sqlite3
import threading
import urllib.parse
from typing import Any, Sequence

from livebi.warehouse.base import Table, Warehouse, WarehouseError
from livebi.warehouse.row_values import Batch, TargetColumn, TargetTable
from livebi.warehouse.types import quote_identifier

logger = logging.getLogger(__name__)


def opens_read_write(url: str) -> bool:
    """Whether a warehouse at ``url`` must itself be opened read-write for ingest (DuckDB: one
    configuration per file per process); the other engines write through a connection of their own."""
    return url.split(":", 1)[0].lower() == "duckdb"


def _qualified(target: TargetTable) -> str:
    return f"{quote_identifier(target.schema)}.{quote_identifier(target.name)}"


def _not_a_table(warehouse: str, table: str) -> WarehouseError:
    return WarehouseError("not_a_table", f"{table!r} in warehouse {warehouse!r} is a view, not a table: rows go into tables")


class TableWriter(abc.ABC):
    """Inserts validated rows into one warehouse's tables."""

    dialect: str = ""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def schema_of(self, table: Table) -> str:
        """The schema ``table`` lives in ("" means the warehouse's first exposed one)."""
        return table.schema or getattr(self.warehouse, "schemas", ("main",))[0]

    @abc.abstractmethod
    async def describe(self, table: Table) -> TargetTable:
        """The table's columns with nullability and defaults, from the engine's catalogue.

        Raises:
            WarehouseError: ``not_a_table`` (a view), ``unknown_table`` (gone since the schema
                was read), ``warehouse_unavailable``.
        """

    @abc.abstractmethod
    async def insert(self, target: TargetTable, batches: Sequence[Batch]) -> int:
        """Insert every batch in one transaction; returns the rows inserted.

        Raises:
            WarehouseError: ``rows_rejected`` (a constraint or a value the engine refused;
                nothing was written), ``ingest_disabled`` (the writer may not insert),
                ``warehouse_unavailable``.
        """

    async def close(self) -> None:
        return None


# -- DuckDB --------------------------------------------------------------------------------------


class DuckDBWriter(TableWriter):
    """Writes through the warehouse's own (read-write) connection, in its worker threads."""

    dialect = "duckdb"

    def __init__(self, warehouse: Warehouse) -> None:
        super().__init__(warehouse)
        if getattr(warehouse, "read_only", True):
            raise ValueError(f"DuckDB warehouse {warehouse.name!r} is open read-only: open it read-write for ingest")
        self._lock = threading.Lock()
        self._serial = asyncio.Lock()  # waiting writes hold no worker thread

    async def describe(self, table: Table) -> TargetTable:
        schema = self.schema_of(table)
        return await self.warehouse._run(self._describe, schema, table.name)  # type: ignore[attr-defined]

    def _describe(self, schema: str, name: str) -> TargetTable:
        import duckdb

        cur = self.warehouse._cursor()  # type: ignore[attr-defined]
        scope = {"schema": schema, "table": name}
        try:
            found = cur.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = $schema AND table_name = $table AND NOT temporary",
                scope,
            ).fetchone()[0]
            rows = cur.execute(
                "SELECT column_name, data_type, is_nullable, column_default IS NOT NULL FROM duckdb_columns() "
                "WHERE database_name = current_database() AND schema_name = $schema AND table_name = $table "
                "ORDER BY column_index",
                scope,
            ).fetchall()
        except duckdb.Error as exc:
            raise WarehouseError("warehouse_unavailable", f"cannot read table {name!r}: {exc}") from None
        finally:
            cur.close()
        if not rows:
            raise WarehouseError("unknown_table", f"no table named {name!r} in warehouse {self.warehouse.name!r}")
        if not found:
            raise _not_a_table(self.warehouse.name, name)
        return TargetTable(schema, name, tuple(
            TargetColumn(column, data_type, nullable=bool(nullable), has_default=bool(default))
            for column, data_type, nullable, default in rows
        ))

    async def insert(self, target: TargetTable, batches: Sequence[Batch]) -> int:
        async with self._serial:
            return await self.warehouse._run(self._insert, target, batches)  # type: ignore[attr-defined]

    def _insert(self, target: TargetTable, batches: Sequence[Batch]) -> int:
        import duckdb

        with self._lock:
            cur = self.warehouse._cursor()  # type: ignore[attr-defined]
            try:
                cur.execute("BEGIN TRANSACTION")
                try:
                    for batch in batches:
                        # One statement per batch: a parameter per column holding all its values,
                        # unnested side by side (executemany costs ~0.5 ms per row in DuckDB).
                        names = ", ".join(quote_identifier(c) for c in batch.columns)
                        values = ", ".join(f"unnest(${i + 1})" for i in range(len(batch.columns)))
                        cur.execute(f"INSERT INTO {_qualified(target)} ({names}) SELECT {values}",
                                    [list(column) for column in zip(*batch.rows, strict=True)])
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
            except (duckdb.IntegrityError, duckdb.DataError, duckdb.InvalidInputException) as exc:
                raise WarehouseError("rows_rejected", f"the database refused the rows: {_first_line(exc)}") from None
            except duckdb.TransactionException as exc:
                raise WarehouseError("rows_rejected", f"the rows conflict with another write: {_first_line(exc)}") from None
            except duckdb.Error as exc:
                raise WarehouseError("warehouse_unavailable", f"could not insert into {target.name!r}: {_first_line(exc)}") from None
            finally:
                cur.close()
        return sum(len(b.rows) for b in batches)


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n\n", 1)[0].strip()


# -- SQLite --------------------------------------------------------------------------------------


class SQLiteWriter(TableWriter):
    """Writes through a separate writable connection (the warehouse's own stay read-only)."""

    dialect = "sqlite"

    def __init__(self, warehouse: Warehouse, *, busy_timeout_s: float = 5.0) -> None:
        super().__init__(warehouse)
        path = warehouse.path  # type: ignore[attr-defined]
        # The shared-cache memory database of tests is reached through its own URI.
        self._uri = warehouse._uri if path == ":memory:" else f"file:{urllib.parse.quote(path)}?mode=rw"  # type: ignore[attr-defined]
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._serial = asyncio.Lock()  # waiting writes hold no worker thread

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False, timeout=self._busy_timeout_s,
                                       isolation_level=None)  # transactions are explicit
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise WarehouseError("warehouse_unavailable", f"cannot open {self.warehouse.name} for writing: {exc}") from None
            self._conn = conn
        return self._conn

    async def describe(self, table: Table) -> TargetTable:
        return await self.warehouse._run(self._describe, table.name)  # type: ignore[attr-defined]

    def _describe(self, name: str) -> TargetTable:
        with self._lock:
            conn = self._connection()
            try:
                kind = conn.execute("SELECT type FROM sqlite_master WHERE name = ? AND type IN ('table', 'view')",
                                    (name,)).fetchone()
                info = conn.execute(f"PRAGMA table_xinfo({quote_identifier(name)})").fetchall() if kind else []
            except sqlite3.Error as exc:
                raise WarehouseError("warehouse_unavailable", f"cannot read table {name!r}: {exc}") from None
        if kind is None:
            raise WarehouseError("unknown_table", f"no table named {name!r} in warehouse {self.warehouse.name!r}")
        if kind[0] != "table":
            raise _not_a_table(self.warehouse.name, name)
        keys = [row for row in info if row[5]]
        columns = []
        for _cid, column, declared, notnull, default, pk, hidden in info:
            # INTEGER PRIMARY KEY is the rowid: SQLite numbers rows that leave it out.
            rowid = pk and len(keys) == 1 and (declared or "").strip().upper() == "INTEGER"
            columns.append(TargetColumn(column, declared or "", nullable=not notnull and not rowid,
                                        has_default=default is not None or bool(rowid), generated=hidden in (2, 3)))
        return TargetTable("main", name, tuple(c for c, row in zip(columns, info, strict=True) if row[6] != 1))

    async def insert(self, target: TargetTable, batches: Sequence[Batch]) -> int:
        async with self._serial:
            return await self.warehouse._run(self._insert, target, batches)  # type: ignore[attr-defined]

    def _insert(self, target: TargetTable, batches: Sequence[Batch]) -> int:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for batch in batches:
                        names = ", ".join(quote_identifier(c) for c in batch.columns)
                        marks = ", ".join("?" for _ in batch.columns)
                        conn.executemany(f"INSERT INTO {quote_identifier(target.name)} ({names}) VALUES ({marks})", batch.rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as exc:
                raise WarehouseError("rows_rejected", f"the database refused the rows: {exc}") from None
            except sqlite3.OperationalError as exc:
                if "readonly" in str(exc) or "read-only" in str(exc):
                    raise WarehouseError("ingest_disabled", f"{self.warehouse.name} cannot be written: {exc}") from None
                raise WarehouseError("warehouse_unavailable", f"could not insert into {target.name!r}: {exc}") from None
            except sqlite3.Error as exc:
                raise WarehouseError("warehouse_unavailable", f"could not insert into {target.name!r}: {exc}") from None
        return sum(len(b.rows) for b in batches)

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)


# -- PostgreSQL ----------------------------------------------------------------------------------

_PG_COLUMNS = """
SELECT c.relkind::text AS relkind, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull, a.atthasdef OR a.attidentity <> '' AS has_default,
       a.attgenerated <> '' OR a.attidentity = 'a' AS generated,  -- GENERATED ALWAYS takes no value
       t.typtype = 'e' AS enum
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = $1 AND c.relname = $2
ORDER BY a.attnum
"""


class PostgresWriter(TableWriter):
    """Writes through its own small asyncpg pool, connected with the writer URL."""

    dialect = "postgres"

    def __init__(self, warehouse: Warehouse, url: str, *, pool_size: int = 2, statement_timeout_s: float = 30.0) -> None:
        from livebi.warehouse.postgres import normalize_postgres_url

        super().__init__(warehouse)
        self._dsn = normalize_postgres_url(url)
        self._pool_size = pool_size
        self._timeout_ms = max(1, int(statement_timeout_s * 1000))
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()

    async def _get_pool(self) -> Any:
        import asyncpg

        from livebi.warehouse.postgres import search_path_setting

        async with self._pool_lock:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=0, max_size=self._pool_size, timeout=10.0,
                        server_settings={"search_path": search_path_setting(getattr(self.warehouse, "schemas", ("public",)))},
                    )
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise WarehouseError("warehouse_unavailable",
                                         f"cannot connect to {self.warehouse.name} for writing: {exc}") from None
            return self._pool

    async def describe(self, table: Table) -> TargetTable:
        import asyncpg

        schema = self.schema_of(table)
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(_PG_COLUMNS, schema, table.name)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise WarehouseError("warehouse_unavailable", f"cannot read table {table.name!r}: {exc}") from None
        if not rows:
            raise WarehouseError("unknown_table", f"no table named {table.name!r} in warehouse {self.warehouse.name!r}")
        if rows[0]["relkind"] not in ("r", "p"):
            raise _not_a_table(self.warehouse.name, table.name)
        return TargetTable(schema, table.name, tuple(
            TargetColumn(r["attname"], r["type"], nullable=not r["attnotnull"], has_default=r["has_default"],
                         generated=r["generated"], enum=r["enum"])
            for r in rows
        ))

    async def insert(self, target: TargetTable, batches: Sequence[Batch]) -> int:
        import asyncpg

        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"SET LOCAL statement_timeout = {self._timeout_ms}")
                for batch in batches:
                    names = ", ".join(quote_identifier(c) for c in batch.columns)
                    marks = ", ".join(f"${i + 1}" for i in range(len(batch.columns)))
                    await conn.executemany(f"INSERT INTO {_qualified(target)} ({names}) VALUES ({marks})", batch.rows)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise WarehouseError("ingest_disabled", f"the ingest role may not insert into {target.name!r}: {exc}") from None
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise WarehouseError("warehouse_unavailable", f"could not insert into {target.name!r}: {exc}") from None
        except asyncpg.PostgresError as exc:  # a constraint, a value, the table changed meanwhile
            raise WarehouseError("rows_rejected", f"the database refused the rows: {exc}") from None
        return sum(len(b.rows) for b in batches)

    async def close(self) -> None:
        from livebi.warehouse.postgres import close_pool

        async with self._pool_lock:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                await close_pool(pool)


def writer_for(warehouse: Warehouse, *, url: str | None = None, statement_timeout_s: float = 30.0) -> TableWriter:
    """The writer for ``warehouse``.

    Args:
        url: PostgreSQL: the writer URL (``ingest_urls``); required there, unused elsewhere.

    Raises:
        WarehouseError: ``ingest_disabled`` with the reason (a read-only DuckDB warehouse, a
            PostgreSQL warehouse without a writer URL, an engine ingest does not support).
    """
    dialect = warehouse.dialect
    if dialect == "duckdb":
        if getattr(warehouse, "read_only", True):
            raise WarehouseError("ingest_disabled", f"DuckDB warehouse {warehouse.name!r} was opened read-only "
                                 "(list it in ingest_access so the server opens it read-write)")
        return DuckDBWriter(warehouse)
    if dialect == "sqlite":
        return SQLiteWriter(warehouse)
    if dialect == "postgres":
        if not url:
            raise WarehouseError("ingest_disabled", f"PostgreSQL warehouse {warehouse.name!r} has no writer URL: "
                                 "set ingest_urls (its query role stays read-only)")
        return PostgresWriter(warehouse, url, statement_timeout_s=statement_timeout_s)
    raise WarehouseError("ingest_disabled", f"warehouse {warehouse.name!r} ({dialect}) does not take rows")
