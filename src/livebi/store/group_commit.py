"""Group commit: many small writes of concurrent callers committed in one transaction.

Every question writes the store twice (recorded when asked, its outcome when answered). With
SQLite each write was its own transaction, and every commit waits for the disk (WAL, an fsync
per commit). Twenty people asking at once made twenty connections race for SQLite's single
write lock: the losers sleep in SQLite's busy handler (1, 2, 5 ... 100 ms at a time) and retry,
so a write that costs a few milliseconds alone waited up to seconds, and every question's first
progress and result waited with it (benchmarks/askers.py).

:class:`GroupCommit` queues the writes instead. One writer thread runs everything queued, in
order, in one transaction and commits once; writes arriving meanwhile form the next batch. A
caller's write is as durable as before when its await returns (the commit it was part of went
to disk), writers never contend for the lock among themselves, and the commits per second stay
bounded by the disk while the writes per second grow with the batch size.

The batch runs on a plain (synchronous) SQLAlchemy connection in that thread: through the
asyncio driver every statement is a round trip between the event loop and the driver's thread,
and on a busy loop those round trips, one after another for a whole batch, cost more than the
writes themselves.

A failing write must not fail its batch mates: when a batch fails, it is rolled back and each of
its writes is run again in a transaction of its own, so only the faulty one raises (to its own
caller). A write's callable must therefore only touch the database (it may run twice when a
neighbour fails; the first run was rolled back). A caller that stops waiting (cancelled) does
not withdraw its write: it is committed with its batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any, Callable

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

#: write(connection) -> value; runs inside a transaction it must not commit itself
Write = Callable[[Connection], Any]


class GroupCommit:
    """Serializes and batches the writes given to :meth:`run`; see the module docstring."""

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="livebi-store-writer")
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: transactions committed and writes they carried (for tests and benchmarks)
        self.commits = 0
        self.writes = 0

    async def start(self) -> None:
        """Start the writer thread and open its connection now, at startup: a server that
        limits its address space after startup (memory_headroom_mb) counts them in its size
        instead of finding the headroom smaller later."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._connect)

    def _connect(self) -> None:
        with self._engine.connect():
            pass

    async def run(self, write: Write) -> Any:
        """Run ``write`` in the next batch; returns its value once the batch is committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="livebi-store-group-commit")
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for the queued writes to be committed, then let the engine go."""
        if self._writer is not None:
            await asyncio.wait({self._writer})  # its failures went to the writes' callers
        self._thread.shutdown(wait=True)
        self._engine.dispose()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
            try:
                outcomes = await asyncio.shield(loop.run_in_executor(self._thread, self._commit, [w for w, _ in batch]))
            except BaseException as exc:  # cancelled (shutdown), or a bug: nobody may wait forever
                for _write, future in batch + self._queue:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("store closing"))
                self._queue = []
                raise
            for (_write, future), (ok, value) in zip(batch, outcomes):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self, writes: list[Write]) -> list[tuple[bool, Any]]:
        """In the writer thread: ``(True, value)`` or ``(False, exception)`` per write."""
        try:
            with self._engine.begin() as conn:
                values = [write(conn) for write in writes]
        except Exception as exc:
            if len(writes) == 1:
                return [(False, exc)]
            log.warning("a batch of %d store writes failed; retrying them one by one", len(writes), exc_info=True)
            return [self._commit_alone(write) for write in writes]
        self._count(1, len(writes))
        return [(True, value) for value in values]

    def _commit_alone(self, write: Write) -> tuple[bool, Any]:
        try:
            with self._engine.begin() as conn:
                value = write(conn)
        except Exception as exc:
            return (False, exc)
        self._count(1, 1)
        return (True, value)

    def _count(self, commits: int, writes: int) -> None:
        self.commits += commits
        self.writes += writes
