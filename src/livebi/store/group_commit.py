"""Group commit: many small writes of concurrent callers committed in one transaction.

Every question writes the store twice (recorded when asked, its outcome when answered). With
SQLite each write is its own transaction, and every commit waits for the disk (WAL, an fsync
per commit). Twenty people asking at once made twenty connections race for SQLite's single
write lock: the losers sleep in SQLite's busy handler (1, 2, 5 ... 100 ms at a time) and retry,
so a write that costs a few milliseconds alone waited up to seconds, and every question's first
progress and result waited with it (benchmarks/askers.py).

:class:`GroupCommit` queues the writes instead. One writer task runs everything queued, in
order, in one transaction and commits once; writes arriving meanwhile form the next batch. A
caller's write is as durable as before when its await returns (the commit it was part of went
to disk), writers never contend for the lock among themselves, and the commits per second stay
bounded by the disk while the writes per second grow with the batch size.

A failing write must not fail its batch mates: when a batch fails, it is rolled back and each of
its writes is run again in a transaction of its own, so only the faulty one raises (to its own
caller). A write's callable must therefore only touch the database (it may run twice when a
neighbour fails; the first run was rolled back). A caller that stops waiting (cancelled) does
not withdraw its write: it is committed with its batch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

#: write(connection) -> value; runs inside a transaction it must not commit itself
Write = Callable[[AsyncConnection], Awaitable[Any]]


class GroupCommit:
    """Serializes and batches the writes given to :meth:`run`; see the module docstring."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: transactions committed and writes they carried (for tests and benchmarks)
        self.commits = 0
        self.writes = 0

    async def run(self, write: Write) -> Any:
        """Run ``write`` in the next batch; returns its value once the batch is committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="livebi-store-group-commit")
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for the queued writes to be committed."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
            try:
                await self._commit(batch)
            except BaseException as exc:  # cancelled (shutdown): nobody may wait forever
                for _write, future in batch + self._queue:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("store closing"))
                self._queue = []
                raise

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        values: list[Any] = []
        try:
            async with self._engine.begin() as conn:
                for write, _future in batch:
                    values.append(await write(conn))
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            log.warning("a batch of %d store writes failed; retrying them one by one", len(batch), exc_info=True)
            for write, future in batch:
                try:
                    async with self._engine.begin() as conn:
                        value = await write(conn)
                except Exception as exc:
                    future.set_exception(exc)
                else:
                    self._count(1, 1)
                    future.set_result(value)
            return
        self._count(1, len(batch))
        for (_write, future), value in zip(batch, values):
            future.set_result(value)

    def _count(self, commits: int, writes: int) -> None:
        self.commits += commits
        self.writes += writes
