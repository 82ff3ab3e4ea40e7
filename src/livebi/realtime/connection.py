"""One client connection's writer: the I/O shell around an :class:`Outbox`.

Transports (WebSocket now, SSE later) give it two coroutines, ``send(text)`` and
``close(code, reason)``. Everyone who wants to reach the client calls :meth:`enqueue`, which
never blocks: a dedicated writer task drains the outbox, so a slow socket delays only its own
client. When the outbox overflows, the connection is closed as a slow consumer; the client
recovers what it missed from channel history when it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from ..protocol import CloseCode
from .outbox import Outbox

log = logging.getLogger(__name__)

SendFn = Callable[[str], Awaitable[None]]
CloseFn = Callable[[int, str], Awaitable[None]]


class Connection:
    def __init__(self, conn_id: str, *, send: SendFn, close: CloseFn, outbox: Outbox, transport: str) -> None:
        self.id = conn_id
        self.transport = transport
        self.user: Any = None  # the authenticated user (livebi.auth.User) or None
        self._send = send
        self._close = close
        self._outbox = outbox
        self._wakeup = asyncio.Event()
        self._closed = False
        self.close_code: int | None = None
        self.frames_sent = 0
        self._writer = asyncio.create_task(self._write_loop(), name=f"writer-{conn_id}")

    @property
    def closed(self) -> bool:
        return self._closed

    def enqueue(self, frame: str) -> bool:
        """Queue a frame for the client; False when the connection is closed or overflowed."""
        if self._closed:
            return False
        if not self._outbox.put(frame):
            log.warning("connection %s: outgoing queue over %d bytes, closing as slow consumer", self.id, self._outbox.max_bytes)
            asyncio.get_running_loop().create_task(self.close(CloseCode.slow_consumer, "slow consumer"))
            return False
        self._wakeup.set()
        return True

    async def close(self, code: int = CloseCode.normal, reason: str = "") -> None:
        """Stop writing and close the transport (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.close_code = int(code)
        self._wakeup.set()
        if self._writer is not asyncio.current_task():
            self._writer.cancel()
        try:
            await self._close(int(code), reason)
        except Exception:  # the peer may already be gone
            log.debug("connection %s: close failed", self.id, exc_info=True)

    async def drain(self, timeout: float = 1.0) -> None:
        """Wait (bounded) until everything queued has been written."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._outbox) and not self._closed and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def _write_loop(self) -> None:
        try:
            while not self._closed:
                await self._wakeup.wait()
                self._wakeup.clear()
                while not self._closed:
                    frame = self._outbox.take()
                    if frame is None:
                        break
                    await self._send(frame)
                    self.frames_sent += 1
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the transport broke: the reader side will notice and clean up
            log.debug("connection %s: write failed: %s", self.id, exc)
            self._closed = True
