"""One client connection's writer: the I/O shell around an :class:`Outbox`.

Transports (WebSocket now, SSE later) give it two coroutines, ``send(text)`` and
``close(code, reason)``. Everyone who wants to reach the client calls :meth:`enqueue`, which
never blocks: a dedicated writer task drains the outbox, so a slow socket delays only its own
client. When the outbox overflows, the connection is closed as a slow consumer; the client
recovers what it missed from channel history when it reconnects.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any, Awaitable, Callable

from ..protocol import CloseCode
from .outbox import Outbox

log = logging.getLogger(__name__)

SendFn = Callable[[str, "str | None"], Awaitable[None]]
CloseFn = Callable[[int, str], Awaitable[None]]


def encode_positions(positions: dict[str, tuple[str, int]]) -> str:
    """A compact, URL-safe token of every channel position (the SSE event id)."""
    raw = json.dumps([[ch, ep, seq] for ch, (ep, seq) in positions.items()], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_positions(token: str, *, limit: int = 1000) -> dict[str, tuple[str, int]]:
    """Inverse of :func:`encode_positions`; raises ValueError on anything malformed."""
    try:
        items = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(items, list) or len(items) > limit:
            raise ValueError("not a position list")
        out = {}
        for ch, ep, seq in items:
            if not (isinstance(ch, str) and isinstance(ep, str) and isinstance(seq, int) and seq >= 0):
                raise ValueError("bad position")
            out[ch] = (ep, seq)
        return out
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed position token: {exc}") from None


class Connection:
    """Args:
    send: writes one frame (with the client's position after it, for transports that
        resume from an event id) to the transport.
    close: closes the transport with a close code and reason.
    track_positions: keep per-channel positions and attach them to each publication as
        its event id (the SSE transport resumes from it with ``Last-Event-ID``).
    """

    def __init__(
        self,
        conn_id: str,
        *,
        send: SendFn,
        close: CloseFn,
        outbox: Outbox,
        transport: str,
        track_positions: bool = False,
    ) -> None:
        self.id = conn_id
        self.transport = transport
        self.user: Any = None  # the authenticated user (livebi.auth.User) or None
        self.track_positions = track_positions
        self.positions: dict[str, tuple[str, int]] = {}
        self._send = send
        self._close = close
        self._outbox = outbox
        self._wakeup = asyncio.Event()
        self._closed = False
        self.closed_event = asyncio.Event()  # set by close(): lets the reader stop waiting
        self.close_code: int | None = None
        self.frames_sent = 0
        self._writer = asyncio.create_task(self._write_loop(), name=f"writer-{conn_id}")

    @property
    def closed(self) -> bool:
        return self._closed

    def enqueue_publication(self, channel: str, epoch: str, seq: int, frame: str) -> bool:
        event_id = None
        if self.track_positions:
            self.positions[channel] = (epoch, seq)
            event_id = encode_positions(self.positions)
        return self.enqueue(frame, event_id)

    def enqueue(self, frame: str, event_id: str | None = None) -> bool:
        """Queue a frame for the client; False when the connection is closed or overflowed."""
        if self._closed or self._outbox.overflowed:
            return False
        if not self._outbox.put(frame, event_id):
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
        finally:
            self.closed_event.set()  # after the close frame went out (or its send timed out)

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
                    item = self._outbox.take()
                    if item is None:
                        break
                    await self._send(*item)
                    self.frames_sent += 1
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the transport broke: the reader side will notice and clean up
            log.debug("connection %s: write failed: %s", self.id, exc)
            self._closed = True
