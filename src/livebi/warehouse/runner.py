"""Run a blocking query in a worker thread while the event loop stays free.

DuckDB and sqlite3 block the calling thread for as long as the engine works, so their
connectors hand the work to a thread and await it. This module is the part they share:

- a :class:`QueryJob` the worker and the loop both see: rows fetched so far, the engine's own
  progress, and how to interrupt the engine;
- :func:`run_blocking`, which awaits the worker and, meanwhile, ticks ``on_progress`` on the
  event loop at a fixed interval (at least twice a second) even while the engine produces
  nothing; on timeout or cancellation it interrupts the engine and waits briefly for the worker
  to let go of its connection before raising.

The worker never calls back into the loop: it only updates counters that the ticker reads, so a
fast query does not flood the loop with one callback per chunk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Callable, Sequence, TypeVar

from livebi.warehouse.base import (
    Progress,
    ProgressCallback,
    QueryTimeout,
    ResourcesExceeded,
    Schema,
    Warehouse,
    WarehouseError,
)
from livebi.warehouse.bounded import ResultBudget

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: How long a timed-out or cancelled query may take to give its thread back before we stop
#: waiting for it (the engine was interrupted; it normally stops within milliseconds).
INTERRUPT_GRACE_S = 5.0


class QueryInterrupted(Exception):
    """Raised inside a worker when the loop asked it to stop."""


class QueryJob:
    """State shared between the worker thread running a query and the event loop."""

    def __init__(self) -> None:
        self.rows_processed = 0
        self.stage = "executing"  # "executing" while the engine works, then "fetching"
        self._interrupted = threading.Event()
        self._lock = threading.Lock()
        self._interrupter: Callable[[], None] | None = None
        self._percent_probe: Callable[[], float | None] | None = None
        self._best_percent: float | None = None

    # -- worker side

    def attach(
        self,
        interrupter: Callable[[], None],
        percent_probe: Callable[[], float | None] | None = None,
    ) -> None:
        """Register how to stop the engine (and read its progress) for this query.

        Raises :class:`QueryInterrupted` when the loop already asked to stop, so a query that
        was cancelled before it started never starts.
        """
        with self._lock:
            self._interrupter = interrupter
            self._percent_probe = percent_probe
        if self._interrupted.is_set():
            raise QueryInterrupted()

    def detach(self) -> None:
        """Forget the engine handles (call before closing the connection or cursor)."""
        with self._lock:
            self._interrupter = None
            self._percent_probe = None

    def check(self) -> None:
        """Raise :class:`QueryInterrupted` if the loop asked to stop (call between chunks)."""
        if self._interrupted.is_set():
            raise QueryInterrupted()

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    # -- loop side

    def interrupt(self) -> None:
        """Ask the engine to stop; safe from any thread, idempotent."""
        self._interrupted.set()
        with self._lock:
            interrupter = self._interrupter
            if interrupter is not None:
                try:
                    interrupter()
                except Exception:  # noqa: BLE001 - the connection may be closing already
                    pass

    def percent(self) -> float | None:
        """The engine's progress, never decreasing during one query (None when unknown)."""
        with self._lock:
            probe = self._percent_probe
            if probe is not None:
                try:
                    value = probe()
                except Exception:  # noqa: BLE001 - cursor closed between check and call
                    value = None
                if value is not None and 0 <= value <= 100:
                    if self._best_percent is None or value > self._best_percent:
                        self._best_percent = value
        return self._best_percent

    def snapshot(self) -> Progress:
        return Progress(percent=self.percent(), rows_processed=self.rows_processed, detail=self.stage)


def fetch_bounded(fetchmany: Callable[[int], Sequence[Sequence[Any]]], budget: ResultBudget, job: QueryJob) -> None:
    """Fetch rows into ``budget`` until the engine has no more or a bound is reached.

    Each fetch asks for ``budget.chunk_size()`` rows, so wide rows come in small chunks;
    ``job`` sees the rows received so far and may interrupt between chunks.
    """
    job.stage = "fetching"
    while not budget.full:
        job.check()
        chunk = fetchmany(budget.chunk_size())
        if not chunk:
            break
        budget.add(chunk)
        job.rows_processed = budget.rows_seen


async def run_blocking(
    executor: concurrent.futures.Executor,
    work: Callable[[QueryJob], T],
    *,
    timeout: float,
    on_progress: ProgressCallback | None,
    interval: float = 0.25,
) -> T:
    """Run ``work(job)`` in ``executor``; report progress; honour timeout and cancellation.

    Raises:
        QueryTimeout: ``work`` ran past ``timeout`` seconds; the engine was interrupted.
        asyncio.CancelledError: the awaiting task was cancelled; the engine was interrupted.
        Exception: whatever ``work`` raised.
    """
    loop = asyncio.get_running_loop()
    job = QueryJob()
    future = loop.run_in_executor(executor, work, job)
    ticker = asyncio.create_task(tick_progress(job, on_progress, interval)) if on_progress else None
    try:
        try:
            async with asyncio.timeout(timeout):
                # shield: a timeout must not drop the future while the thread still runs
                result = await asyncio.shield(future)
        except TimeoutError:
            job.interrupt()
            await _let_go(future)
            raise QueryTimeout(timeout) from None
        except asyncio.CancelledError:
            job.interrupt()
            await _let_go(future)
            raise
    finally:
        if ticker is not None:
            ticker.cancel()
    if on_progress is not None:
        job.stage = "done"
        safe_call(on_progress, Progress(percent=100.0, rows_processed=job.rows_processed, detail="done"))
    return result


async def _let_go(future: asyncio.Future) -> None:
    """Wait (bounded) for an interrupted worker, and swallow what it raises.

    Waiting lets the worker close its cursor before the caller moves on; a second cancellation
    of the caller still propagates.
    """
    try:
        if not future.done():
            await asyncio.wait({future}, timeout=INTERRUPT_GRACE_S)
    finally:
        if future.done():
            _retrieve(future)
        else:
            future.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future) -> None:
    # Mark the worker's exception as retrieved: it is the interruption we caused.
    if not future.cancelled():
        future.exception()


async def tick_progress(job: QueryJob, on_progress: ProgressCallback, interval: float) -> None:
    """Report ``job``'s progress every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        safe_call(on_progress, job.snapshot())


def safe_call(callback: ProgressCallback, progress: Progress) -> None:
    # A faulty progress consumer must not fail or stall the query it observes.
    try:
        callback(progress)
    except Exception:  # noqa: BLE001
        logger.exception("progress callback failed")


class ThreadedWarehouse(Warehouse):
    """A warehouse whose driver blocks (DuckDB, sqlite3): every call runs on its own pool of
    worker threads, never on the event loop. Subclasses implement the blocking
    ``_load_schema()`` and ``_fingerprint()``."""

    def __init__(self, name: str, url: str, *, max_workers: int, thread_prefix: str) -> None:
        super().__init__(name, url)
        self.max_concurrent_queries = max_workers
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_prefix)
        # Schema reads and fingerprints get a thread of their own: the NLP agent checks the
        # fingerprint every few seconds while the next questions wait for it, and behind busy
        # query workers that check waited for a whole query (every asker stalled with it).
        self._meta_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{thread_prefix}-meta")
        # Started now (while the server starts up) rather than at the first question: a server
        # that limits its address space after startup then counts the thread in its size.
        self._meta_executor.submit(int)
        self._closed = False
        # Work running in the pool: close() interrupts the queries and waits for every worker
        # to let go of the engine before the subclass closes its connections.
        self._busy = threading.Condition()
        self._running = 0
        self._jobs: set[QueryJob] = set()

    def _check_open(self) -> None:
        if self._closed:
            raise WarehouseError("warehouse_unavailable", f"warehouse {self.name} is closed")

    def _tracked(self, fn: Callable[..., T], job: QueryJob | None = None) -> Callable[..., T]:
        def run(*args: Any) -> T:
            with self._busy:
                if self._closed:
                    raise WarehouseError("warehouse_unavailable", f"warehouse {self.name} is closed")
                self._running += 1
                if job is not None:
                    self._jobs.add(job)
            try:
                return fn(*args)
            finally:
                with self._busy:
                    self._running -= 1
                    if job is not None:
                        self._jobs.discard(job)
                    self._busy.notify_all()

        return run

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._tracked(fn), *args)

    async def _run_meta(self, fn: Callable[..., T]) -> T:
        """Run a short catalog read (schema, fingerprint) beside the query workers."""
        self._check_open()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._meta_executor, self._tracked(fn))
        except RuntimeError:
            self._check_open()  # the pool refuses new work once shut down
            raise

    async def _run_query(
        self,
        work: Callable[[QueryJob], T],
        *,
        timeout: float,
        on_progress: ProgressCallback | None,
        interval: float,
    ) -> T:
        """:func:`run_blocking` in this warehouse's pool; a query that close() interrupted
        fails with ``warehouse_unavailable``, one that ran out of memory (``MemoryError``: the
        server's address-space limit, SQLite's heap limit) with ``resources_exceeded``."""
        self._check_open()

        def tracked(job: QueryJob) -> T:
            return self._tracked(work, job)(job)

        try:
            return await run_blocking(self._executor, tracked, timeout=timeout, on_progress=on_progress, interval=interval)
        except QueryInterrupted:
            if self._closed:
                raise WarehouseError("warehouse_unavailable", f"warehouse {self.name} was closed") from None
            raise
        except MemoryError as exc:
            # The allocation that failed belonged to this query; its memory is freed with it.
            logger.warning("warehouse %s: a query ran out of memory: %s", self.name, str(exc) or "MemoryError")
            raise ResourcesExceeded(str(exc) or "out of memory") from None
        except RuntimeError:
            # the pool refuses new work once shut down
            self._check_open()
            raise

    async def _read_schema(self) -> Schema:
        return await self._run_meta(self._load_schema)

    async def schema_fingerprint(self) -> str:
        return await self._run_meta(self._fingerprint)

    def _load_schema(self) -> Schema:
        raise NotImplementedError

    def _fingerprint(self) -> str:
        raise NotImplementedError

    async def close(self) -> None:
        """Refuse new work, interrupt running queries and wait (bounded) for every worker to
        let go of the engine; subclasses then close their connections."""
        with self._busy:
            self._closed = True
            jobs = list(self._jobs)
        for job in jobs:
            job.interrupt()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._meta_executor.shutdown(wait=False, cancel_futures=True)
        if not await asyncio.to_thread(self._wait_idle, INTERRUPT_GRACE_S):
            logger.warning("warehouse %s: a worker was still busy %.0f s after close", self.name, INTERRUPT_GRACE_S)

    def _wait_idle(self, timeout: float) -> bool:
        with self._busy:
            return self._busy.wait_for(lambda: self._running == 0, timeout)

    @property
    def idle(self) -> bool:
        with self._busy:
            return self._running == 0
