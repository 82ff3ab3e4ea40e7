"""SQLite connector.

Guarantees:

- The file is opened read-only (``mode=ro`` URI, plus ``PRAGMA query_only``) unless the
  warehouse was opened with ``read_only=False``.
- Query connections carry an authorizer (defence in depth behind SQL validation): SQLite
  itself refuses ATTACH/DETACH, every write and schema change, transactions, pragmas other
  than a few argument-less reads, and functions the ``function_allowed`` predicate rejects
  (``load_extension`` and file functions always). ``SQLITE_LIMIT_ATTACHED`` is 0.
- Memory is bounded per query connection: a small page cache (``cache_size``), temporary
  b-trees and sorts on disk (``temp_store = FILE``), and no single value longer than
  ``MAX_VALUE_BYTES`` (``SQLITE_LIMIT_LENGTH``). ``hard_heap_limit`` is process-wide in SQLite
  (it would also starve other SQLite users in the process, such as the metadata store), so it
  is off unless configured.
- Long values are cut inside the engine and the result is bounded while it is fetched
  (:mod:`livebi.warehouse.bounded`).
- Each query opens its own connection in the connector's thread pool (opening SQLite is cheap),
  so concurrent queries never share a cursor and never block the event loop.
- SQLite has no progress estimate: progress reports carry ``percent=None`` and the rows fetched
  so far. A progress handler runs every few thousand VM steps and aborts the statement once the
  query is interrupted; ``Connection.interrupt()`` is called as well.
- SQLite stores dates as text by convention; schema introspection samples text columns and
  reports ISO-8601 ones as ``date`` so charts get a time axis.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Sequence

from livebi.warehouse.base import (
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_VALUE_CHARS,
    Column,
    ColumnKind,
    ForeignKey,
    ProgressCallback,
    QueryResult,
    ResourcesExceeded,
    Schema,
    Table,
    WarehouseError,
    exposed_schemas,
)
from livebi.warehouse.bounded import ResultBudget, ResultLimits, bounded_select, strip_statement
from livebi.warehouse.runner import QueryInterrupted, QueryJob, ThreadedWarehouse, fetch_bounded
from livebi.warehouse.types import digest_rows, kind_of, kind_of_values, quote_identifier

MEMORY = ":memory:"
#: VM instructions between two calls of the progress handler: small enough to stop a runaway
#: query within milliseconds, large enough that the Python callback costs nothing noticeable.
PROGRESS_STEPS = 20_000
#: Rows sampled per table to recognise ISO dates stored as text.
DATE_SAMPLE_ROWS = 50
#: Result rows whose values decide a result column's kind (results carry no types).
KIND_SAMPLE_ROWS = 50
#: Page cache of one query connection, in KiB (SQLite's default is 2 MiB; sorts and temporary
#: b-trees spill to disk beyond it).
CACHE_KIB = 16 * 1024
#: Longest single value (text or blob) a query may produce or read (``SQLITE_LIMIT_LENGTH``;
#: SQLite's default is 1 GB). Longer ones fail the query with "string or blob too big".
MAX_VALUE_BYTES = 64 * 1024 * 1024
#: Pragmas a query may run: argument-less reads that reveal nothing the schema does not.
READ_PRAGMAS = frozenset({"table_list", "collation_list"})
#: Functions the connector's own bounding wrapper needs (harmless reads of one value).
WRAPPER_FUNCTIONS = frozenset({"substr", "typeof", "length"})
#: Functions refused even when no allow-list is configured: they load code or touch files.
NEVER_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, getattr(sqlite3, "SQLITE_RECURSIVE", 33)})

_memory_ids = itertools.count(1)


def sqlite_path_from_url(url: str) -> str:
    """The file path in a ``sqlite:`` URL, following SQLAlchemy's convention.

    ``sqlite:///relative/path.db`` is relative to the working directory,
    ``sqlite:////absolute/path.db`` absolute, and ``sqlite:///:memory:`` (or ``sqlite://``) an
    in-memory database.
    """
    if not url.startswith("sqlite:"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    rest = url[len("sqlite:"):]
    if rest.startswith("//"):
        rest = rest[2:]
        rest = rest[1:] if rest.startswith("/") else rest  # drop the (empty) host's slash
    rest = rest.split("?", 1)[0]
    if rest in ("", MEMORY):
        return MEMORY
    return urllib.parse.unquote(rest)


class SQLiteWarehouse(ThreadedWarehouse):
    """An SQLite database file."""

    dialect = "sqlite"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        read_only: bool = True,
        schemas: Sequence[str] | None = None,
        function_allowed: Callable[[str], bool] | None = None,
        # Limits
        max_concurrent_queries: int = 8,
        hard_heap_limit: int = 0,
        # Progress
        progress_interval: float = 0.25,
    ) -> None:
        """
        Args:
            function_allowed: whether a query may call the SQL function of this (lower-case)
                name; None allows every function except :data:`NEVER_FUNCTIONS`.
            hard_heap_limit: bytes; > 0 sets SQLite's ``hard_heap_limit``, which is
                process-wide (every SQLite database in this process, the metadata store
                included, gets "out of memory" beyond it) and can only be lowered.
        """
        super().__init__(name, url, max_workers=max_concurrent_queries, thread_prefix=f"livebi-sqlite-{name}")
        path = sqlite_path_from_url(url)
        self.read_only = read_only
        #: exposed schemas: SQLite has only ``main`` (``temp`` and attached databases never)
        self.schemas = exposed_schemas(self.dialect, schemas)
        if self.schemas != ("main",):
            raise ValueError(f"SQLite warehouse {name!r} exposes only the schema 'main', not {list(self.schemas)}")
        self._anchor: sqlite3.Connection | None = None
        if path == MEMORY:
            # Per-query connections need a shared-cache memory database, kept alive by an
            # anchor connection; it starts empty, so it is only useful writable (tests).
            self._uri = f"file:livebi-memory-{next(_memory_ids)}?mode=memory&cache=shared"
            self._anchor = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            self.path = MEMORY
        else:
            self.path = str(Path(path).resolve())
            mode = "ro" if read_only else "rw"
            self._uri = f"file:{urllib.parse.quote(self.path)}?mode={mode}"
        self._function_allowed = function_allowed
        self._hard_heap_limit = hard_heap_limit
        self._progress_interval = progress_interval

    def connect(self) -> sqlite3.Connection:
        """A new connection (call from a worker thread; the caller closes it)."""
        try:
            conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False, timeout=5.0)
        except sqlite3.Error as exc:
            raise WarehouseError("warehouse_unavailable", f"cannot open {self.name}: {exc}") from None
        if self.read_only:
            conn.execute("PRAGMA query_only = ON")  # defense in depth (mode=ro already)
        return conn

    def query_connection(self) -> sqlite3.Connection:
        """A new connection for running one query: bounded and behind the authorizer (call
        from a worker thread; the caller closes it)."""
        conn = self.connect()
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute("PRAGMA temp_store = FILE")
            if self._hard_heap_limit > 0:
                conn.execute(f"PRAGMA hard_heap_limit = {int(self._hard_heap_limit)}")
        except sqlite3.Error as exc:
            conn.close()
            raise WarehouseError("warehouse_unavailable", f"cannot apply the engine limits to {self.name}: {exc}") from None
        conn.set_authorizer(self._authorize)
        return conn

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        """SQLite's authorizer callback: reading only (see the module docstring)."""
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:  # arg2 is the function's name
            name = (arg2 or "").lower()
            if name in WRAPPER_FUNCTIONS:
                return sqlite3.SQLITE_OK
            if name in NEVER_FUNCTIONS or (self._function_allowed is not None and not self._function_allowed(name)):
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and arg2 is None and (arg1 or "").lower() in READ_PRAGMAS:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    # -- schema

    def _fingerprint(self) -> str:
        # sqlite_master holds every table's CREATE statement: any ALTER changes its text
        conn = self.connect()
        try:
            rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        except sqlite3.Error as exc:
            raise WarehouseError("query_failed", f"cannot read the schema of {self.name}: {exc}") from None
        finally:
            conn.close()
        return digest_rows(rows)

    def _load_schema(self) -> Schema:
        conn = self.connect()
        try:
            objects = conn.execute(
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            ).fetchall()
            infos: dict[str, list[tuple]] = {
                name: conn.execute(f"PRAGMA table_info({quote_identifier(name)})").fetchall()
                for name, _ in objects
            }
            tables = []
            for name, kind in objects:
                info = infos[name]
                pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
                columns = self._columns(conn, name, info)
                fks = self._foreign_keys(conn, name, infos) if kind == "table" else ()
                row_count = None
                if kind == "table":
                    row_count = conn.execute(f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0]
                tables.append(Table(name, columns, pk, fks, row_count, schema="main"))
        except sqlite3.Error as exc:
            raise WarehouseError("query_failed", f"cannot read the schema of {self.name}: {exc}") from None
        finally:
            conn.close()
        return Schema.of(tables, schemas=self.schemas)

    def _columns(self, conn: sqlite3.Connection, table: str, info: list[tuple]) -> tuple[Column, ...]:
        kinds: list[ColumnKind] = [kind_of(r[2]) for r in info]
        textual = [i for i, r in enumerate(info) if kinds[i] == "text" or not r[2]]
        if textual:
            names = ", ".join(quote_identifier(info[i][1]) for i in textual)
            try:
                sample = conn.execute(
                    f"SELECT {names} FROM {quote_identifier(table)} LIMIT {DATE_SAMPLE_ROWS}"
                ).fetchall()
            except sqlite3.Error:
                sample = []  # a broken view: keep the declared kinds
            for j, i in enumerate(textual):
                guessed = kind_of_values(row[j] for row in sample)
                if guessed == "date" or (not info[i][2] and any(row[j] is not None for row in sample)):
                    kinds[i] = guessed
        return tuple(Column(r[1], r[2] or "", kinds[i]) for i, r in enumerate(info))

    @staticmethod
    def _foreign_keys(
        conn: sqlite3.Connection, table: str, infos: dict[str, list[tuple]]
    ) -> tuple[ForeignKey, ...]:
        grouped: dict[int, list[tuple]] = {}
        for row in conn.execute(f"PRAGMA foreign_key_list({quote_identifier(table)})").fetchall():
            grouped.setdefault(row[0], []).append(row)
        fks = []
        for rows in grouped.values():
            rows.sort(key=lambda r: r[1])
            ref_table = rows[0][2]
            ref_columns = [r[4] for r in rows]
            if any(c is None for c in ref_columns):
                # "REFERENCES parent" without columns means the parent's primary key.
                parent = next((v for k, v in infos.items() if k.lower() == ref_table.lower()), [])
                ref_columns = [r[1] for r in sorted((r for r in parent if r[5]), key=lambda r: r[5])]
            fks.append(ForeignKey(tuple(r[3] for r in rows), ref_table, tuple(ref_columns)))
        return tuple(fks)

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
        schema = self._schema  # only the cached one: never introspect from a worker
        budget = ResultBudget(ResultLimits(row_cap=row_cap, max_bytes=max_bytes, max_value_chars=max_value_chars))

        def work(job: QueryJob) -> QueryResult:
            conn = self.query_connection()
            sample: list[Sequence[Any]] = []  # first rows as fetched: bytes must still look like bytes

            def fetchmany(size: int) -> list[Any]:
                chunk = cur.fetchmany(size)
                if len(sample) < KIND_SAMPLE_ROWS:
                    sample.extend(chunk[: KIND_SAMPLE_ROWS - len(sample)])
                return chunk

            try:
                # Returning non-zero from the handler aborts the running statement.
                conn.set_progress_handler(lambda: 1 if job.interrupted else 0, PROGRESS_STEPS)
                job.attach(conn.interrupt)
                # Results carry no types: learn the column count (and names) without running
                # the query, then let the engine cut each value by its run-time type.
                body = strip_statement(sql)
                probe = conn.execute(f"SELECT * FROM (\n{body}\n) LIMIT 0")
                columns = _original_names([d[0] for d in probe.description or []])
                probe.close()
                bounded = bounded_select(body, ["any"] * len(columns), columns, dialect="sqlite", max_chars=max_value_chars)
                cur = conn.execute(bounded or body)
                fetch_bounded(fetchmany, budget, job)
            except sqlite3.DataError as exc:
                # SQLITE_TOOBIG: a value longer than the length cap (MemoryError, for SQLite's
                # own out-of-memory, becomes resources_exceeded in the runner)
                raise ResourcesExceeded(str(exc)) from None
            except sqlite3.Error as exc:
                if job.interrupted:
                    raise QueryInterrupted() from None
                raise WarehouseError("query_failed", _engine_message(exc)) from None
            finally:
                job.detach()
                conn.close()
            kinds = [_result_kind(sample, i, name, schema) for i, name in enumerate(columns)]
            return budget.result(columns, kinds, (time.perf_counter() - started) * 1000)

        return await self._run_query(work, timeout=timeout, on_progress=on_progress, interval=self._progress_interval)

    async def close(self) -> None:
        await super().close()
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None


def _original_names(names: list[str]) -> list[str]:
    # A subquery renames repeated column names "id", "id:1", ...: give them back their name.
    seen: set[str] = set()
    out = []
    for name in names:
        base = re.sub(r":\d+$", "", name)
        out.append(base if base != name and base in seen else name)
        seen.add(base)
    return out


def _engine_message(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not authorized" in text:
        return f"refused by the engine ({text}): queries may only read"
    return text


def _result_kind(sample: list[tuple], index: int, name: str, schema: Schema | None) -> ColumnKind:
    """A result column's kind: SQLite results carry no types, so look at the (raw) values.

    With no non-null value to look at, a same-named column in the schema decides.
    """
    values = [row[index] for row in sample if row[index] is not None]
    if values:
        return kind_of_values(values)
    if schema is not None:
        lowered = name.lower()
        for table in schema.tables:
            for column in table.columns:
                if column.name.lower() == lowered:
                    return column.kind
    return "other"
