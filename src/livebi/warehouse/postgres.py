"""PostgreSQL connector (asyncpg, natively asynchronous).

Guarantees:

- Every query runs inside ``BEGIN READ ONLY`` with ``SET LOCAL statement_timeout``, so the
  server itself refuses writes and stops runaway queries even if this process dies.
- Rows stream through a server-side cursor in chunks; progress reports carry the rows fetched
  so far (``percent`` is ``None``: PostgreSQL gives no estimate). The row cap stops the fetch
  at ``row_cap + 1`` rows instead of transferring the whole result.
- Cancelling the awaiting task makes asyncpg send a cancel request to the server; the pool
  then resets (or discards) the connection before reuse.
- Introspection covers the exposed schemas (the ``schemas`` option; else the URL's
  ``?search_path=a,b``; else ``public``), and every connection's ``search_path`` is pinned to
  exactly those schemas (then ``pg_temp``), so an unqualified name resolves in the engine as it
  did in validation: a schema named after the login role cannot shadow them.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any, Sequence

import asyncpg

from livebi.warehouse.base import (
    Column,
    ColumnKind,
    ForeignKey,
    Progress,
    ProgressCallback,
    QueryResult,
    QueryTimeout,
    Schema,
    Table,
    Warehouse,
    WarehouseError,
    exposed_schemas,
)
from livebi.warehouse.runner import QueryJob, safe_call, tick_progress
from livebi.warehouse.types import digest_rows, kind_of, quote_identifier, to_json_row

#: Tables never analysed have no row estimate; count them exactly when smaller than this.
EXACT_COUNT_MAX_BYTES = 64 * 1024 * 1024

_SCHEMA_RELATIONS = """
SELECT c.oid, c.relname, c.relkind::text AS relkind, c.reltuples::float8 AS reltuples, n.nspname,
       pg_relation_size(c.oid) AS bytes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND n.nspname = ANY ($1::text[])
ORDER BY array_position($1::text[], n.nspname), c.relname
"""
_SCHEMA_COLUMNS = """
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type, t.typtype::text AS typtype
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
_SCHEMA_FINGERPRINT = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY ($1::text[])
ORDER BY n.nspname, c.relname, a.attnum
"""
_SCHEMA_CONSTRAINTS = """
SELECT con.conrelid, con.contype::text AS contype, con.conkey, con.confrelid, con.confkey, ref.relname AS ref_table
FROM pg_constraint con
LEFT JOIN pg_class ref ON ref.oid = con.confrelid
WHERE con.conrelid = ANY ($1::oid[]) AND con.contype IN ('p', 'f')
ORDER BY con.conrelid, con.contype, con.conname
"""


def normalize_postgres_url(url: str) -> str:
    """Accept ``postgres://``, ``postgresql://`` and SQLAlchemy's ``postgresql+asyncpg://``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}")
    return "postgresql://" + rest


def _url_search_path(dsn: str) -> list[str]:
    """The schemas of a ``?search_path=a,b`` URL parameter (the pre-``schemas`` way to pick them)."""
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(dsn).query).get("search_path", [])
    return [part.strip().strip('"') for value in values for part in value.split(",") if part.strip()]


def search_path_setting(schemas: Sequence[str]) -> str:
    """``search_path`` holding exactly ``schemas`` (quoted), then ``pg_temp``: listed last,
    temporary tables cannot shadow them (unlisted, pg_temp is searched first)."""
    return ", ".join([*(quote_identifier(s) for s in schemas), "pg_temp"])


class PostgresWarehouse(Warehouse):
    """A PostgreSQL database, queried through a small asyncpg pool."""

    dialect = "postgres"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        read_only: bool = True,
        schemas: Sequence[str] | None = None,
        # Limits
        pool_size: int = 4,
        fetch_chunk: int = 1000,
        connect_timeout: float = 10.0,
        # Progress
        progress_interval: float = 0.25,
    ) -> None:
        super().__init__(name, url)
        self._dsn = normalize_postgres_url(url)
        #: exposed schemas, in the order unqualified names resolve (the pinned search_path)
        self.schemas = exposed_schemas(self.dialect, schemas or _url_search_path(self._dsn))
        self.read_only = read_only
        self._pool_size = pool_size
        self.max_concurrent_queries = pool_size
        self._fetch_chunk = fetch_chunk
        self._connect_timeout = connect_timeout
        self._progress_interval = progress_interval
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        """The connection pool, created on first use."""
        async with self._pool_lock:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        timeout=self._connect_timeout,
                        command_timeout=None,  # each query sets its own statement_timeout
                        server_settings={"search_path": search_path_setting(self.schemas)},
                    )
                except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise WarehouseError(
                        "warehouse_unavailable", f"cannot connect to {self.name}: {exc}"
                    ) from None
            return self._pool

    # -- schema

    async def _read_schema(self) -> Schema:
        pool = await self.pool()
        try:
            async with pool.acquire() as conn:
                return await self._load_schema(conn)
        except asyncpg.PostgresError as exc:
            raise WarehouseError("query_failed", f"cannot read the schema of {self.name}: {exc}") from None

    async def schema_fingerprint(self) -> str:
        pool = await self.pool()
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(_SCHEMA_FINGERPRINT, list(self.schemas))
        except asyncpg.PostgresError as exc:
            raise WarehouseError("query_failed", f"cannot read the schema of {self.name}: {exc}") from None
        return digest_rows(tuple(r) for r in rows)

    async def _load_schema(self, conn: asyncpg.Connection) -> Schema:
        relations = list(await conn.fetch(_SCHEMA_RELATIONS, list(self.schemas)))
        oids = [rel["oid"] for rel in relations]
        columns: dict[int, list[Any]] = {}
        for row in await conn.fetch(_SCHEMA_COLUMNS, oids):
            columns.setdefault(row["attrelid"], []).append(row)
        names = {oid: {r["attnum"]: r["attname"] for r in cols} for oid, cols in columns.items()}
        primary: dict[int, tuple[str, ...]] = {}
        foreign: dict[int, list[ForeignKey]] = {}
        for con in await conn.fetch(_SCHEMA_CONSTRAINTS, oids):
            own = tuple(names[con["conrelid"]][n] for n in con["conkey"])
            if con["contype"] == "p":
                primary[con["conrelid"]] = own
            else:
                ref_names = names.get(con["confrelid"])
                if ref_names is None:  # referenced table outside the search_path
                    ref_names = {
                        r["attnum"]: r["attname"] for r in await conn.fetch(_SCHEMA_COLUMNS, [con["confrelid"]])
                    }
                ref_cols = tuple(ref_names[n] for n in con["confkey"])
                foreign.setdefault(con["conrelid"], []).append(ForeignKey(own, con["ref_table"], ref_cols))
        tables = []
        for rel in relations:
            row_count: int | None = None
            if rel["relkind"] in ("r", "p", "m"):
                if rel["reltuples"] >= 0:
                    row_count = int(rel["reltuples"])
                if rel["reltuples"] < 0 or (rel["reltuples"] == 0 and rel["bytes"] > 0):
                    # never analysed: count small tables exactly, leave big ones unknown
                    row_count = None
                    if rel["bytes"] <= EXACT_COUNT_MAX_BYTES:
                        qualified = f"{quote_identifier(rel['nspname'])}.{quote_identifier(rel['relname'])}"
                        row_count = await conn.fetchval(f"SELECT count(*) FROM {qualified}")
            tables.append(
                Table(
                    name=rel["relname"],
                    columns=tuple(
                        Column(c["attname"], c["type"], _pg_kind(c["type"], c["typtype"]))
                        for c in columns.get(rel["oid"], [])
                    ),
                    primary_key=primary.get(rel["oid"], ()),
                    foreign_keys=tuple(foreign.get(rel["oid"], ())),
                    row_count=row_count,
                    schema=rel["nspname"],
                )
            )
        return Schema.of(tables, schemas=self.schemas, catalog=await conn.fetchval("SELECT current_database()"))

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
        pool = await self.pool()
        job = QueryJob()
        ticker = (
            asyncio.create_task(tick_progress(job, on_progress, self._progress_interval)) if on_progress else None
        )
        try:
            async with asyncio.timeout(timeout):
                columns, kinds, rows = await self._stream(pool, sql, timeout, row_cap, job)
        except TimeoutError:
            raise QueryTimeout(timeout) from None
        except asyncpg.QueryCanceledError as exc:
            if "statement timeout" in str(exc):
                raise QueryTimeout(timeout) from None
            raise WarehouseError("query_failed", str(exc)) from None
        except asyncpg.PostgresError as exc:
            raise WarehouseError("query_failed", str(exc)) from None
        except (OSError, asyncpg.InterfaceError) as exc:
            raise WarehouseError("warehouse_unavailable", f"{self.name}: {exc}") from None
        finally:
            if ticker is not None:
                ticker.cancel()
        if on_progress is not None:
            safe_call(on_progress, Progress(percent=100.0, rows_processed=len(rows), detail="done"))
        return QueryResult(
            columns=columns,
            column_kinds=kinds,
            rows=rows[:row_cap],
            row_count=min(len(rows), row_cap),
            truncated=len(rows) > row_cap,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    async def _stream(
        self, pool: asyncpg.Pool, sql: str, timeout: float, row_cap: int, job: QueryJob
    ) -> tuple[list[str], list[ColumnKind], list[list[Any]]]:
        async with pool.acquire() as conn:
            async with conn.transaction(readonly=self.read_only):
                # The server enforces the timeout too: it holds even if this process stalls.
                await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                stmt = await conn.prepare(sql)
                attributes = stmt.get_attributes()
                rows: list[list[Any]] = []
                # A server-side cursor (needs the transaction): rows arrive in chunks and we
                # stop after row_cap + 1 of them.
                async for record in stmt.cursor(prefetch=min(self._fetch_chunk, row_cap + 1)):
                    rows.append(to_json_row(record.values()))
                    job.rows_processed = len(rows)
                    job.stage = "fetching"
                    if len(rows) > row_cap:
                        break
        columns = [a.name for a in attributes]
        kinds = [_pg_kind(a.type.name, a.type.kind) for a in attributes]
        return columns, kinds, rows

    async def close(self) -> None:
        async with self._pool_lock:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                try:
                    await asyncio.wait_for(pool.close(), timeout=5.0)
                except (asyncio.TimeoutError, OSError):
                    pool.terminate()


def _pg_kind(type_name: str, typtype: str | None) -> ColumnKind:
    """Kind of a PostgreSQL type, from ``format_type`` text or asyncpg's short type name."""
    if typtype == "e":  # enums hold labels
        return "text"
    short = {
        "int2": "number", "int4": "number", "int8": "number", "float4": "number", "float8": "number",
        "numeric": "number", "money": "number", "oid": "number",
        "text": "text", "varchar": "text", "bpchar": "text", "name": "text", "char": "text",
        "citext": "text", "uuid": "text",
        "date": "date", "timestamp": "date", "timestamptz": "date",
        "bool": "bool",
    }
    return short.get(type_name) or kind_of(type_name)  # type: ignore[return-value]
