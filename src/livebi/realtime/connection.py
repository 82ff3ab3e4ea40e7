"""One client connection's writer: the I/O shell around an :class:`Outbox`.

Transports (WebSocket now, SSE later) give it two coroutines, ``send(text)`` and
``close(code, reason)``. Everyone who wants to reach the client calls :meth:`enqueue`, which
never blocks: a dedicated writer task drains the outbox, so a slow socket delays only its own
client. When the outbox overflows, the connection is closed as a slow consumer; the client
recovers what it missed from channel history when it reconnects.

A transport that can write a frame synchronously (``direct``, see
:mod:`livebi.transports.ws_direct`) is flushed instead by one ``call_soon`` callback per loop
iteration for every such connection with something queued (:class:`_Flusher`): no task switch
per frame, and frames queued in the same iteration still leave as one batch. The writer task is then created only when the direct
writer is not ready (flow control, closing): it takes the awaiting path, and while it writes the
callback leaves the outbox alone, so frames never overtake each other.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import weakref
from typing import Any, Awaitable, Callable, Protocol

from ..protocol import CloseCode
from .outbox import Outbox

log = logging.getLogger(__name__)

SendFn = Callable[[str, "str | None"], Awaitable[None]]
CloseFn = Callable[[int, str], Awaitable[None]]


class DirectWriter(Protocol):
    def ready(self) -> bool: ...

    def write_text(self, text: str) -> None: ...


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


class _Flusher:
    """The connections of one event loop with frames waiting for their direct writer, flushed
    once per loop iteration. One per loop (:func:`_flusher_for`): several servers may run in
    one process, each on its own loop in its own thread, and a flusher shared between them
    would drop one loop's pending connections when another loop queued."""

    __slots__ = ("pending", "scheduled")  # no reference to its loop: the loop's entry could never go

    def __init__(self) -> None:
        self.pending: list[Connection] = []
        self.scheduled = False

    def add(self, conn: "Connection") -> None:
        self.pending.append(conn)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        pending, self.pending, self.scheduled = self.pending, [], False
        for conn in pending:
            conn._flush_direct()


_flushers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher]" = weakref.WeakKeyDictionary()
_flushers_lock = threading.Lock()


def _flusher_for(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        with _flushers_lock:  # loops in other threads may create theirs at the same moment
            flusher = _flushers.setdefault(loop, _Flusher())
    return flusher


class Connection:
    """One client connection's state and writer (kept small: thousands stay open and idle).

    Args:
    send: writes one frame (with the client's position after it, for transports that
        resume from an event id) to the transport.
    close: closes the transport with a close code and reason.
    track_positions: keep per-channel positions and attach them to each publication as
        its event id (the SSE transport resumes from it with ``Last-Event-ID``).
    direct: writes a frame synchronously when ``ready()``; frames without an event id only.
    """

    __slots__ = (
        "id", "transport", "user", "track_positions", "positions", "_send", "_close", "_outbox", "_wakeup",
        "_closed", "close_code", "frames_sent", "_writer", "_direct", "_flusher", "_flush_pending", "_writing",
    )

    def __init__(
        self,
        conn_id: str,
        *,
        send: SendFn,
        close: CloseFn,
        outbox: Outbox,
        transport: str,
        track_positions: bool = False,
        direct: DirectWriter | None = None,
    ) -> None:
        self.id = conn_id
        self.transport = transport
        self.user: Any = None  # the authenticated user (livebi.auth.User) or None
        self.track_positions = track_positions
        self.positions: dict[str, tuple[str, int]] = {}
        self._send = send
        self._close = close
        self._outbox = outbox
        self._wakeup: asyncio.Event | None = None  # with the writer task (idle connections are small)
        self._closed = False
        self.close_code: int | None = None
        self.frames_sent = 0
        self._direct = direct
        self._flusher = _flusher_for(asyncio.get_running_loop()) if direct is not None else None
        self._flush_pending = False
        self._writing = False  # the writer task is taking frames: the direct flush must wait
        self._writer: asyncio.Task | None = None
        if direct is None:
            self._start_writer()

    def _start_writer(self) -> None:
        self._wakeup = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"writer-{self.id}")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def direct(self) -> bool:
        """Frames are written straight to the transport when it is ready (see the module doc)."""
        return self._direct is not None

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
        if self._direct is None:
            self._wakeup.set()
        elif not self._flush_pending:
            self._flush_pending = True
            self._flusher.add(self)
        return True

    def _flush_direct(self) -> None:
        """Write what waits straight to the transport (one batch when several frames wait)."""
        self._flush_pending = False
        if self._closed or self._writing:
            return  # the writer task drains the outbox itself, in order
        if not self._direct.ready():  # paused for flow control, or closing: the awaiting path
            if self._writer is None:
                self._start_writer()
            self._wakeup.set()
            return
        item = self._outbox.take()
        if item is None:
            return
        self._direct.write_text(item[0])
        self.frames_sent += 1
        if len(self._outbox):  # more than one batch waited: the rest on the next iteration
            self._flush_pending = True
            self._flusher.add(self)

    async def close(self, code: int = CloseCode.normal, reason: str = "") -> None:
        """Stop writing and close the transport (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.close_code = int(code)
        if self._wakeup is not None:
            self._wakeup.set()
        if self._writer is not None and self._writer is not asyncio.current_task():
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
                self._writing = True
                try:
                    while not self._closed:
                        item = self._outbox.take()
                        if item is None:
                            break
                        await self._send(*item)
                        self.frames_sent += 1
                finally:
                    self._writing = False
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the transport broke: the reader side will notice and clean up
            log.debug("connection %s: write failed: %s", self.id, exc)
            self._closed = True
