"""uvicorn's ``websockets-sansio`` WebSocket protocol with smaller per-connection state.

Thousands of idle connections each keep one uvicorn protocol object (issue 11: at most 20 KiB
of server memory per idle, authenticated, subscribed connection). tracemalloc over 2,000 idle
livebi connections showed uvicorn's own state as the largest part of what is ours to change:

- an ``asyncio.Queue`` for received messages (three deques and an ``asyncio.Event``, each deque
  a 64-slot block: about 3 KiB) and an ``asyncio.Event`` for flow control (about 0.8 KiB), for
  a queue that holds at most a frame or two and has a single reader;
- the handshake's ``Request`` and ``Response`` (two ``Headers`` objects with their dicts and
  lists: about 2.5 KiB), kept for the socket's whole life though nothing reads them after the
  101 response was sent;
- the HTTP protocol object that handed the socket over, left for the cyclic collector.

:class:`LeanWebSocketProtocol` is the same class with a list-based inbox and a flag-with-future
in their place, drops the handshake objects once the connection is accepted, and breaks the
HTTP protocol's reference cycle when it takes the socket over. Behaviour
(ordering, flow control, keepalive, close handshake) is uvicorn's, unchanged: only the
containers differ. :func:`protocol_class` returns it when the installed uvicorn has the
sans-io implementation, else ``"auto"`` (uvicorn's own choice).
"""

from __future__ import annotations

import asyncio
from typing import Any


def _cancelled() -> bool:
    """Whether the current task itself is being cancelled (not just a future it awaited)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class _Waitable:
    """A future made only while someone waits, shared by everyone waiting at once."""

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    async def _park(self) -> None:
        """Wait until the next :meth:`_wake` (callers re-check their condition)."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        except asyncio.CancelledError:
            if _cancelled():
                raise
            # Another waiter sharing the future was cancelled, not this one: the caller waits again.

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)


class Inbox(_Waitable):
    """The part of ``asyncio.Queue`` that uvicorn's protocol uses (``put_nowait``, ``get``,
    ``empty``, ``qsize``), unbounded, without its deques and Event."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Any] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        self._wake()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    async def get(self) -> Any:
        while not self._items:
            await self._park()
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item


class Flag(_Waitable):
    """``asyncio.Event``'s ``is_set``/``set``/``clear``/``wait`` (uvicorn's ``writable``, which
    is waited on only while flow control pauses the socket)."""

    __slots__ = ("_set",)

    def __init__(self, value: bool = False) -> None:
        super().__init__()
        self._set = value

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        self._wake()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        while not self._set:
            await self._park()
        return True


try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # uvicorn without the sans-io implementation, or without websockets
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]


if WebSocketsSansIOProtocol is not None:

    class LeanWebSocketProtocol(WebSocketsSansIOProtocol):  # type: ignore[valid-type,misc]
        """uvicorn's sans-io protocol with the small containers above (see the module doc)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = Inbox()  # type: ignore[assignment]
            self.writable = Flag(True)  # type: ignore[assignment]

        def connection_made(self, transport: Any) -> None:
            # Called by the HTTP protocol handing the socket over. uvicorn's httptools protocol
            # and its parser reference each other (the parser holds its bound callbacks), so it
            # would wait for the cyclic collector, which gc_tuning runs rarely and whose
            # periodic freeze can pin such garbage for an hour: break the cycle, so reference
            # counting frees it as soon as the upgrade returns. It parses nothing after this.
            http = transport.get_protocol()
            if http is not self and type(http).__name__ == "HttpToolsProtocol" and hasattr(http, "parser"):
                http.parser = None
            super().connection_made(transport)

        async def send(self, message: Any) -> None:
            await super().send(message)
            request = getattr(self, "request", None)
            if self.handshake_complete and request is not None:
                # The 101 went out (or the handshake ended otherwise): nothing reads these again.
                # websockets' parser generator keeps the Request for the socket's life (a local
                # of its frame): empty its headers too.
                request.headers.clear()
                self.request = self.response = None
else:  # pragma: no cover
    LeanWebSocketProtocol = None  # type: ignore[assignment,misc]


def protocol_class() -> Any:
    """What to pass as uvicorn's ``ws``: the lean protocol, or ``"auto"`` where it cannot be."""
    return LeanWebSocketProtocol if LeanWebSocketProtocol is not None else "auto"
