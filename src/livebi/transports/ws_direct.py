"""Pre-built WebSocket frames written straight to a socket's transport: the fan-out fast path.

A publication is serialized once (the hub does it); what stayed per subscriber was the trip of
each frame through a writer task, Starlette's ``WebSocket.send``, uvicorn's ASGI ``send`` and
the WebSocket library's framing, about 2x the CPU of the ``websockets`` library's own
``broadcast()`` (issue 11, ``benchmarks/realtime.py``). Here a text frame is built once (an
unmasked server frame is a 2-10 byte header followed by the UTF-8 payload, so every subscriber
gets the same bytes) and written with one ``transport.write`` from a ``call_soon`` callback,
exactly like ``broadcast()``.

It is only used while the protocol says a plain data frame may go out: the handshake is done,
no close frame was sent or received, no extension (permessage-deflate) was negotiated and the
transport is not paused for flow control. Otherwise the connection falls back to the ASGI send
(its writer task), which waits for the transport to drain; that is also what bounds a slow
consumer's outbox, so the slow-consumer cut-off works as before.

The writer reaches uvicorn's protocol object through the ASGI ``send`` callable, which uvicorn
passes as a bound method of it: :class:`WebSocketTransportMiddleware` (outermost, before any
middleware can wrap ``send``) records it in the scope. Each of uvicorn's three WebSocket
implementations keeps its state differently; an unknown one (another server, a newer uvicorn
that renamed things) gets ``None`` and the ordinary path, never a wrong write.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from starlette.websockets import WebSocket

SCOPE_KEY = "livebi.ws_send"


class FrameWriter(Protocol):
    def ready(self) -> bool: ...

    def write_text(self, text: str) -> None: ...


class WebSocketTransportMiddleware:
    """Serves livebi's WebSocket endpoints straight from the ASGI server, and records uvicorn's
    own ``send`` in their scope.

    ``routes`` maps a path to an endpoint taking a Starlette ``WebSocket``. Such a connection
    skips the framework's routing, dependency and exception layers, each of which stays on the
    stack (a coroutine frame, exit stacks, closures) for the connection's whole life: at ten
    thousand idle connections that was kilobytes each (issue 11). Other scopes pass through.
    Used as pure ASGI middleware, or called first by the application itself (:meth:`serve`,
    what ``livebi.app`` does, so that not even the framework's outermost layers are entered).
    """

    def __init__(self, app: Any, routes: dict[str, Any] | None = None) -> None:
        self.app = app
        self.routes = routes or {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not await self.serve(scope, receive, send):
            await self.app(scope, receive, send)

    async def serve(self, scope: Any, receive: Any, send: Any, *, app: Any = None) -> bool:
        """Serve ``scope`` when it is a WebSocket to one of ``routes`` (then True); ``app`` is
        put in the scope as the framework would (``WebSocket.app``) when it is not there yet."""
        if scope["type"] != "websocket":
            return False
        # In place rather than a copy (a dict per idle connection): the scope is the one
        # uvicorn made for this connection alone, and nothing outside reads this key.
        scope[SCOPE_KEY] = send
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        endpoint = self.routes.get(path)
        if endpoint is None:
            return False
        if app is not None:
            scope.setdefault("app", app)
        await endpoint(WebSocket(scope, receive=receive, send=send))
        return True


_last_text: str | None = None
_last_frame = b""


def text_frame(text: str) -> bytes:
    """One unmasked, final text frame carrying ``text``.

    A fan-out asks for the same string once per subscriber: the last frame is kept, so it is
    built once per publication (the cache is checked by identity, never by comparing text).
    """
    global _last_text, _last_frame
    if text is _last_text:
        return _last_frame
    data = text.encode()
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    _last_text, _last_frame = text, head + data
    return _last_frame


class _Writer:
    """Writes to uvicorn's protocol's transport; subclasses say when a data frame may go out."""

    __slots__ = ("_proto", "_open")

    def __init__(self, proto: Any, open_state: Any) -> None:
        self._proto = proto
        self._open = open_state

    def write_text(self, text: str) -> None:
        self._proto.transport.write(text_frame(text))


class _SansIOWriter(_Writer):
    """uvicorn's ``websockets-sansio`` implementation (its default with websockets >= 14), and
    livebi's subclass of it (:mod:`.ws_protocol`)."""

    __slots__ = ()

    def ready(self) -> bool:
        # OPEN implies the handshake is done and no close frame went either way (sending or
        # receiving one moves the state on); disconnected covers a connection that just dropped.
        p = self._proto
        return p.conn.state is self._open and p.writable.is_set() and not p.disconnected


class _LegacyWriter(_Writer):
    """uvicorn's ``websockets`` implementation (the legacy websockets protocol)."""

    __slots__ = ()

    def ready(self) -> bool:
        p = self._proto
        return p.state is self._open and not p._paused and not p.closed_event.is_set() and not p.transport.is_closing()


class _WsprotoWriter(_Writer):
    """uvicorn's ``wsproto`` implementation."""

    __slots__ = ()

    def ready(self) -> bool:
        p = self._proto
        return (
            p.handshake_complete and not p.close_sent and p.writable.is_set()
            and p.conn.state is self._open and not p.transport.is_closing()
        )


def direct_writer(scope: Any) -> FrameWriter | None:
    """A writer for an accepted WebSocket's transport, or None when frames must take the ASGI path."""
    return protocol_writer(getattr(scope.get(SCOPE_KEY), "__self__", None))


def protocol_writer(proto: Any) -> FrameWriter | None:
    """A writer for uvicorn's protocol object ``proto`` of an accepted WebSocket, or None."""
    if proto is None or getattr(proto, "transport", None) is None:
        return None
    module = type(proto).__module__
    if module in ("uvicorn.protocols.websockets.websockets_sansio_impl", "livebi.transports.ws_protocol"):
        from websockets.protocol import State

        if proto.conn.extensions:
            return None
        return _SansIOWriter(proto, State.OPEN)
    if module == "uvicorn.protocols.websockets.websockets_impl":
        from websockets.protocol import State

        if proto.extensions or not hasattr(proto, "_paused"):
            return None
        return _LegacyWriter(proto, State.OPEN)
    if module == "uvicorn.protocols.websockets.wsproto_impl":
        from wsproto.connection import ConnectionState

        if proto.config.ws_per_message_deflate:  # wsproto does not tell what was negotiated
            return None
        return _WsprotoWriter(proto, ConnectionState.OPEN)
    return None
