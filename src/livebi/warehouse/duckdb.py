"""DuckDB connector: the default warehouse (the generated demo is a DuckDB file).

Guarantees:

- The database is opened read-only by default, with external access (files, URLs, other
  databases) disabled, so even SQL that slipped past validation cannot write or read files.
  DuckDB shares one database instance per file within a process, so other in-process
  connections to the same file lose external access too.
- Every query gets a cursor of its own (a separate DuckDB connection to the same database), so
  concurrent queries run in parallel in the connector's thread pool and never block the loop.
- While a query runs, DuckDB's own progress estimate (``query_progress()``, 0-100) is reported,
  then the number of rows fetched; cancelling the awaiting task or hitting the timeout calls
  ``interrupt()`` on the query's cursor.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Sequence

import duckdb

from livebi.warehouse.base import (
    Column,
    ForeignKey,
    ProgressCallback,
    QueryResult,
    Schema,
    Table,
    WarehouseError,
    exposed_schemas,
)
from livebi.warehouse.runner import QueryInterrupted, QueryJob, ThreadedWarehouse, run_blocking
from livebi.warehouse.types import digest_rows, kind_of, to_json_row

MEMORY = ":memory:"


def duckdb_path_from_url(url: str) -> str:
    """The database path in a ``duckdb:`` URL, or ``":memory:"``.

    ``duckdb:///abs/path.duckdb`` and ``duckdb:////abs/path.duckdb`` both name an absolute path;
    ``duckdb:///:memory:`` (or ``duckdb://``) an in-memory database. A path that does not exist
    as an absolute path but exists relative to the working directory (``duckdb:///sales.duckdb``
    next to the server) is taken as relative.
    """
    if not url.startswith("duckdb:"):
        raise ValueError(f"not a duckdb URL: {url!r}")
    rest = url[len("duckdb:"):]
    rest = rest[2:] if rest.startswith("//") else rest
    rest = rest.split("?", 1)[0]
    if rest in ("", "/", MEMORY, "/" + MEMORY):
        return MEMORY
    if rest.startswith("//"):
        return rest[1:]
    absolute = rest if rest.startswith("/") else "/" + rest
    relative = rest.lstrip("/")
    if not Path(absolute).exists() and Path(relative).exists():
        return str(Path(relative).resolve())
    return absolute


# The database's own catalog and the exposed schemas (bound as $schemas): never system, temp
# or other catalogs.
_SCOPE = "database_name = current_database() AND list_contains($schemas, schema_name)"


class DuckDBWarehouse(ThreadedWarehouse):
    """A DuckDB database file (or an in-memory database, for tests)."""

    dialect = "duckdb"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        read_only: bool = True,
        schemas: Sequence[str] | None = None,
        # Limits
        max_concurrent_queries: int = 8,
        fetch_chunk: int = 2048,
        # Progress
        progress_interval: float = 0.25,
    ) -> None:
        super().__init__(name, url, max_workers=max_concurrent_queries, thread_prefix=f"livebi-duckdb-{name}")
        self.path = duckdb_path_from_url(url)
        #: exposed schemas, in the order unqualified names resolve
        self.schemas = exposed_schemas(self.dialect, schemas)
        # DuckDB cannot open an in-memory database read-only (it would always be empty).
        self.read_only = read_only and self.path != MEMORY
        self._fetch_chunk = fetch_chunk
        self._progress_interval = progress_interval
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_lock = threading.Lock()

    # -- connection

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The shared parent connection (opened on first use; call from a worker thread).

        Queries use ``connection().cursor()``; other components in the same process that need
        this database (change detection, ingestion) must use it too: DuckDB refuses a second
        connection to the same file with a different configuration.
        """
        with self._con_lock:
            if self._con is None:
                try:
                    con = duckdb.connect(self.path, read_only=self.read_only)
                    if self.read_only:
                        # Defense in depth behind SQL validation: no file, URL or ATTACH access.
                        # Set at run time rather than as connect() config: DuckDB refuses a
                        # second in-process connection to the file with a different config.
                        con.execute("SET enable_external_access = false")
                except duckdb.Error as exc:
                    raise WarehouseError("warehouse_unavailable", f"cannot open {self.name}: {exc}") from None
                self._con = con
            return self._con

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # cursor() on the shared parent is not documented as thread-safe: serialise it.
        con = self.connection()
        with self._con_lock:
            return con.cursor()

    # -- schema

    def _fingerprint(self) -> str:
        cur = self._cursor()
        try:
            rows = cur.execute(
                "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
                f"WHERE NOT internal AND {_SCOPE} ORDER BY schema_name, table_name, column_index",
                {"schemas": list(self.schemas)},
            ).fetchall()
        except duckdb.Error as exc:
            raise WarehouseError("query_failed", f"cannot read the schema of {self.name}: {exc}") from None
        finally:
            cur.close()
        return digest_rows(rows)

    def _load_schema(self) -> Schema:
        cur = self._cursor()
        scope = {"schemas": list(self.schemas)}
        try:
            catalog = cur.execute("SELECT current_database()").fetchone()[0]
            tables = cur.execute(
                f"""
                SELECT schema_name, table_name, estimated_size FROM duckdb_tables() WHERE NOT internal AND {_SCOPE}
                UNION ALL
                SELECT schema_name, view_name, NULL FROM duckdb_views()
                WHERE NOT internal AND NOT temporary AND {_SCOPE}
                ORDER BY 1, 2
                """,
                scope,
            ).fetchall()
            columns: dict[tuple[str, str], list[Column]] = {}
            for schema, table, column, data_type in cur.execute(
                f"""
                SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns()
                WHERE NOT internal AND {_SCOPE} ORDER BY schema_name, table_name, column_index
                """,
                scope,
            ).fetchall():
                columns.setdefault((schema, table), []).append(Column(column, data_type, kind_of(data_type)))
            primary: dict[tuple[str, str], tuple[str, ...]] = {}
            foreign: dict[tuple[str, str], list[ForeignKey]] = {}
            for schema, table, kind, cols, ref_table, ref_cols in cur.execute(
                f"""
                SELECT schema_name, table_name, constraint_type, constraint_column_names,
                       referenced_table, referenced_column_names
                FROM duckdb_constraints()
                WHERE constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') AND {_SCOPE}
                ORDER BY schema_name, table_name, constraint_index
                """,
                scope,
            ).fetchall():
                if kind == "PRIMARY KEY":
                    primary[(schema, table)] = tuple(cols)
                else:
                    foreign.setdefault((schema, table), []).append(ForeignKey(tuple(cols), ref_table, tuple(ref_cols)))
        except duckdb.Error as exc:
            raise WarehouseError("query_failed", f"cannot read the schema of {self.name}: {exc}") from None
        finally:
            cur.close()
        return Schema.of(
            [
                Table(
                    name=name,
                    columns=tuple(columns.get((schema, name), ())),
                    primary_key=primary.get((schema, name), ()),
                    foreign_keys=tuple(foreign.get((schema, name), ())),
                    row_count=int(size) if size is not None else None,
                    schema=schema,
                )
                for schema, name, size in tables
            ],
            schemas=self.schemas,
            catalog=catalog,
        )

    # -- queries

    async def execute(
        self,
        sql: str,
        *,
        timeout: float,
        row_cap: int,
        on_progress: ProgressCallback | None = None,
    ) -> QueryResult:
        started = time.perf_counter()

        def work(job: QueryJob) -> QueryResult:
            cur = self._cursor()
            try:
                # Progress tracking is per connection; printing is off (we are a server).
                cur.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
                job.attach(cur.interrupt, lambda: _progress_percent(cur))
                cur.execute(sql)
                description = cur.description or []
                job.stage = "fetching"
                rows: list[list[Any]] = []
                # Fetch at most row_cap + 1 rows: the extra one tells us the cap cut the result.
                while len(rows) <= row_cap:
                    job.check()
                    chunk = cur.fetchmany(min(self._fetch_chunk, row_cap + 1 - len(rows)))
                    if not chunk:
                        break
                    rows.extend(to_json_row(r) for r in chunk)
                    job.rows_processed = len(rows)
            except duckdb.Error as exc:
                if job.interrupted:
                    raise QueryInterrupted() from None
                raise WarehouseError("query_failed", _clean_error(exc)) from None
            finally:
                job.detach()
                cur.close()
            truncated = len(rows) > row_cap
            return QueryResult(
                columns=[d[0] for d in description],
                column_kinds=[kind_of(str(d[1])) for d in description],
                rows=rows[:row_cap],
                row_count=min(len(rows), row_cap),
                truncated=truncated,
                elapsed_ms=(time.perf_counter() - started) * 1000,
            )

        return await run_blocking(
            self._executor, work, timeout=timeout, on_progress=on_progress, interval=self._progress_interval
        )

    async def close(self) -> None:
        await super().close()
        with self._con_lock:
            if self._con is not None:
                self._con.close()
                self._con = None


def _progress_percent(cur: duckdb.DuckDBPyConnection) -> float | None:
    value = cur.query_progress()
    return value if value >= 0 else None  # -1: no query running or no estimate yet


def _clean_error(exc: Exception) -> str:
    # DuckDB errors carry a caret diagram of the SQL after a blank line; the first part says it.
    return str(exc).split("\n\n", 1)[0].strip()
