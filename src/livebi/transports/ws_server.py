"""``/ws`` served by the ``websockets`` library's own server, on ``ws_port``, in the same
process and event loop as the ASGI app (``ws_server = "websockets"``; issue 11).

A connect through uvicorn costs two protocol objects (HTTP, then WebSocket), the upgrade parsed
twice (httptools, then the ``websockets`` library), an ASGI scope and Starlette's wrapper; a
burst of connects is CPU-bound, and livebi spent 2-4x raw ``websockets``' CPU per connect with
its own code only a quarter of it. Here the ``websockets`` library parses the upgrade once and
hands the connection to the same session code (:func:`.websocket.serve_peer`): authentication,
limits, the auth timeout and every op behave as on the ASGI ``/ws``, which stays served too
(a deployment whose proxy forwards one port keeps working).

Protocol settings map one to one: ``max_size`` is uvicorn's ``ws_max_size`` (frames beyond it
close with 1009), pings every ``ws_ping_interval_s`` with ``ws_ping_timeout_s`` to answer,
permessage-deflate only with ``ws_compression``. Outgoing frames are pre-built and written
straight to the transport while the connection is open and not paused by flow control
(:class:`DirectWriter`, what ``websockets.broadcast()`` does); otherwise they take
``connection.send``, which waits for the socket to drain, so a slow consumer's outbox is
bounded as before. Paths other than ``/ws`` get 404.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from ..protocol import CloseCode
from ..services import Services
from .client_address import peer_limit_key
from .websocket import serve_peer
from .ws_direct import FrameWriter, text_frame

log = logging.getLogger(__name__)

PATH = "/ws"


class DirectWriter:
    """Pre-built frames straight to a ``websockets`` connection's transport, as ``broadcast()``
    writes them, while a data frame may go out (open, not paused, no fragmented send, no
    extension)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: ServerConnection) -> None:
        self._conn = conn

    def ready(self) -> bool:
        c = self._conn
        return c.protocol.state is State.OPEN and not c.paused and c.send_in_progress is None

    def write_text(self, text: str) -> None:
        self._conn.transport.write(text_frame(text))


class WebsocketsPeer:
    """A connection accepted by the ``websockets`` server, as :func:`serve_peer` needs it."""

    __slots__ = ("conn", "_query", "_closing")

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self._query: Mapping[str, str] | None = None
        self._closing: asyncio.Future[None] | None = None

    def query(self) -> Mapping[str, str]:
        if self._query is None:
            request = self.conn.request
            self._query = dict(parse_qsl(urlsplit(request.path).query)) if request is not None else {}
        return self._query

    def limit_key(self, trusted_proxies: Iterable[str]) -> str:
        remote = self.conn.remote_address
        request = self.conn.request
        lines = request.headers.get_all("X-Forwarded-For") if request is not None else ()
        return peer_limit_key(remote[0] if remote else None, lines, trusted_proxies)

    async def receive(self) -> str | bytes | None:
        try:
            return await self.conn.recv()
        except ConnectionClosed:
            return None

    async def send_text(self, text: str) -> None:
        await self.conn.send(text)

    async def close(self, code: int, reason: str) -> None:
        # As uvicorn's close under /ws: start it and return. ``connection.close`` also waits for
        # the peer's close frame (up to close_timeout), and a slow consumer that never reads
        # would hold the session that long; websockets finishes the handshake in the
        # background, and waits for it again when the handler returns.
        self._closing = asyncio.ensure_future(self.conn.close(code, reason))
        await asyncio.sleep(0)

    def direct(self) -> FrameWriter | None:
        if self.conn.protocol.extensions:
            return None
        return DirectWriter(self.conn)


def _only_ws_path(conn: ServerConnection, request: Request) -> Response | None:
    if urlsplit(request.path).path != PATH:
        return conn.respond(404, "Not Found\n")
    return None


async def start(services: Services, *, host: str, port: int) -> Server:
    """Listen on ``host:port`` with the ``websockets`` server; every connection to ``/ws`` runs
    the same session code as the ASGI ``/ws``."""
    s = services.settings

    async def handler(conn: ServerConnection) -> None:
        await serve_peer(WebsocketsPeer(conn), services)

    return await serve(
        handler, host, port,
        process_request=_only_ws_path,
        compression="deflate" if s.ws_compression else None,
        ping_interval=s.ws_ping_interval_s,
        ping_timeout=s.ws_ping_timeout_s,
        max_size=max_message_frame_bytes(s.max_message_bytes),
        server_header=None,
        logger=log,
        # asyncio's default listen backlog is 100: a burst of connects beyond it would wait for
        # SYN retries (a second or more). uvicorn's default.
        backlog=2048,
        # asyncio's default write buffer limits (64 KiB high, 16 KiB low), as under uvicorn:
        # websockets' own 32 KiB pauses a busy subscriber sooner, and a paused connection's
        # frames take the awaiting path instead of the direct writes.
        write_limit=64 * 1024,
    )


def max_message_frame_bytes(max_message_bytes: int) -> int:
    """The transport's hard limit (beyond it: 1009), the same on both servers."""
    return max(1024 * 1024, max_message_bytes * 4)



async def close_remaining(server: Server, *, timeout: float) -> None:
    """After the graceful shutdown closed every session's connection (1012): close any still
    open (one that had not reached the session yet) the same way, then wait (bounded) for
    the server's handlers to return."""
    closing = [
        conn.close(CloseCode.service_restart, "server restarting")
        for conn in server.all_connections if conn.protocol.state is State.OPEN
    ]
    try:
        if closing:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout)
        await asyncio.wait_for(server.wait_closed(), timeout)
    except TimeoutError:
        log.warning("websockets server: handlers still running %.0f s after shutdown", timeout)
