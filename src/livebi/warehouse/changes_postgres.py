"""PostgreSQL change detection: statistics counters, and LISTEN when triggers notify.

:class:`PostgresChangeDetector` (see :mod:`livebi.warehouse.changes` for the shared rules):

- **Polls** read, for each watched table (a view's tables, a partitioned table's partitions),
  ``n_tup_ins + n_tup_upd + n_tup_del`` and the relation's file node (TRUNCATE, VACUUM FULL and
  a re-created table get a new one) in one catalogue query, after ``pg_stat_clear_snapshot()``.
  PostgreSQL's statistics lag: a backend flushes its counters when its transaction ends if it
  has not flushed within the last second, else when it has been idle for about 10 s (or exits),
  so a change can take up to ~10 s to show. The warehouse's read-only role may read them.
- **LISTEN** ``livebi_changes`` on a connection of its own (only while something is watched),
  when ``listen`` is on. Tables with the statement-level trigger that
  :func:`install_triggers` creates (``livebi live install-triggers``) notify their name at
  commit: reported at once, and their counters are then not reported again by polls. The poll
  runs on that connection too (no pool slot is taken, and a dead connection shows at once); a
  dropped connection is reconnected (after a wait growing from 0.5 s to 30 s while connecting
  fails or connections do not last), and on reconnect every trigger-covered watched table is
  reported (notifications sent meanwhile were lost).
- Without ``listen``, polls borrow a connection of the warehouse's pool for one query.

The trigger recipe (also in docs/live.md): a function ``livebi_notify_change()`` doing
``pg_notify('livebi_changes', TG_TABLE_NAME)`` in the tables' schema, and on each table a trigger
``livebi_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT``.
Installing needs a role that may create triggers on the tables (their owner), never the
warehouse's read-only role: the CLI takes a separate admin URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Sequence

import asyncpg

from livebi.warehouse.base import WarehouseError
from livebi.warehouse.changes import ChangeDetector, OnChange, VersionTracker
from livebi.warehouse.postgres import normalize_postgres_url, search_path_setting
from livebi.warehouse.types import quote_identifier

if TYPE_CHECKING:
    from livebi.warehouse.postgres import PostgresWarehouse

logger = logging.getLogger(__name__)

CHANNEL = "livebi_changes"
FUNCTION = "livebi_notify_change"
TRIGGER = "livebi_notify_change"
APPLICATION_NAME = "livebi-changes"
#: First and longest wait before reconnecting a dropped LISTEN connection.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0

_DB_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

# Watched names -> the relations holding their rows: the tables of that name in the exposed
# schemas, the relations a view's rewrite rule depends on, a partitioned table's partitions
# (recursively). One row per relation with data, with its write counters, file node and
# whether it has the notify trigger.
_POLL = f"""
WITH RECURSIVE rels(name, relid, relkind) AS (
    SELECT lower(c.relname::text), c.oid, c.relkind
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY ($1::text[]) AND lower(c.relname::text) = ANY ($2::text[])
      AND c.relkind IN ('r', 'p', 'v', 'm')
  UNION
    SELECT r.name, e.child, k.relkind FROM rels r CROSS JOIN LATERAL (
        -- a view reads what its rewrite rule depends on (a materialized view's rows change
        -- only when it is refreshed, which gives it a new file node)
        SELECT d.refobjid AS child
        FROM pg_catalog.pg_rewrite w
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = w.oid
             AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.relid
        WHERE w.ev_class = r.relid AND r.relkind = 'v'
        UNION ALL
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = r.relid
    ) e JOIN pg_catalog.pg_class k ON k.oid = e.child
)
SELECT r.name, c.oid::bigint AS relid, lower(c.relname::text) AS relname,
       pg_catalog.pg_stat_get_tuples_inserted(c.oid) + pg_catalog.pg_stat_get_tuples_updated(c.oid)
         + pg_catalog.pg_stat_get_tuples_deleted(c.oid) AS writes,
       c.relfilenode::bigint AS filenode,
       EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
               WHERE t.tgrelid = c.oid AND t.tgname = '{TRIGGER}' AND t.tgenabled <> 'D') AS notifies
FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.relid
WHERE c.relkind IN ('r', 'p', 'm')
"""


def versions_from_rows(
    watched: Iterable[str], rows: Iterable[Any]
) -> tuple[dict[str, tuple], set[str], dict[str, set[str]]]:
    """From the poll's rows (pure): each watched name's version, the names whose every relation
    notifies (trigger-covered), and relation name -> the watched names it feeds."""
    parts: dict[str, list[tuple]] = {name: [] for name in watched}
    notifying: dict[str, bool] = {}
    feeds: dict[str, set[str]] = {}
    for row in rows:
        name = row["name"]
        if name not in parts:
            continue
        parts[name].append((row["relid"], row["writes"], row["filenode"]))
        notifying[name] = notifying.get(name, True) and bool(row["notifies"])
        feeds.setdefault(row["relname"], set()).add(name)
    versions = {name: tuple(sorted(p)) for name, p in parts.items()}
    covered = {name for name, all_notify in notifying.items() if all_notify}
    return versions, covered, feeds


class PostgresChangeDetector(ChangeDetector):
    """PostgreSQL: ``pg_stat`` counters polled, plus LISTEN for trigger-covered tables."""

    warehouse: "PostgresWarehouse"

    def __init__(
        self,
        warehouse: "PostgresWarehouse",
        on_change: OnChange,
        *,
        poll_interval_s: float,
        listen: bool = True,
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        **kw: Any,
    ) -> None:
        super().__init__(warehouse, on_change, poll_interval_s=poll_interval_s, **kw)
        self.listen = listen
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._versions = VersionTracker()
        self._covered: set[str] = set()
        self._feeds: dict[str, set[str]] = {}
        self._listener: asyncpg.Connection | None = None
        self._epoch = 0  # successful LISTEN connections so far
        self._epoch_at_poll: int | None = None  # the listener's epoch at the previous poll, if up
        # Counters
        self.notifications = 0
        self.reconnects = 0

    @property
    def method(self) -> str:
        if self._listener is None:
            return "poll:pg_stat"
        if self._watched and self._covered >= self._watched:
            return "listen"
        return "listen+poll:pg_stat"

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the LISTEN connection (None while there is none)."""
        return None if self._listener is None else self._listener.get_server_pid()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "listening": self._listener is not None,
                "notifications": self.notifications, "reconnects": self.reconnects}

    async def start(self) -> None:
        started = bool(self._tasks)
        await super().start()
        if self.listen and not started:
            self._tasks.append(asyncio.create_task(self._listen_loop(), name=f"changes-listen-{self.warehouse.name}"))

    # -- polls

    async def _idle(self) -> None:
        self._versions.clear()
        self._covered = set()
        self._feeds = {}

    async def _poll(self, watched: frozenset[str]) -> set[str]:
        self._versions.retain(watched)
        listener, epoch = self._listener, self._epoch
        try:
            async with self._connection(listener) as conn:
                await conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
                rows = await conn.fetch(_POLL, list(self.warehouse.schemas), sorted(watched), timeout=self.poll_timeout_s)
                self.queries += 2
        except _DB_ERRORS as exc:
            if listener is not None and not listener.is_closed():
                listener.terminate()  # a listener that cannot answer is dead: reconnect
            raise WarehouseError("query_failed", f"change poll on {self.warehouse.name}: {exc}") from None
        versions, covered, feeds = versions_from_rows(watched, rows)
        changed = self._versions.update(versions)
        listening = listener is not None and self._listener is listener
        if listening and self._epoch_at_poll == epoch:
            # the listener was up all along since the previous poll: those were notified
            changed -= covered & self._covered
        self._epoch_at_poll = epoch if listening else None
        self._covered, self._feeds = covered, feeds
        return changed

    @contextlib.asynccontextmanager
    async def _connection(self, listener: asyncpg.Connection | None) -> AsyncIterator[asyncpg.Connection]:
        if listener is not None and not listener.is_closed():
            yield listener
            return
        pool = await self.warehouse.pool()
        async with pool.acquire(timeout=self.poll_timeout_s) as conn:
            yield conn

    # -- LISTEN

    async def _listen_loop(self) -> None:
        delay = self._reconnect_min_s
        connected_before = False  # within this watching period
        while True:
            if not self._watched:
                connected_before = False
                await self._watching.wait()
            try:
                conn = await self._connect_listener()
            except (WarehouseError, *_DB_ERRORS) as exc:
                self.errors += 1
                logger.warning("change detection on %s: cannot LISTEN (retrying in %.1f s): %s",
                               self.warehouse.name, delay, getattr(exc, "message", exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max_s)
                continue
            connected_at = time.monotonic()
            closed = asyncio.Event()
            # bound now: this connection's close must never end a later connection's wait
            conn.add_termination_listener(lambda _conn, ended=closed: ended.set())
            self._epoch += 1
            self._listener = conn
            if connected_before:
                self.reconnects += 1
                self._lost_notifications()
            connected_before = True
            try:
                ended = asyncio.create_task(closed.wait())
                unwatched = asyncio.create_task(self._unwatched.wait())
                try:
                    await asyncio.wait({ended, unwatched}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    ended.cancel()
                    unwatched.cancel()
            finally:
                self._listener = None
                await _close_quietly(conn)
            if closed.is_set():
                logger.warning("change detection on %s: the LISTEN connection dropped; reconnecting", self.warehouse.name)
                if time.monotonic() - connected_at < self._reconnect_max_s:
                    # it did not last: back off rather than reconnect (and report) in a loop
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._reconnect_max_s)
                else:
                    delay = self._reconnect_min_s

    async def _connect_listener(self) -> asyncpg.Connection:
        await self.warehouse.pool()  # the role check runs first (and refuses a privileged role)
        conn = await asyncpg.connect(
            self.warehouse._dsn,
            timeout=self.poll_timeout_s,
            command_timeout=self.poll_timeout_s,
            server_settings={"search_path": search_path_setting(self.warehouse.schemas), "application_name": APPLICATION_NAME},
        )
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            await _close_quietly(conn)
            raise
        return conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.notifications += 1
        table = payload.lower()
        targets = set(self._feeds.get(table, ())) | ({table} & self._watched)
        if targets:
            self._signal(targets, detected_by="listen")

    def _lost_notifications(self) -> None:
        """Notifications sent while the listener was down are lost: report what they cover."""
        lost = self._covered & self._watched
        if lost:
            self._signal(set(lost), detected_by="listen:reconnect")

    async def _close(self) -> None:
        # the listen task (cancelled by stop()) closes its connection itself
        self._listener = None


async def _close_quietly(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), timeout=2.0)
    except _DB_ERRORS:
        conn.terminate()
    except BaseException:  # cancelled while closing: do not leave the connection open
        conn.terminate()
        raise


# -- installing the triggers (admin side; `livebi live install-triggers`) ----------------------


class TriggerError(Exception):
    """Installing or removing the triggers failed; the message says why (no credentials)."""


def function_sql(schema: str) -> str:
    """``CREATE OR REPLACE`` the notify function in ``schema``."""
    return (
        f"CREATE OR REPLACE FUNCTION {quote_identifier(schema)}.{FUNCTION}() RETURNS trigger "
        "LANGUAGE plpgsql AS $livebi$\n"
        "BEGIN\n"
        f"  PERFORM pg_catalog.pg_notify('{CHANNEL}', TG_TABLE_NAME);\n"
        "  RETURN NULL;\n"
        "END\n"
        "$livebi$"
    )


def trigger_sql(schema: str, table: str) -> list[str]:
    """The statements that (re)create the notify trigger on ``schema.table`` (idempotent)."""
    target = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    return [
        f"DROP TRIGGER IF EXISTS {TRIGGER} ON {target}",
        f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {target} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {quote_identifier(schema)}.{FUNCTION}()",
    ]


_SCHEMA_TABLES = """
SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1
"""
_PARTITIONS = """
WITH RECURSIVE parts(oid) AS (
    SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname = ANY ($2::text[])
  UNION
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN parts p ON i.inhparent = p.oid
)
SELECT n.nspname::text, c.relname::text FROM parts p JOIN pg_catalog.pg_class c ON c.oid = p.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') ORDER BY 1, 2
"""
_WITH_TRIGGER = f"""
SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE t.tgname = '{TRIGGER}' AND n.nspname = $1 AND (cardinality($2::text[]) = 0 OR c.relname = ANY ($2::text[]))
ORDER BY 1, 2
"""
_FUNCTION_USERS = f"""
SELECT count(*) FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = '{FUNCTION}' AND n.nspname = $1
"""


async def _admin(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(normalize_postgres_url(url), timeout=10.0)
    except ValueError as exc:
        raise TriggerError(str(exc)) from None
    except _DB_ERRORS as exc:
        raise TriggerError(f"cannot connect to PostgreSQL: {exc}") from None


async def _targets(conn: asyncpg.Connection, schema: str, tables: Sequence[str]) -> list[tuple[str, str]]:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", schema):
        raise TriggerError(f"no schema {schema!r}")
    existing = [r[0] for r in await conn.fetch(_SCHEMA_TABLES, schema)]
    if not tables:
        return [(schema, name) for name in existing]
    missing = [t for t in tables if t not in existing]
    if missing:
        raise TriggerError(f"no table {', '.join(repr(t) for t in missing)} in schema {schema!r}")
    # a partitioned table's partitions get the trigger too (a statement on a partition fires
    # only the partition's triggers)
    return [(r[0], r[1]) for r in await conn.fetch(_PARTITIONS, schema, list(tables))]


async def install_triggers(url: str, *, schema: str = "public", tables: Sequence[str] = ()) -> list[str]:
    """Create (or replace) the notify function and triggers, in one transaction.

    Args:
        url: a PostgreSQL URL whose role may create functions in ``schema`` and triggers on the
            tables (their owner); not the warehouse's read-only role.
        tables: exact table names (and, for a partitioned table, its partitions); empty: every
            table of ``schema``.

    Returns the qualified names of the tables that now notify.

    Raises:
        TriggerError: the server cannot be reached, a schema or table does not exist, or the
            role may not create the function or a trigger (nothing is left half-installed).
    """
    conn = await _admin(url)
    try:
        async with conn.transaction():
            targets = await _targets(conn, schema, tables)
            schemas = sorted({s for s, _ in targets})
            for target_schema in schemas:
                await conn.execute(function_sql(target_schema))
            for target_schema, table in targets:
                for statement in trigger_sql(target_schema, table):
                    await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        raise TriggerError(f"cannot install the triggers: {exc}") from None
    finally:
        await conn.close()
    return [f"{s}.{t}" for s, t in targets]


async def remove_triggers(url: str, *, schema: str = "public", tables: Sequence[str] = ()) -> list[str]:
    """Drop the notify triggers (of ``tables``, or every one in ``schema``), and the function
    once no trigger uses it, in one transaction. Idempotent.

    Returns the qualified names of the tables whose trigger was dropped.

    Raises:
        TriggerError: the server cannot be reached or the role may not drop them.
    """
    conn = await _admin(url)
    try:
        async with conn.transaction():
            found = [(r[0], r[1]) for r in await conn.fetch(_WITH_TRIGGER, schema, list(tables))]
            for target_schema, table in found:
                await conn.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {quote_identifier(target_schema)}.{quote_identifier(table)}")
            if not await conn.fetchval(_FUNCTION_USERS, schema):
                await conn.execute(f"DROP FUNCTION IF EXISTS {quote_identifier(schema)}.{FUNCTION}()")
    except asyncpg.PostgresError as exc:
        raise TriggerError(f"cannot remove the triggers: {exc}") from None
    finally:
        await conn.close()
    return [f"{s}.{t}" for s, t in found]
