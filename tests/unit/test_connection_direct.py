"""Direct-writer connections on several event loops at once (tests and embedders run several
servers in one process, each on its own loop in its own thread): a frame queued on one loop is
written on that loop, whatever another loop queues meanwhile."""

from __future__ import annotations

import asyncio
import threading

from livebi.realtime.connection import Connection
from livebi.realtime.outbox import Outbox


class _Writer:
    def __init__(self) -> None:
        self.frames: list[str] = []

    def ready(self) -> bool:
        return True

    def write_text(self, text: str) -> None:
        self.frames.append(text)


async def _noop_send(text: str, event_id: str | None) -> None:  # pragma: no cover - direct path
    raise AssertionError("the direct path should have written this frame")


async def _noop_close(code: int, reason: str) -> None:
    return None


def _conn(name: str, writer: _Writer) -> Connection:
    return Connection(name, send=_noop_send, close=_noop_close, outbox=Outbox(max_bytes=1 << 20), transport="ws", direct=writer)


def test_frame_queued_on_one_loop_is_written_although_another_loop_queues_meanwhile() -> None:
    a_queued, b_queued = threading.Event(), threading.Event()
    writer_a, writer_b = _Writer(), _Writer()
    errors: list[BaseException] = []

    async def on_a() -> None:
        conn = _conn("a", writer_a)
        assert conn.enqueue("from-a")
        a_queued.set()
        # The other loop queues before this loop gets to run its scheduled flush.
        assert b_queued.wait(5)
        for _ in range(5):
            await asyncio.sleep(0)
        await conn.close()

    def run_a() -> None:
        try:
            asyncio.run(on_a())
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)

    async def on_b() -> None:
        assert await asyncio.to_thread(a_queued.wait, 5)
        conn = _conn("b", writer_b)
        assert conn.enqueue("from-b")
        b_queued.set()
        for _ in range(5):
            await asyncio.sleep(0)
        await conn.close()

    thread = threading.Thread(target=run_a)
    thread.start()
    asyncio.run(on_b())
    thread.join(10)
    assert not errors, errors
    assert writer_b.frames == ["from-b"]
    assert writer_a.frames == ["from-a"]


def test_frames_queued_in_one_iteration_leave_in_order_as_one_batch() -> None:
    writer = _Writer()

    async def main() -> None:
        conn = _conn("c", writer)
        for i in range(3):
            assert conn.enqueue(f'{{"n":{i}}}')
        for _ in range(3):
            await asyncio.sleep(0)
        await conn.close()

    asyncio.run(main())
    assert len(writer.frames) == 1, writer.frames
    assert all(f'"n":{i}' in writer.frames[0] for i in range(3))


def test_a_finished_loop_leaves_no_flusher_behind() -> None:
    import gc
    import weakref

    from livebi.realtime import connection

    loops = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        conn = _conn("d", _Writer())
        conn.enqueue("x")
        await asyncio.sleep(0)
        await conn.close()

    asyncio.run(main())
    gc.collect()
    assert loops[0]() is None, "the finished loop is kept alive"
    assert all(loop is not None for loop in connection._flushers.keys())
