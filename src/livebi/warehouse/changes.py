"""Change detection: learn that rows of a watched table changed, one detector per warehouse.

The live service tells a :class:`ChangeDetector` which tables its viewers' widgets read
(:meth:`~ChangeDetector.watch`) and gets ``await on_change(tables)`` when rows of some of them
changed. Tables are lower-case bare names (``"orders"``), the way the live service extracts them
from a widget's SQL; a watched *view* is followed through to the tables it reads, and reported
under its own name.

How each engine is watched (the costs are measured in docs/live.md, ``benchmarks/change_poll.py``):

- **DuckDB** (:class:`DuckDBChangeDetector`): a gate that runs no query at all, the database
  file's and its write-ahead log's size and times (every commit appends to the log); when the
  gate moved, each watched table's identity and ``count(*)`` (DuckDB answers it from metadata)
  tell inserts, deletes and re-created tables apart per table. In-place UPDATEs keep the count
  and are not seen: only a full scan could see them (~250 ms for 10M rows), and nothing but
  livebi itself can write a DuckDB file livebi has open (DuckDB locks it against other
  processes' writers), whose ingest path inserts and signals its own changes. An in-memory
  database has no file: every poll counts.
- **SQLite** (:class:`SQLiteChangeDetector`): a connection of its own whose
  ``PRAGMA data_version`` changes when another connection commits (microseconds, the only
  statement while nothing changed); when it moved, each watched table's root page and
  ``min(rowid)``/``max(rowid)`` (index look-ups) attribute appends, deletes at either end and
  re-created tables. SQLite offers nothing cheap that sees an in-place UPDATE, so when the
  database changed but no watched table's fingerprint moved, *every* watched table is reported
  (conservative: a needless refresh is cheaper than a stale dashboard).
- **PostgreSQL** (:mod:`livebi.warehouse.changes_postgres`): the statistics counters of
  ``pg_stat_user_tables``, plus ``LISTEN livebi_changes`` for the tables that have the triggers
  ``livebi live install-triggers`` creates.

Shared rules:

- Nothing watched: no query runs at all (not even the gate) and baselines are dropped.
- The first poll of a table records its baseline (nothing reported). A table that starts being
  watched is polled at once, so a change right after is not absorbed into its baseline.
- Polls run one at a time per warehouse in the warehouse's own worker threads (DuckDB, SQLite;
  bounded by a timeout that interrupts the engine) or connections (PostgreSQL), never on the
  event loop. They bypass the fair queue but stay tiny: nothing but the gate runs while nothing
  changed.
- Changes are delivered by one task, coalesced: what arrives while ``on_change`` runs is
  delivered in the next call. A failing ``on_change`` is logged and counted, never fatal.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import sqlite3
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping

from livebi.warehouse.base import QueryTimeout, Warehouse, WarehouseError

if TYPE_CHECKING:  # the connectors are imported lazily (a deployment may lack a driver)
    from livebi.warehouse.duckdb import DuckDBWarehouse
    from livebi.warehouse.runner import QueryJob
    from livebi.warehouse.sqlite import SQLiteWarehouse

logger = logging.getLogger(__name__)

OnChange = Callable[[set[str]], Awaitable[None]]
#: Longest a poll may take before it is interrupted: a poll that slow is a bug or an overload.
MIN_POLL_TIMEOUT_S = 10.0


# -- pure parts ------------------------------------------------------------------------------


class VersionTracker:
    """The version of each watched table seen at the last poll (pure).

    :meth:`update` records new versions and returns the tables whose version moved; a table
    seen for the first time only gets its baseline.
    """

    def __init__(self) -> None:
        self._versions: dict[str, Hashable] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._versions

    def missing(self, names: Iterable[str]) -> set[str]:
        """The names without a baseline yet."""
        return {name for name in names if name not in self._versions}

    def retain(self, names: Iterable[str]) -> None:
        """Forget every table but ``names`` (a table watched again later gets a new baseline)."""
        keep = set(names)
        for name in [n for n in self._versions if n not in keep]:
            del self._versions[name]

    def clear(self) -> None:
        self._versions.clear()

    def diff(self, versions: Mapping[str, Hashable]) -> set[str]:
        """The names whose version differs from their baseline (nothing recorded)."""
        return {name for name, v in versions.items() if name in self._versions and self._versions[name] != v}

    def update(self, versions: Mapping[str, Hashable]) -> set[str]:
        """Record ``versions``; the names whose version differs from their baseline."""
        changed = self.diff(versions)
        self._versions.update(versions)
        return changed


def tables_in_sql(sql: str, dialect: str) -> set[str]:
    """The lower-case bare names of the tables ``sql`` reads (CTE names excluded).

    ``sql`` may be a ``CREATE VIEW ... AS SELECT`` (a view's definition). Unparseable SQL reads
    nothing we can name: the empty set.
    """
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        logger.debug("cannot parse %r to find its tables", sql[:200])
        return set()
    if isinstance(tree, exp.Create) and tree.expression is not None:
        tree = tree.expression
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


def resolve_relations(
    watched: Iterable[str],
    tables: Mapping[str, list[Hashable]],
    views: Mapping[str, set[str]],
) -> dict[str, list[Hashable]]:
    """Which stored relations each watched name reads (pure).

    Args:
        tables: lower-case table name -> the relations of that name (one per exposed schema).
        views: lower-case view name -> the lower-case names its definition reads.

    Returns every watched name, mapped to its tables, a view's through the views it reads
    (recursively, cycles ignored); a name that exists nowhere maps to ``[]``.
    """
    resolved: dict[str, list[Hashable]] = {}
    for name in watched:
        found: list[Hashable] = []
        seen: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            found.extend(tables.get(current, ()))
            stack.extend(views.get(current, ()))
        resolved[name] = sorted(set(found), key=repr)
    return resolved


@dataclasses.dataclass
class LastChange:
    tables: list[str]
    detected_by: str
    at: float  # time.time()


# -- the shared loop -------------------------------------------------------------------------


class ChangeDetector(abc.ABC):
    """Watches one warehouse's tables; calls ``await on_change(tables)`` when rows changed.

    Subclasses implement :meth:`_poll` (one poll of the watched tables: the names whose rows
    changed) and may override :meth:`_idle` and :meth:`_close`.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        on_change: OnChange,
        *,
        poll_interval_s: float,
        poll_timeout_s: float | None = None,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        self.warehouse = warehouse
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s or max(MIN_POLL_TIMEOUT_S, 5 * poll_interval_s)
        self._on_change = on_change
        self._watched: frozenset[str] = frozenset()
        self._wake = asyncio.Event()
        self._watching = asyncio.Event()
        self._unwatched = asyncio.Event()
        self._unwatched.set()
        self._poll_lock = asyncio.Lock()
        self._pending: set[str] = set()
        self._acknowledged: set[str] = set()
        self._turns = asyncio.Condition()  # polls and livebi's own writes take turns
        self._writers = 0
        self._polling = False
        self._pending_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Counters for /health and tests
        self.polls = 0  # finished polls that had something to watch
        self.queries = 0  # statements sent to the engine (the DuckDB file gate is none)
        self.changes = 0  # tables reported
        self.errors = 0  # failed polls, listener connects, on_change calls
        self.last_change: LastChange | None = None
        self._failing = False  # the previous poll failed

    # -- what the live service calls

    @property
    def watched(self) -> frozenset[str]:
        return self._watched

    def watch(self, tables: Iterable[str]) -> None:
        """The tables someone's live widgets read now (replaces the previous set). Empty: poll
        nothing and run no query at all. Newly watched tables are polled at once (baseline)."""
        names = frozenset(t.strip().lower() for t in tables if t and t.strip())
        added = names - self._watched
        self._watched = names
        if names:
            self._unwatched.clear()
            self._watching.set()
        else:
            self._watching.clear()
            self._unwatched.set()
        if added or not names:
            self._wake.set()

    @contextlib.asynccontextmanager
    async def writing(self, tables: Iterable[str]) -> AsyncIterator[None]:
        """Around a write by livebi itself (ingest), which signals its change on its own: no
        poll runs while it writes, and the next poll takes what it finds in ``tables`` as the
        new baseline instead of reporting the write a second time. (A write by another program
        to the same tables just before that poll is then missed until their next change;
        DuckDB has no other writers while livebi holds the file.) Writes do not wait for each
        other, only for a poll in progress."""
        async with self._turns:
            await self._turns.wait_for(lambda: not self._polling)
            self._writers += 1
        try:
            yield
        finally:
            async with self._turns:
                self._acknowledged |= {t.lower() for t in tables}
                self._writers -= 1
                self._turns.notify_all()

    async def start(self) -> None:
        """Start polling (and, for PostgreSQL, listening) in background tasks."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name=f"changes-poll-{self.warehouse.name}"),
            asyncio.create_task(self._deliver_loop(), name=f"changes-deliver-{self.warehouse.name}"),
        ]

    async def stop(self) -> None:
        """Stop the tasks and release the detector's connections (before the warehouse closes)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with self._poll_lock:
            await self._close()

    @property
    @abc.abstractmethod
    def method(self) -> str:
        """How changes are detected now, e.g. ``"poll:data_version"``, ``"poll:pg_stat"``,
        ``"listen"``."""

    def status(self) -> dict[str, Any]:
        """What /health may show about this detector."""
        last = self.last_change
        return {
            "method": self.method,
            "watched": sorted(self._watched),
            "poll_interval_s": self.poll_interval_s,
            "polls": self.polls,
            "queries": self.queries,
            "changes": self.changes,
            "errors": self.errors,
            "last_change": None if last is None else dataclasses.asdict(last),
        }

    async def poll_once(self) -> set[str]:
        """Poll now (the loop does this every ``poll_interval_s``); the tables found changed,
        which are also delivered to ``on_change`` when the detector runs."""
        async with self._poll_lock:
            watched = self._watched
            if not watched:
                await self._idle()
                return set()
            async with self._turns:
                await self._turns.wait_for(lambda: self._writers == 0)
                self._polling = True
                acknowledged, self._acknowledged = self._acknowledged, set()
            try:
                changed = await self._poll(watched) & watched - acknowledged
            except (WarehouseError, TimeoutError) as exc:
                # the engine failed or is closing: try again at the next poll (logged once a
                # streak, not every interval while a server is down)
                self.errors += 1
                message = exc.message if isinstance(exc, WarehouseError) else "timed out"
                log = logger.debug if self._failing else logger.warning
                log("change detection on %s: poll failed (retrying every %g s): %s", self.warehouse.name, self.poll_interval_s, message)
                self._failing = True
                return set()
            except Exception:
                self.errors += 1
                logger.exception("change detection on %s: poll failed", self.warehouse.name)
                return set()
            finally:
                self.polls += 1  # counted once finished, so a test can wait for whole polls
                async with self._turns:
                    self._polling = False
                    self._turns.notify_all()
            if self._failing:
                logger.info("change detection on %s: polls work again", self.warehouse.name)
                self._failing = False
        if changed:
            self._signal(changed, detected_by=self.method)
        return changed

    # -- subclass hooks

    @abc.abstractmethod
    async def _poll(self, watched: frozenset[str]) -> set[str]:
        """One poll: the names of ``watched`` whose rows changed since the previous poll."""

    async def _idle(self) -> None:
        """Nothing is watched: drop baselines (and idle connections). Runs no query."""

    async def _close(self) -> None:
        """Release connections (called by :meth:`stop`)."""

    # -- internals

    def _signal(self, tables: set[str], *, detected_by: str) -> None:
        self.changes += len(tables)
        self.last_change = LastChange(sorted(tables), detected_by, time.time())
        self._pending |= tables
        self._pending_event.set()

    async def _poll_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.poll_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self.poll_once()

    async def _deliver_loop(self) -> None:
        while True:
            await self._pending_event.wait()
            self._pending_event.clear()
            tables, self._pending = self._pending, set()
            if not tables:
                continue
            try:
                await self._on_change(tables)
            except Exception:
                self.errors += 1
                logger.exception("change detection on %s: on_change(%s) failed", self.warehouse.name, sorted(tables))


# -- DuckDB and SQLite -----------------------------------------------------------------------


class _ThreadedPolls(ChangeDetector):
    """Polls run as jobs in the warehouse's worker pool (interruptible, bounded by a timeout)."""

    warehouse: Any  # a ThreadedWarehouse

    async def _in_worker(self, work: Callable[["QueryJob"], Any]) -> Any:
        return await self.warehouse._run_query(work, timeout=self.poll_timeout_s, on_progress=None, interval=1.0)


def _qualified(schema: str, table: str) -> str:
    from livebi.warehouse.types import quote_identifier

    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


class DuckDBChangeDetector(_ThreadedPolls):
    """DuckDB: a file gate, then each watched table's identity and ``count(*)`` (see the module
    docstring).

    Polls use a cursor of the warehouse's own connection (DuckDB refuses a second connection to
    the file with another configuration), created and closed per poll that passes the gate.
    """

    warehouse: "DuckDBWarehouse"

    def __init__(self, warehouse: "DuckDBWarehouse", on_change: OnChange, *, poll_interval_s: float, **kw: Any) -> None:
        super().__init__(warehouse, on_change, poll_interval_s=poll_interval_s, **kw)
        from livebi.warehouse.duckdb import MEMORY

        self._files = None if warehouse.path == MEMORY else (warehouse.path, warehouse.path + ".wal")
        self._gate: tuple | None = None
        self._versions = VersionTracker()
        self._view_tables: dict[str, set[str]] = {}  # view SQL -> names it reads (parse cache)

    @property
    def method(self) -> str:
        return "poll:file_stat" if self._files else "poll:count"

    def file_signature(self) -> tuple | None:
        """Size, times and inode of the database file and its WAL (None: in-memory)."""
        if self._files is None:
            return None
        signature = []
        for path in self._files:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                signature.append(None)
                continue
            signature.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(signature)

    async def _idle(self) -> None:
        self._versions.clear()
        self._gate = None

    async def _poll(self, watched: frozenset[str]) -> set[str]:
        self._versions.retain(watched)
        new = self._versions.missing(watched)
        # The gate is read before the data (a write in between shows again at the next poll)
        # and recorded only once the poll succeeded.
        gate = await self._in_worker(lambda job: self.file_signature())
        moved = gate is None or gate != self._gate
        if not moved and not new:
            return set()
        versions = await self._in_worker(lambda job: self._read(job, watched if moved else new))
        changed = self._versions.update(versions)
        self._gate = gate
        return changed

    # worker side

    def _relations(self, cur: Any, names: Iterable[str]) -> dict[str, list[tuple[str, str, int]]]:
        rows = cur.execute(
            "SELECT schema_name, table_name, table_oid, NULL FROM duckdb_tables() "
            "WHERE NOT internal AND database_name = current_database() AND list_contains($schemas, schema_name) "
            "UNION ALL SELECT schema_name, view_name, view_oid, sql FROM duckdb_views() "
            "WHERE NOT internal AND NOT temporary AND database_name = current_database() "
            "AND list_contains($schemas, schema_name)",
            {"schemas": list(self.warehouse.schemas)},
        ).fetchall()
        self.queries += 1
        tables: dict[str, list[Hashable]] = {}
        views: dict[str, set[str]] = {}
        for schema, name, oid, sql in rows:
            if sql is None:
                tables.setdefault(name.lower(), []).append((schema, name, oid))
            else:
                if sql not in self._view_tables:
                    self._view_tables[sql] = tables_in_sql(sql, "duckdb")
                views.setdefault(name.lower(), set()).update(self._view_tables[sql])
        return resolve_relations(names, tables, views)  # type: ignore[return-value]

    def _read(self, job: "QueryJob", names: Iterable[str]) -> dict[str, tuple]:
        """Per name, ``((schema, table, oid), count)`` of each table it reads, in one statement
        (DuckDB answers an unfiltered ``count(*)`` from its row-group metadata). A table
        dropped and re-created has a new oid."""
        import duckdb

        cur = self.warehouse._cursor()
        try:
            job.attach(cur.interrupt)
            relations = self._relations(cur, names)
            distinct = sorted({rel for rels in relations.values() for rel in rels})
            counts: dict[tuple, int] = {}
            if distinct:
                sql = " UNION ALL ".join(
                    f"SELECT {i} AS i, count(*) AS n FROM {_qualified(schema, table)}"
                    for i, (schema, table, _oid) in enumerate(distinct)
                )
                counts = {distinct[i]: n for i, n in cur.execute(sql).fetchall()}
                self.queries += 1
        except duckdb.Error as exc:
            if job.interrupted:
                raise QueryTimeout(self.poll_timeout_s) from None
            raise WarehouseError("query_failed", f"change poll on {self.warehouse.name}: {exc}") from None
        finally:
            job.detach()
            cur.close()
        return {name: tuple((rel, counts.get(rel)) for rel in rels) for name, rels in relations.items()}


_WITHOUT_ROWID = re.compile(r"\)\s*(?:STRICT\s*,\s*)?WITHOUT\s+ROWID", re.IGNORECASE)


class SQLiteChangeDetector(_ThreadedPolls):
    """SQLite: ``PRAGMA data_version`` gate, then root page and rowid range per table (see the
    module docstring). Uses one read-only connection of its own for its lifetime (data_version
    is per connection), only ever from one worker at a time."""

    warehouse: "SQLiteWarehouse"

    def __init__(self, warehouse: "SQLiteWarehouse", on_change: OnChange, *, poll_interval_s: float, **kw: Any) -> None:
        super().__init__(warehouse, on_change, poll_interval_s=poll_interval_s, **kw)
        from livebi.warehouse.sqlite import MEMORY

        # A shared-cache memory database shares one pager: data_version never moves there.
        self._gated = warehouse.path != MEMORY
        self._conn: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._versions = VersionTracker()
        self._view_tables: dict[str, set[str]] = {}
        #: polls where the database changed but no watched table's fingerprint moved
        self.unattributed = 0

    @property
    def method(self) -> str:
        return "poll:data_version" if self._gated else "poll:fingerprint"

    def status(self) -> dict[str, Any]:
        return {**super().status(), "unattributed": self.unattributed}

    async def _idle(self) -> None:
        self._versions.clear()
        self._data_version = None

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # the warehouse's pool may be shut down already: close from a plain thread
            await asyncio.to_thread(conn.close)

    async def _poll(self, watched: frozenset[str]) -> set[str]:
        self._versions.retain(watched)
        new = self._versions.missing(watched)
        known = set(watched) - new
        version, versions = await self._in_worker(lambda job: self._read(job, watched, force=bool(new)))
        # no baseline of the gate (first poll, reopened connection): something may have moved
        moved = self._data_version is None or version != self._data_version
        if versions is None:
            return set()
        changed = self._versions.update(versions)
        self._data_version = version  # recorded only once the poll succeeded
        if moved and self._gated and known and not changed:
            # The file changed but no watched table's fingerprint did: an in-place UPDATE of
            # a watched table, or a write elsewhere. SQLite cannot tell: report them all.
            self.unattributed += 1
            changed = known
        return changed

    # worker side

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = self.warehouse.connect()
            conn.isolation_level = None  # autocommit: never hold a read transaction between polls
            self._conn = conn
            self._data_version = None  # versions of another connection mean nothing here
        return self._conn

    def _read(self, job: "QueryJob", watched: frozenset[str], *, force: bool) -> tuple[int, dict[str, tuple] | None]:
        """The data_version, then (when it moved, or ``force``) each watched name's fingerprint."""
        conn = self._connection()
        try:
            job.attach(conn.interrupt)
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            self.queries += 1
            if self._gated and version == self._data_version and not force:
                return version, None
            rows = conn.execute(
                "SELECT type, name, rootpage, sql FROM sqlite_master WHERE type IN ('table', 'view')"
            ).fetchall()
            self.queries += 1
            tables: dict[str, list[Hashable]] = {}
            views: dict[str, set[str]] = {}
            shapes: dict[str, tuple[int, bool]] = {}
            for kind, name, rootpage, sql in rows:
                if kind == "table":
                    tables.setdefault(name.lower(), []).append(name)
                    shapes[name] = (rootpage, bool(sql and _WITHOUT_ROWID.search(sql)))
                elif sql:
                    if sql not in self._view_tables:
                        self._view_tables[sql] = tables_in_sql(sql, "sqlite")
                    views.setdefault(name.lower(), set()).update(self._view_tables[sql])
            relations = resolve_relations(watched, tables, views)
            distinct = sorted({rel for rels in relations.values() for rel in rels})
            values: dict[Hashable, tuple] = {}
            if distinct:
                for i, low, high, count in conn.execute(_sqlite_fingerprint_sql(distinct, shapes)).fetchall():
                    values[distinct[i]] = (shapes[distinct[i]][0], low, high, count)
                self.queries += 1
        except sqlite3.Error as exc:
            if job.interrupted:
                raise QueryTimeout(self.poll_timeout_s) from None
            # a broken connection is reopened at the next poll
            self._conn = None
            conn.close()
            raise WarehouseError("query_failed", f"change poll on {self.warehouse.name}: {exc}") from None
        finally:
            job.detach()
        return version, {name: tuple((rel, values.get(rel)) for rel in rels) for name, rels in relations.items()}


def _sqlite_fingerprint_sql(tables: list[Hashable], shapes: Mapping[Any, tuple[int, bool]]) -> str:
    """One statement: per table, its index, ``min(rowid)``, ``max(rowid)`` and (WITHOUT ROWID
    tables only) ``count(*)``. Each min/max is a scalar subquery of its own: SQLite answers a
    lone ``min()``/``max()`` of the rowid from the b-tree's edge, but scans the table for
    ``SELECT min(rowid), max(rowid)``."""
    from livebi.warehouse.types import quote_identifier

    parts = []
    for i, table in enumerate(tables):
        q = quote_identifier(str(table))
        if shapes[table][1]:
            parts.append(f"SELECT {i}, NULL, NULL, (SELECT count(*) FROM {q})")
        else:
            parts.append(f"SELECT {i}, (SELECT min(_rowid_) FROM {q}), (SELECT max(_rowid_) FROM {q}), NULL")
    return " UNION ALL ".join(parts)


# -- choosing one ----------------------------------------------------------------------------


def change_detector_for(
    warehouse: Warehouse,
    on_change: OnChange,
    *,
    poll_interval_s: float,
    listen: bool = True,
) -> ChangeDetector:
    """The detector for ``warehouse``'s engine.

    Args:
        on_change: awaited with the names of the tables that changed.
        poll_interval_s: seconds between two polls (setting ``live_change_poll_s``).
        listen: PostgreSQL: also ``LISTEN livebi_changes`` (setting ``live_postgres_listen``).

    Raises:
        ValueError: no change detection exists for this kind of warehouse.
    """
    dialect = warehouse.dialect
    if dialect == "duckdb":
        return DuckDBChangeDetector(warehouse, on_change, poll_interval_s=poll_interval_s)  # type: ignore[arg-type]
    if dialect == "sqlite":
        return SQLiteChangeDetector(warehouse, on_change, poll_interval_s=poll_interval_s)  # type: ignore[arg-type]
    if dialect == "postgres":
        from livebi.warehouse.changes_postgres import PostgresChangeDetector

        return PostgresChangeDetector(warehouse, on_change, poll_interval_s=poll_interval_s, listen=listen)  # type: ignore[arg-type]
    raise ValueError(f"no change detection for {dialect or type(warehouse).__name__} warehouse {warehouse.name!r}")
