"""DuckDB connector: the default warehouse (the generated demo is a DuckDB file).

Guarantees:

- The database is opened read-only by default, with external access (files, URLs, other
  databases) disabled, so even SQL that slipped past validation cannot write or read files. A
  warehouse that takes rows through the ingest API is opened read-write (DuckDB allows one
  configuration per file in a process, so the writer of :mod:`livebi.warehouse.writers` uses
  this connection); external access stays disabled and the lock-down below applies unchanged,
  and queries still run only as single SELECT statements.
- The engine is locked down when it opens, before any query runs: a memory limit, a thread
  count, a bounded (or disabled) temporary directory, no extension installing or autoloading,
  then ``lock_configuration``, so no later statement (``SET``, ``RESET``, ``PRAGMA``) can change
  any setting. DuckDB shares one database instance per file within a process: other in-process
  connections to the same file get the same limits, and when another component locked the
  instance first, its settings stay (a warning says so).
- Only a single SELECT statement runs (checked by DuckDB's own parser, behind validation).
- Long values are cut inside the engine and the result is bounded while it is fetched
  (:mod:`livebi.warehouse.bounded`).
- Every query gets a cursor of its own (a separate DuckDB connection to the same database), so
  concurrent queries run in parallel in the connector's thread pool and never block the loop.
  Cursors are created, with progress tracking on, before the configuration is locked (progress
  settings are per connection and cannot be set afterwards), and reused.
- While a query runs, DuckDB's own progress estimate (``query_progress()``, 0-100) is reported,
  then the number of rows fetched; cancelling the awaiting task or hitting the timeout calls
  ``interrupt()`` on the query's cursor.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Sequence

import duckdb

from livebi.warehouse.base import (
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_VALUE_CHARS,
    Column,
    ForeignKey,
    ProgressCallback,
    QueryResult,
    ResourcesExceeded,
    Schema,
    Table,
    WarehouseError,
    exposed_schemas,
)
from livebi.warehouse.bounded import ResultBudget, ResultLimits, bounded_select, duckdb_shape
from livebi.warehouse.runner import QueryInterrupted, QueryJob, ThreadedWarehouse, fetch_bounded
from livebi.warehouse.types import digest_rows, kind_of, sql_literal

MEMORY = ":memory:"
logger = logging.getLogger(__name__)
#: Share of the machine's memory DuckDB may use when no limit is configured. DuckDB's own
#: default (80 %) leaves too little for the server, its other engines and the OS; a quarter
#: still lets a large aggregation run, and spilling covers the rest.
DEFAULT_MEMORY_SHARE = 0.25
MIN_MEMORY_LIMIT = 256 * 1024 * 1024


def default_memory_limit(at_most_mb: int = 0) -> str:
    """A quarter of the physical memory (at least 256 MiB, at most ``at_most_mb`` when > 0), as
    a DuckDB size string."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: a fixed, modest limit
        total = 8 * 1024**3
    share = int(total * DEFAULT_MEMORY_SHARE)
    if at_most_mb > 0:
        share = min(share, at_most_mb * 1024**2)
    return f"{max(MIN_MEMORY_LIMIT, share) // 1024**2}MiB"


def default_threads() -> int:
    """The CPUs this process may run on (DuckDB's own default counts every CPU)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1



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
        memory_limit: str = "",
        memory_limit_at_most_mb: int = 0,
        threads: int = 0,
        temp_directory: str | Path | None = None,
        max_temp_directory_size: str = "4GB",
        # Progress
        progress_interval: float = 0.25,
    ) -> None:
        """
        Args:
            memory_limit: DuckDB ``memory_limit`` (e.g. ``"2GB"``); empty: a quarter of RAM, at
                most ``memory_limit_at_most_mb`` (when > 0: the server's address-space headroom
                leaves room for it, so DuckDB spills before the process hits that limit).
            threads: DuckDB ``threads``; 0: the CPUs this process may use.
            temp_directory: where DuckDB may spill (a subdirectory per warehouse and process is
                created in it); None: no spilling, a query that does not fit in
                ``memory_limit`` fails.
            max_temp_directory_size: most bytes DuckDB may spill there.
        """
        super().__init__(name, url, max_workers=max_concurrent_queries, thread_prefix=f"livebi-duckdb-{name}")
        self.path = duckdb_path_from_url(url)
        #: exposed schemas, in the order unqualified names resolve
        self.schemas = exposed_schemas(self.dialect, schemas)
        # DuckDB cannot open an in-memory database read-only (it would always be empty).
        self.read_only = read_only and self.path != MEMORY
        self.memory_limit = memory_limit or default_memory_limit(memory_limit_at_most_mb)
        self.threads = threads or default_threads()
        # One directory per warehouse and process: DuckDB instances must not share one.
        self.temp_directory = str(Path(temp_directory) / f"{name}-{os.getpid()}") if temp_directory else None
        self.max_temp_directory_size = max_temp_directory_size
        self._pool_size = max_concurrent_queries
        self._progress_interval = progress_interval
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_lock = threading.Lock()
        self._cursors: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        self._all_cursors: list[duckdb.DuckDBPyConnection] = []

    # -- connection

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The shared parent connection (opened and locked down on first use; call from a
        worker thread).

        Queries use their own cursors; other components in the same process that need this
        database (change detection, ingestion) must use this connection: DuckDB refuses a
        second connection to the same file with a different configuration.
        """
        with self._con_lock:
            if self._con is None:
                try:
                    con = duckdb.connect(self.path, read_only=self.read_only)
                except duckdb.Error as exc:
                    raise WarehouseError("warehouse_unavailable", f"cannot open {self.name}: {exc}") from None
                try:
                    self._lock_down(con)
                except duckdb.Error as exc:
                    con.close()
                    raise WarehouseError(
                        "warehouse_unavailable", f"cannot apply the engine limits to {self.name}: {exc}"
                    ) from None
                self._con = con
            return self._con

    def _lock_down(self, con: duckdb.DuckDBPyConnection) -> None:
        """Apply the limits, prepare the query cursors, then lock the configuration.

        Settings are applied with SET at run time rather than as ``connect()`` config because
        DuckDB refuses a second in-process connection to the file with a different config.
        """
        locked = con.execute("SELECT current_setting('lock_configuration')").fetchone()[0]
        if locked:
            # Another connector in this process opened (and locked) this file first: its
            # limits apply, and our cursors cannot turn progress tracking on any more.
            logger.warning(
                "DuckDB warehouse %s: the database instance was already locked by another connection "
                "in this process; its engine limits apply and progress percentages are unavailable",
                self.name,
            )
            return
        statements = [
            f"SET memory_limit = {sql_literal(self.memory_limit)}",
            f"SET threads = {int(self.threads)}",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET allow_community_extensions = false",
        ]
        if self.temp_directory:
            Path(self.temp_directory).mkdir(parents=True, exist_ok=True)
            statements += [
                f"SET temp_directory = {sql_literal(self.temp_directory)}",
                f"SET max_temp_directory_size = {sql_literal(self.max_temp_directory_size)}",
            ]
        else:
            statements.append("SET temp_directory = ''")  # no spilling: the memory limit is the bound
        # Defense in depth behind SQL validation: no file, URL or ATTACH access, read-only or
        # not (a database opened read-write for ingest is written only by livebi's writer).
        statements.append("SET enable_external_access = false")
        for statement in statements:
            con.execute(statement)
        for _ in range(self._pool_size):
            cur = con.cursor()
            # Progress tracking is per connection and cannot be switched on once locked;
            # printing is off (we are a server).
            cur.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
            self._all_cursors.append(cur)
            self._cursors.put(cur)
        con.execute("SET lock_configuration = true")

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # cursor() on the shared parent is not documented as thread-safe: serialise it.
        con = self.connection()
        with self._con_lock:
            return con.cursor()

    def _checkout(self) -> duckdb.DuckDBPyConnection:
        """A query cursor: a prepared one when free, else a plain one (no progress percent)."""
        self.connection()
        try:
            return self._cursors.get_nowait()
        except queue.Empty:
            return self._cursor()

    def _checkin(self, cur: duckdb.DuckDBPyConnection) -> None:
        if cur not in self._all_cursors:
            cur.close()
            return
        try:
            cur.execute("SELECT NULL")  # releases the previous result's buffers
        except duckdb.Error:
            logger.exception("DuckDB warehouse %s: a query cursor broke; dropping it", self.name)
            self._all_cursors.remove(cur)
            cur.close()
            return
        self._cursors.put(cur)

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
        max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
        on_progress: ProgressCallback | None = None,
    ) -> QueryResult:
        started = time.perf_counter()
        budget = ResultBudget(ResultLimits(row_cap=row_cap, max_bytes=max_bytes, max_value_chars=max_value_chars))

        def work(job: QueryJob) -> QueryResult:
            cur = self._checkout()
            try:
                job.attach(cur.interrupt, lambda: _progress_percent(cur))
                statements = cur.extract_statements(sql)
                if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                    raise WarehouseError("query_failed", "only a single SELECT statement may run")
                relation = cur.sql(sql)  # binds the query (names and types) without running it
                names, types = list(relation.columns), list(relation.types)
                bounded = bounded_select(
                    sql, [duckdb_shape(t.id) for t in types], names, dialect="duckdb", max_chars=max_value_chars
                )
                cur.execute(bounded or sql)
                fetch_bounded(cur.fetchmany, budget, job)
            except duckdb.OutOfMemoryException as exc:
                # memory_limit, or the server's address-space limit (a huge scalar value)
                raise ResourcesExceeded(_clean_error(exc)) from None
            except duckdb.Error as exc:
                if job.interrupted:
                    raise QueryInterrupted() from None
                raise WarehouseError("query_failed", _clean_error(exc)) from None
            finally:
                job.detach()
                self._checkin(cur)
            return budget.result(names, [kind_of(str(t)) for t in types], (time.perf_counter() - started) * 1000)

        return await self._run_query(work, timeout=timeout, on_progress=on_progress, interval=self._progress_interval)

    async def close(self) -> None:
        await super().close()  # interrupts running queries and waits for their workers
        with self._con_lock:
            cursors, self._all_cursors = self._all_cursors, []
            self._cursors = queue.SimpleQueue()
            con, self._con = self._con, None
            try:
                for cur in cursors:
                    cur.close()
                if con is not None:
                    con.close()
            except duckdb.Error:
                # a worker outlived the grace period: the engine lets go when it finishes
                logger.exception("DuckDB warehouse %s: could not close the connection", self.name)


def _progress_percent(cur: duckdb.DuckDBPyConnection) -> float | None:
    value = cur.query_progress()
    return value if value >= 0 else None  # -1: no query running or no estimate yet


def _clean_error(exc: Exception) -> str:
    # DuckDB errors carry a caret diagram of the SQL after a blank line; the first part says it.
    return str(exc).split("\n\n", 1)[0].strip()
