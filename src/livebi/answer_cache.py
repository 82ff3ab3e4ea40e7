"""Work an answer does not redo: caches and single flight for the ask pipeline (issue 11).

An answer costs the server 16-20 ms of CPU (docs/architecture.md, "Concurrent askers"); when
many people ask the same questions most of it is the same work done again. Three kinds of reuse,
each keyed so that it cannot answer wrongly:

- :class:`LRU`: bounded caches of pure CPU work. The NLP agent keys a parse by the semantic
  model it was made with (a new model, after a schema change, is a new key), the dialect, the
  date relative periods count from and the question; the data agent keys a validation by the
  warehouse, the schema object it checked against, the limits and the SQL text.
- :class:`QueryFlights`: askers whose validated SQL on the same warehouse is identical and
  running at the same moment share one execution: a joiner gets the rows of a query that was
  running when it asked, and never of one that started before a change was signalled on that
  warehouse (the pipeline keys flights by the change count). Each asker keeps its own progress
  stream; the execution is interrupted only when every asker waiting for it was cancelled.
- :class:`ResultCache`: the result of a validated SQL on a warehouse, reused while the data has
  not changed. An entry is dropped when a table it reads changes (the warehouse's change
  detector, :mod:`livebi.warehouse.changes`, watching the tables of the cached entries; and
  livebi's own ingest), after ``max_age_s`` whatever happens, and least recently used first
  past ``max_bytes``. A result is only stored when the detector had a baseline for each table
  before the query started and no change was signalled while it ran, and never when the SQL
  calls a function whose value changes by itself (``now()``, ``random()``...).

Everything here runs on the event loop (lookups are dictionary reads); the parse and the
validation that fill the caches still run in worker threads. A cached or shared
:class:`~livebi.warehouse.base.QueryResult` is handed to several answers at once: nothing may
change it in place (nothing does: charts and publications read it and build their own data).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from typing import Any, Awaitable, Callable, Generic, Hashable, Iterable, TypeVar

from .warehouse.base import QueryResult

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class LRU(Generic[K, V]):
    """A dictionary of at most ``max_entries`` entries, least recently used dropped first.
    ``max_entries`` 0 stores nothing."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(0, max_entries)
        self._data: collections.OrderedDict[K, V] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        try:
            value = self._data[key]
        except KeyError:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        if not self.max_entries:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


# -- what validation tells the result cache ---------------------------------------------------

#: Functions whose value changes without any data changing: a query calling one is never
#: served from the result cache (single flight still applies: its askers asked at one moment).
VOLATILE_FUNCTIONS = frozenset(
    "now today current_date current_time current_timestamp localtime localtimestamp "
    "current_localtimestamp get_current_timestamp get_current_time transaction_timestamp "
    "statement_timestamp clock_timestamp timeofday random rand randn uuid gen_random_uuid "
    "random_uuid uuidv4 uuidv7 setseed nextval currval lastval changes total_changes "
    "last_insert_rowid txid_current pg_backend_pid".split()
)


@dataclasses.dataclass(frozen=True)
class ValidatedSQL:
    """A statement that passed validation, as it runs, and what the result cache needs."""

    sql: str
    #: lower-case bare names of the tables it reads (what change detection reports)
    tables: frozenset[str]
    #: it calls none of :data:`VOLATILE_FUNCTIONS` and reads at least one table
    cacheable: bool


def describe_validated(sql: str, dialect: str) -> ValidatedSQL:
    """:func:`describe_tree` of ``sql`` parsed again (validation passes its own tree instead)."""
    import sqlglot

    return describe_tree(sqlglot.parse_one(sql, read=dialect), sql)


def describe_tree(tree: Any, sql: str) -> ValidatedSQL:
    """The tables the statement ``tree`` (a sqlglot tree of the validated ``sql``) reads, and
    whether its result may be cached."""
    from sqlglot import exp

    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables = frozenset(t.name.lower() for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes)
    volatile = False
    for fn in tree.find_all(exp.Func):
        name = (fn.name if isinstance(fn, exp.Anonymous) else fn.sql_name()).lower()
        if name in VOLATILE_FUNCTIONS or isinstance(fn, (exp.CurrentDate, exp.CurrentTime, exp.CurrentTimestamp,
                                                         exp.CurrentDatetime, exp.Rand)):
            volatile = True
            break
    return ValidatedSQL(sql, tables, cacheable=bool(tables) and not volatile)


# -- single flight ----------------------------------------------------------------------------

#: progress(*args) as the pipeline reports it; a flight repeats each report to every asker in it
ProgressFn = Callable[..., None]


class _Flight:
    def __init__(self) -> None:
        self.listeners: list[ProgressFn] = []
        self.waiters = 0
        self.task: asyncio.Future[Any] | None = None

    def report(self, *args: Any, **kw: Any) -> None:
        for listener in list(self.listeners):
            listener(*args, **kw)


class QueryFlights:
    """Identical executions asked for at the same moment run once.

    ``await run(key, start, progress)`` joins the execution running for ``key`` or starts one
    with ``start(report)``; ``report`` repeats each progress report to every asker waiting for
    it, each through its own ``progress``. Returns ``(result, joined)``. An asker that is
    cancelled leaves the execution to the others; the last one to leave interrupts it (and waits
    for it to stop, as an asker alone would). Exceptions reach every asker in the flight.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self.started = 0  # executions started (each one ran ``start`` once)
        self.joined = 0  # askers that shared an execution someone else started

    def running(self, key: Hashable) -> bool:
        return key in self._flights

    async def run(self, key: Hashable, start: Callable[[ProgressFn], Awaitable[T]],
                  progress: ProgressFn) -> tuple[T, bool]:
        flight = self._flights.get(key)
        joined = flight is not None
        if flight is None:
            flight = _Flight()
            flight.listeners.append(progress)
            flight.task = asyncio.ensure_future(start(flight.report))
            self._flights[key] = flight
            self.started += 1
            flight.task.add_done_callback(lambda task, f=flight: self._done(key, f, task))
        else:
            flight.listeners.append(progress)
            self.joined += 1
        flight.waiters += 1
        task = flight.task
        assert task is not None
        try:
            return await asyncio.shield(task), joined
        except asyncio.CancelledError:
            if not task.done() and flight.waiters == 1:
                # the last asker left: stop the engine, and let nobody join a dying flight
                if self._flights.get(key) is flight:
                    del self._flights[key]
                task.cancel()
                await asyncio.wait({task})
            raise
        finally:
            flight.waiters -= 1
            flight.listeners.remove(progress)

    def _done(self, key: Hashable, flight: _Flight, task: asyncio.Future[Any]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: every asker gets it through shield


# -- the result cache -------------------------------------------------------------------------

#: (warehouse, validated SQL, row cap, byte bound, value length bound): what decides the rows
ResultKey = tuple[str, str, int, int, int]
#: detector_factory(warehouse_name, on_change) -> a ChangeDetector (watch, poll_once, start, stop)
DetectorFactory = Callable[[str, Callable[[set[str]], Awaitable[None]]], Any]


@dataclasses.dataclass
class CachedResult:
    result: QueryResult
    warehouse: str
    tables: frozenset[str]
    as_of: float  # time.time() when the query that read it started
    stored: float  # clock() when it was stored
    size: int  # estimated bytes

    def age_s(self, now_wall: float) -> float:
        return max(0.0, now_wall - self.as_of)


#: rows whose values :func:`result_size` counts; the others are taken to be alike
SIZE_SAMPLE_ROWS = 200


def result_size(result: QueryResult) -> int:
    """Estimated memory of ``result``'s rows (what the byte bound counts): a few tens of bytes
    per value plus the text, counted on at most :data:`SIZE_SAMPLE_ROWS` rows spread over the
    result and scaled (cheap enough for the event loop; every result is already bounded by
    ``max_result_bytes`` while it is fetched)."""
    rows = result.rows
    step = max(1, len(rows) // SIZE_SAMPLE_ROWS)
    sample = rows[::step]
    counted = 0
    for row in sample:
        counted += 56 + 8 * len(row)
        for value in row:
            counted += len(value) + 49 if isinstance(value, str) else 24
    per_row = counted / len(sample) if sample else 0
    return 200 + 60 * len(result.columns) + int(per_row * len(rows))


class ResultCache:
    """Results of validated SQL per warehouse, reused while their tables did not change.

    Args:
        max_age_s: an entry older than this (from when its query started) is never served;
            0 turns the cache off.
        max_bytes: estimated memory of all entries; least recently used dropped first.
        detector_factory: the change detector of a warehouse; without one (or for a warehouse
            whose engine has none) nothing is stored, since nothing could tell a change.
    """

    def __init__(self, *, max_age_s: float, max_bytes: int, detector_factory: DetectorFactory | None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._detector_factory = detector_factory
        self._clock = clock
        self._wall = wall
        self._entries: collections.OrderedDict[ResultKey, CachedResult] = collections.OrderedDict()
        self._bytes = 0
        self._by_table: dict[tuple[str, str], set[ResultKey]] = {}
        self._generation: collections.Counter[str] = collections.Counter()  # changes signalled
        self._detectors: dict[str, Any] = {}
        self._ready: dict[tuple[str, str], float] = {}  # (warehouse, table) -> clock() of its baseline
        self._baselining: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # counters for /metrics, /health and tests
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.invalidated = 0

    @property
    def enabled(self) -> bool:
        return self.max_age_s > 0 and self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ResultKey) -> CachedResult | None:
        """The entry for ``key`` if it is younger than ``max_age_s`` (its tables unchanged)."""
        entry = self._entries.get(key)
        if entry is not None and self._wall() - entry.as_of >= self.max_age_s:
            self._drop(key)
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def generation(self, warehouse: str) -> int:
        """Changes signalled on ``warehouse`` so far: a query compares it before and after."""
        return self._generation[warehouse]

    def prepare(self, warehouse: str, tables: Iterable[str]) -> None:
        """Before a query that may be stored runs: make sure its tables are watched (a table
        watched now is baselined by a poll that starts now; results read before that poll
        ended are not stored)."""
        if not self.enabled:
            return
        detector = self._detector(warehouse)
        if detector is None:
            return
        new = {(warehouse, t) for t in tables} - self._ready.keys() - self._baselining
        if not new:
            return
        self._baselining |= new
        detector.watch(self._watched(warehouse))
        self._spawn(self._baseline(warehouse, detector, new))

    def put(self, key: ResultKey, tables: frozenset[str], result: QueryResult, *, started: float,
            as_of: float, generation: int, size: int) -> bool:
        """Store ``result`` of the query that started at ``started`` (clock) / ``as_of`` (wall)
        when ``generation`` was current; False when it may not be (a change was signalled
        while it ran, a table had no baseline yet, too large, cache off)."""
        warehouse = key[0]
        if not self.enabled or size > self.max_bytes or self._generation[warehouse] != generation:
            return False
        for table in tables:
            ready = self._ready.get((warehouse, table))
            if ready is None or ready > started:
                return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = CachedResult(result, warehouse, tables, as_of, self._clock(), size)
        self._bytes += size
        for table in tables:
            self._by_table.setdefault((warehouse, table), set()).add(key)
        self.stored += 1
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        return True

    def invalidate(self, warehouse: str, tables: Iterable[str]) -> int:
        """Rows of ``tables`` in ``warehouse`` changed: drop every entry reading one of them
        (and refuse to store what was running meanwhile). Returns how many were dropped."""
        self._generation[warehouse] += 1
        dropped = 0
        for table in {t.lower() for t in tables}:
            for key in list(self._by_table.get((warehouse, table), ())):
                self._drop(key)
                dropped += 1
        self.invalidated += dropped
        return dropped

    def clear(self) -> None:
        for key in list(self._entries):
            self._drop(key)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        detectors, self._detectors = self._detectors, {}
        for detector in detectors.values():
            if detector is not None:
                await detector.stop()

    def status(self) -> dict[str, Any]:
        """What /health shows: counters, size, the detectors watching cached tables."""
        return {
            "entries": len(self._entries), "bytes": self._bytes, "hits": self.hits, "misses": self.misses,
            "stored": self.stored, "invalidated": self.invalidated,
            "detectors": {name: d.status() for name, d in self._detectors.items() if d is not None},
        }

    # -- internals

    def _drop(self, key: ResultKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.size
        for table in entry.tables:
            keys = self._by_table.get((entry.warehouse, table))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_table[(entry.warehouse, table)]

    def _watched(self, warehouse: str) -> set[str]:
        return {t for (w, t) in (*self._ready, *self._baselining) if w == warehouse}

    def _detector(self, warehouse: str) -> Any:
        if warehouse not in self._detectors:
            detector = None
            if self._detector_factory is not None:
                async def on_change(tables: set[str], _warehouse: str = warehouse) -> None:
                    self.invalidate(_warehouse, tables)

                try:
                    detector = self._detector_factory(warehouse, on_change)
                except ValueError as exc:  # no change detection for this kind of warehouse
                    log.warning("result cache: no change detection on warehouse %s (%s); its results are not cached",
                                warehouse, exc)
            self._detectors[warehouse] = detector
            if detector is not None:
                self._spawn(detector.start())
        return self._detectors[warehouse]

    async def _baseline(self, warehouse: str, detector: Any, tables: set[tuple[str, str]]) -> None:
        """One poll that starts after ``tables`` are watched records their baseline; results
        of queries that started after it ended may be stored."""
        try:
            errors = detector.errors
            await detector.poll_once()
            if detector.errors == errors:
                now = self._clock()
                for table in tables:
                    self._ready[table] = now
        finally:
            self._baselining -= tables

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("result cache: background task failed", exc_info=t.exception())

        task.add_done_callback(done)
