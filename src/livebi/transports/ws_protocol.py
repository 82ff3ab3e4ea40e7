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

**The native path** (setting ``ws_native_upgrade``, on by default). A burst of connects is
CPU-bound, and between uvicorn's upgrade and livebi's session each connect paid for an ASGI
scope (headers copied into a list of byte pairs, the path unquoted, the app state copied), a
``websocket.connect`` message, a task entering the app, Starlette's ``WebSocket`` with its state
machine, a ``websocket.accept`` message that rebuilds the 101's headers and formats an access
log line whatever the log level, and Starlette's query-string and header parsing for the
admission checks. For ``/ws`` on livebi's own app the protocol now sends the 101 itself as soon
as the handshake is accepted and runs the same session code (:func:`.websocket.serve_peer`)
with a small peer (:class:`NativePeer`) that reads uvicorn's inbox and sends through uvicorn's
``send``: framing, flow control, keepalive, the close handshake and shutdown are uvicorn's, as
before. Any other path, an app wrapped by other middleware, a ``root_path``, or the setting off
take the ASGI path unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl

from starlette.websockets import WebSocketDisconnect

from .client_address import peer_limit_key
from .ws_direct import protocol_writer

#: the path served natively (the app's own WebSocket route)
NATIVE_PATH = "/ws"


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

        #: True once this connection was accepted on the native path (see the module doc)
        native = False

        def handle_connect(self, event: Any) -> None:
            services = None if self.root_path else native_services(self.app, event.path)
            if services is None:
                super().handle_connect(event)
                return
            response = self.conn.accept(event)
            self.handshake_initiated = True
            if response.status_code != 101:  # a bad handshake: uvicorn's own reply, as on the ASGI path
                super().handle_connect(event)
                return
            self.native = True
            self.request = self.response = None  # nothing kept from the handshake
            query = event.path.partition("?")[2]
            forwarded = tuple(event.headers.get_all("X-Forwarded-For"))  # a copy: the headers are cleared below
            # What uvicorn's accept adds (its Server and Date headers), without the app's message.
            del response.headers["Date"]
            response.headers.update(
                (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in self.default_headers
            )
            if self.logger.isEnabledFor(logging.INFO):
                client = "%s:%d" % self.client if self.client else ""
                self.logger.info('%s - "WebSocket %s" [accepted]', client, event.path)
            # websockets' parser generator keeps the Request as a local for the socket's life.
            event.headers.clear()
            if self.transport.is_closing():
                return  # gone during the handshake: connection_lost already said so
            self.handshake_complete = True
            self.conn.send_response(response)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.start_keepalive()
            task = self.loop.create_task(self._serve_native(services, NativePeer(self, query, forwarded)))
            task.add_done_callback(self.on_task_complete)
            self.tasks.add(task)

        async def _serve_native(self, services: Any, peer: "NativePeer") -> None:
            from .websocket import serve_peer  # that module imports the services: not at import time

            try:
                await serve_peer(peer, services)
            except ClientDisconnected:
                pass
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: serve_peer answers everything a client can send
                self.logger.exception("Exception in the WebSocket session")
                services.metrics.internal_errors.labels("websocket").inc()
            finally:
                if self.close_timer is None:  # no close handshake under way: nothing more to wait for
                    self.transport.close()

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


try:
    from uvicorn.protocols.utils import ClientDisconnected
except ImportError:  # pragma: no cover
    ClientDisconnected = OSError  # type: ignore[assignment,misc]


def native_services(app: Any, path: str) -> Any:
    """The services of a livebi app that serves ``path`` natively, else None (the ASGI path).
    Only livebi's own app, unwrapped (uvicorn's loaded app is the app itself when proxy headers
    and trace logging are off, as ``build_server`` sets them), with its ``/ws`` route."""
    if path.partition("?")[0] != NATIVE_PATH:
        return None
    transport = getattr(app, "ws_transport", None)
    if transport is None or NATIVE_PATH not in transport.routes or getattr(app, "root_path", ""):
        return None
    services = getattr(app.state, "services", None)
    if services is None or not services.settings.ws_native_upgrade:
        return None
    return services


class NativePeer:
    """A ``/ws`` connection on the native path, as :func:`.websocket.serve_peer` needs it: the
    same answers as the ASGI path's ``StarletteSocket`` (query parameters parsed as Starlette
    does, blank values kept; a send on a dropped socket raises ``WebSocketDisconnect``)."""

    __slots__ = ("_proto", "_query", "_forwarded")

    def __init__(self, proto: Any, query: str, forwarded: tuple[str, ...]) -> None:
        self._proto = proto
        self._query: str | Mapping[str, str] = query
        self._forwarded = forwarded

    def query(self) -> Mapping[str, str]:
        query = self._query
        if isinstance(query, str):
            query = self._query = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        return query

    def limit_key(self, trusted_proxies: Iterable[str]) -> str:
        client = self._proto.client
        return peer_limit_key(client[0] if client else None, self._forwarded, trusted_proxies)

    async def receive(self) -> str | bytes | None:
        message = await self._proto.receive()
        if message["type"] != "websocket.receive":
            return None  # websocket.disconnect
        text = message.get("text")
        return text if text is not None else (message.get("bytes") or b"")

    async def send_text(self, text: str) -> None:
        try:
            await self._proto.send({"type": "websocket.send", "text": text})
        except OSError:  # ClientDisconnected, as Starlette turns it
            raise WebSocketDisconnect(code=1006) from None

    async def close(self, code: int, reason: str) -> None:
        await self._proto.send({"type": "websocket.close", "code": code, "reason": reason or ""})

    def direct(self) -> Any:
        return protocol_writer(self._proto)


def protocol_class() -> Any:
    """What to pass as uvicorn's ``ws``: the lean protocol, or ``"auto"`` where it cannot be."""
    return LeanWebSocketProtocol if LeanWebSocketProtocol is not None else "auto"
