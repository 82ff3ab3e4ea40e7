"""PostgreSQL connector (asyncpg, natively asynchronous).

Guarantees:

- Before the first query, the connector inspects its own role and refuses to serve (a
  :class:`PrivilegedRole` error naming the reason) with a superuser, a role that can create
  roles or databases, replicate or bypass row security, a member of the predefined roles that
  write data, read or write server files, run programs or signal backends, or a role that can
  write in the exposed schemas (INSERT/UPDATE/DELETE/TRUNCATE on a table, CREATE on a schema or
  the database, owning a table there). ``allow_privileged_role`` turns the refusal into a loud
  warning. docs/deployment.md has the recipe for a suitable read-only role.
- Every query runs inside ``BEGIN READ ONLY``, which is always rolled back, with ``SET LOCAL statement_timeout``,
  ``idle_in_transaction_session_timeout`` and ``work_mem``, so the server itself refuses
  writes and stops runaway queries even if this process dies. ``temp_file_limit`` can only be
  set by a superuser (or, from PostgreSQL 15, a role granted SET on it): otherwise it must come
  from the role (``ALTER ROLE ... SET temp_file_limit``), and the role check refuses a role
  whose limit is unlimited or above the configured one.
- Rows stream through a server-side cursor in chunks sized by :mod:`livebi.warehouse.bounded`;
  long values are cut by the server before they are sent; progress reports carry the rows
  fetched so far (``percent`` is ``None``: PostgreSQL gives no estimate). The fetch stops at
  the row cap or the byte budget instead of transferring the whole result.
- Session state a query could leave behind (session settings, advisory locks) is reset by the
  pool before the connection is reused.
- Cancelling the awaiting task makes asyncpg send a cancel request to the server; the pool
  then resets (or discards) the connection before reuse.
- Introspection covers the exposed schemas (the ``schemas`` option; else the URL's
  ``?search_path=a,b``; else ``public``), and every connection's ``search_path`` is pinned to
  exactly those schemas (then ``pg_temp``), so an unqualified name resolves in the engine as it
  did in validation: a schema named after the login role cannot shadow them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import Any, Sequence

import asyncpg

from livebi.warehouse.base import (
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_VALUE_CHARS,
    Column,
    ColumnKind,
    ForeignKey,
    Progress,
    ProgressCallback,
    QueryResult,
    QueryTimeout,
    ResourcesExceeded,
    Schema,
    Table,
    Warehouse,
    WarehouseError,
    exposed_schemas,
)
from livebi.warehouse.bounded import ResultBudget, ResultLimits, bounded_select, postgres_shape
from livebi.warehouse.runner import QueryJob, safe_call, tick_progress
from livebi.warehouse.types import digest_rows, kind_of, quote_identifier, sql_literal

logger = logging.getLogger(__name__)
DEPLOYMENT_DOC = "docs/deployment.md"
#: Predefined roles whose members can write data, touch server files, run programs or stop
#: other sessions: a read-only BI role must not be in any of them.
DANGEROUS_ROLES = (
    "pg_write_all_data", "pg_write_server_files", "pg_execute_server_program",
    "pg_read_server_files", "pg_signal_backend",
)
#: How long a query's transaction may sit idle (this process stalled between two fetches)
#: beyond its timeout before the server ends the session.
IDLE_SLACK_S = 10.0

_ROLE_CHECK = """
SELECT r.rolname::text AS role, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
  ARRAY(SELECT g.rolname::text FROM pg_roles g
        WHERE g.rolname = ANY ($1::text[]) AND pg_has_role(r.oid, g.oid, 'MEMBER') ORDER BY 1) AS groups,
  has_database_privilege(r.oid, current_database(), 'CREATE') AS create_db_objects,
  ARRAY(SELECT n.nspname::text FROM pg_namespace n
        WHERE n.nspname = ANY (current_schemas(false))
          AND (has_schema_privilege(r.oid, n.oid, 'CREATE') OR pg_has_role(r.oid, n.nspowner, 'MEMBER'))
        ORDER BY 1) AS create_schemas,
  ARRAY(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND (pg_has_role(r.oid, c.relowner, 'MEMBER')
               OR has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
               OR has_any_column_privilege(r.oid, c.oid, 'INSERT, UPDATE'))
        ORDER BY 1 LIMIT 5) AS writable_tables,
  (SELECT setting::bigint FROM pg_settings WHERE name = 'temp_file_limit') AS temp_file_limit_kb,
  current_setting('server_version_num')::int AS server_version
FROM pg_roles r WHERE r.rolname = current_user
"""


class PrivilegedRole(WarehouseError):
    """The connection's role can do more than read: livebi refuses to serve with it."""

    def __init__(self, warehouse: str, role: str, reasons: list[str]) -> None:
        super().__init__(
            "warehouse_unavailable",
            f"refusing to query warehouse {warehouse!r} as PostgreSQL role {role!r}: it "
            + "; ".join(reasons)
            + f". Connect with a read-only role (see {DEPLOYMENT_DOC}) or set "
            "warehouse_allow_privileged_role to accept the risk.",
        )
        self.reasons = reasons

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
        allow_privileged_role: bool = False,
        # Limits
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        work_mem: str = "64MB",
        temp_file_limit: str = "1GB",
        # Progress
        progress_interval: float = 0.25,
    ) -> None:
        """
        Args:
            allow_privileged_role: serve even with a role that can write or administer (a
                warning is logged instead of refusing).
            work_mem: ``work_mem`` of every query (memory per sort or hash before spilling).
            temp_file_limit: most temporary-file space one query may use, e.g. ``"1GB"``;
                empty: no limit is asked for (the role's own applies).
        """
        super().__init__(name, url)
        self._dsn = normalize_postgres_url(url)
        #: exposed schemas, in the order unqualified names resolve (the pinned search_path)
        self.schemas = exposed_schemas(self.dialect, schemas or _url_search_path(self._dsn))
        self.read_only = read_only
        self.allow_privileged_role = allow_privileged_role
        self._pool_size = pool_size
        self.max_concurrent_queries = pool_size
        self._connect_timeout = connect_timeout
        self.work_mem = work_mem
        self.temp_file_limit = temp_file_limit
        self._set_temp_file_limit = False  # decided by the role check
        self._progress_interval = progress_interval
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        """The connection pool, created on first use once the role check has passed.

        Raises:
            PrivilegedRole: the role can do more than read (see :meth:`check_access`).
            WarehouseError: the server cannot be reached.
        """
        async with self._pool_lock:
            if self._pool is None:
                try:
                    pool = await asyncpg.create_pool(
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
                try:
                    async with pool.acquire() as conn:
                        await self._check_role(conn)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
            return self._pool

    async def check_access(self) -> None:
        """Run the role check now (server start) rather than at the first question.

        An unreachable server is only logged: the first query reports it (and checks again).
        """
        try:
            await self.pool()
        except PrivilegedRole:
            raise
        except WarehouseError as exc:
            logger.warning("PostgreSQL warehouse %s: role not checked at start: %s", self.name, exc.message)

    async def _check_role(self, conn: asyncpg.Connection) -> None:
        """Refuse a role that can do more than read, or whose temporary files are unbounded."""
        try:
            row = await conn.fetchrow(_ROLE_CHECK, list(DANGEROUS_ROLES))
            wanted_kb = None
            if self.temp_file_limit:
                wanted_kb = await conn.fetchval("SELECT pg_size_bytes($1) / 1024", self.temp_file_limit)
            can_set_limit = bool(row["rolsuper"])
            if not can_set_limit and row["server_version"] >= 150000:
                can_set_limit = await conn.fetchval("SELECT has_parameter_privilege('temp_file_limit', 'SET')")
        except asyncpg.PostgresError as exc:
            raise WarehouseError("warehouse_unavailable", f"cannot check the role of {self.name}: {exc}") from None
        reasons = role_problems(row)
        self._set_temp_file_limit = bool(can_set_limit and wanted_kb is not None)
        if wanted_kb is not None and not can_set_limit:
            current = row["temp_file_limit_kb"]
            if current < 0 or current > wanted_kb:
                shown = "unlimited" if current < 0 else f"{current} kB"
                reasons.append(
                    f"has temp_file_limit {shown}, above the configured {self.temp_file_limit} "
                    f"(run ALTER ROLE {quote_identifier(row['role'])} SET temp_file_limit = '{self.temp_file_limit}')"
                )
        if not reasons:
            return
        error = PrivilegedRole(self.name, row["role"], reasons)
        if not self.allow_privileged_role:
            raise error
        logger.warning("!!! warehouse_allow_privileged_role is set: %s", error.message.replace("refusing to", "still going to"))

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
        max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
        on_progress: ProgressCallback | None = None,
    ) -> QueryResult:
        started = time.perf_counter()
        pool = await self.pool()
        job = QueryJob()
        budget = ResultBudget(ResultLimits(row_cap=row_cap, max_bytes=max_bytes, max_value_chars=max_value_chars))
        ticker = (
            asyncio.create_task(tick_progress(job, on_progress, self._progress_interval)) if on_progress else None
        )
        try:
            async with asyncio.timeout(timeout):
                columns, kinds = await self._stream(pool, sql, timeout, budget, job)
        except TimeoutError:
            raise QueryTimeout(timeout) from None
        except asyncpg.QueryCanceledError as exc:
            if "statement timeout" in str(exc):
                raise QueryTimeout(timeout) from None
            raise WarehouseError("query_failed", str(exc)) from None
        except (asyncpg.OutOfMemoryError, asyncpg.ConfigurationLimitExceededError, asyncpg.ProgramLimitExceededError) as exc:
            # 53200 out of memory, 53400 temp_file_limit, 54000 e.g. "requested length too large"
            raise ResourcesExceeded(str(exc)) from None
        except asyncpg.PostgresError as exc:
            raise WarehouseError("query_failed", str(exc)) from None
        except (OSError, asyncpg.InterfaceError) as exc:
            raise WarehouseError("warehouse_unavailable", f"{self.name}: {exc}") from None
        finally:
            if ticker is not None:
                ticker.cancel()
        if on_progress is not None:
            safe_call(on_progress, Progress(percent=100.0, rows_processed=budget.rows_seen, detail="done"))
        return budget.result(columns, kinds, (time.perf_counter() - started) * 1000)

    def _transaction_settings(self, timeout: float) -> str:
        """The SET LOCAL statements every query's transaction starts with."""
        ms = max(1, int(timeout * 1000))
        statements = [
            # The server enforces the timeout too: it holds even if this process stalls.
            f"SET LOCAL statement_timeout = {ms}",
            f"SET LOCAL idle_in_transaction_session_timeout = {ms + int(IDLE_SLACK_S * 1000)}",
            f"SET LOCAL work_mem = {sql_literal(self.work_mem)}",
        ]
        if self._set_temp_file_limit:
            statements.append(f"SET LOCAL temp_file_limit = {sql_literal(self.temp_file_limit)}")
        return "; ".join(statements)

    async def _stream(
        self, pool: asyncpg.Pool, sql: str, timeout: float, budget: ResultBudget, job: QueryJob
    ) -> tuple[list[str], list[ColumnKind]]:
        async with pool.acquire() as conn:
            transaction = conn.transaction(readonly=self.read_only)
            await transaction.start()
            try:
                await conn.execute(self._transaction_settings(timeout))
                stmt = await conn.prepare(sql)
                attributes = stmt.get_attributes()
                bounded = bounded_select(
                    sql,
                    [postgres_shape(a.type.name, a.type.kind) for a in attributes],
                    [a.name for a in attributes],
                    dialect="postgres",
                    max_chars=budget.limits.max_value_chars,
                )
                if bounded is not None:
                    stmt = await conn.prepare(bounded)
                # A server-side cursor (needs the transaction): rows arrive in chunks sized by
                # the budget, and we stop as soon as it is spent.
                cursor = await stmt.cursor()
                job.stage = "fetching"
                while not budget.full:
                    chunk = await cursor.fetch(budget.chunk_size())
                    if not chunk:
                        break
                    budget.add(chunk)
                    job.rows_processed = budget.rows_seen
            finally:
                # Never commit: a query only reads, and a few functions write even in a
                # read-only transaction (lo_from_bytea creates a large object in PostgreSQL
                # 15): rolling back undoes them. A broken connection is discarded by the pool.
                if not conn.is_closed():
                    try:
                        await transaction.rollback()
                    except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                        # the pool's reset on release discards a connection in this state
                        logger.warning("PostgreSQL warehouse %s: rollback failed", self.name, exc_info=True)
        columns = [a.name for a in attributes]
        kinds = [_pg_kind(a.type.name, a.type.kind) for a in attributes]
        return columns, kinds

    async def close(self) -> None:
        async with self._pool_lock:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                await close_pool(pool)


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close ``pool`` gracefully, or terminate it when that takes more than 5 s."""
    try:
        await asyncio.wait_for(pool.close(), timeout=5.0)
    except (asyncio.TimeoutError, OSError):
        pool.terminate()


def role_problems(row: Any) -> list[str]:
    """Why the role described by a ``_ROLE_CHECK`` row can do more than read (pure)."""
    reasons = []
    for flag, what in (
        ("rolsuper", "is a superuser"),
        ("rolcreaterole", "can create roles (CREATEROLE)"),
        ("rolcreatedb", "can create databases (CREATEDB)"),
        ("rolreplication", "can start replication (REPLICATION)"),
        ("rolbypassrls", "bypasses row-level security (BYPASSRLS)"),
    ):
        if row[flag]:
            reasons.append(what)
    if row["groups"]:
        reasons.append("is a member of " + ", ".join(row["groups"]))
    if row["create_db_objects"]:
        reasons.append("can create schemas in the database (CREATE on the database)")
    if row["create_schemas"]:
        reasons.append("can create objects in schema " + ", ".join(row["create_schemas"]))
    if row["writable_tables"]:
        reasons.append("can write or owns table " + ", ".join(row["writable_tables"]))
    return reasons



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
