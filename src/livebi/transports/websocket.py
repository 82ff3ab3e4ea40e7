"""The WebSocket transport at ``/ws``: a thin adapter between a socket and a Session.

Authentication: a single-use ``ticket`` query parameter (``POST /api/ticket``), or an ``auth``
op with the token as the first frame within ``auth_timeout_s``. Long-lived tokens are refused
in the URL (``?token=``: an error reply naming tickets, then 4001), since proxies and access
logs keep URLs. Anything else closes the socket with 4001 (unauthenticated).

Sockets waiting for their auth op do not count against ``max_connections``: they are limited
per client address (``max_unauthenticated_per_address``, beyond which they are closed at once
with 4029) and overall (``max_unauthenticated``, 1013). An authenticated connection whose token
is revoked is closed with 4001: at once on this process; elsewhere on the next op or by the
revocation sweep (:meth:`Services.close_revoked`), within about ``user_cache_s``.

Frames beyond the transport's hard limit close it with 1009; frames over ``max_message_bytes``
get a ``too_large`` error reply and the connection stays open. Heartbeats (WebSocket pings
every ``ws_ping_interval_s``) are sent by the server (uvicorn), which drops peers that stop
answering.

Outgoing frames are written as pre-built frames straight to the socket's transport when
uvicorn's protocol allows it (``ws_direct_frames``, :mod:`.ws_direct`), else through the ASGI
send.

The same code (:func:`serve_peer`) also serves WebSockets accepted by the ``websockets``
library's own server on ``ws_port`` (``ws_server = "websockets"``, :mod:`.ws_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Iterable, Mapping, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..auth import AuthError
from ..protocol import CloseCode, ErrorCode, dumps, error_reply
from ..realtime.connection import Connection
from ..realtime.manager import ConnectionLimitExceeded, ServerFull, TooManyUnauthenticated
from ..realtime.outbox import Outbox
from ..services import Services
from ..session import Session
from .client_address import of_connection
from .ws_direct import FrameWriter, direct_writer

log = logging.getLogger(__name__)


def new_outbox(services: Services) -> Outbox:
    s = services.settings
    return Outbox(
        max_bytes=s.outgoing_queue_bytes,
        batching=s.batching,
        batch_max_messages=s.batch_max_messages,
        batch_max_bytes=s.batch_max_bytes,
    )


class WebSocketPeer(Protocol):
    """What the shared connection code needs from an accepted WebSocket, whichever server
    accepted it (uvicorn through ASGI, :class:`StarletteSocket`; the ``websockets`` library's
    own server, :mod:`.ws_server`)."""

    def query(self) -> Mapping[str, str]: ...

    def limit_key(self, trusted_proxies: Iterable[str]) -> str: ...

    async def receive(self) -> str | bytes | None:
        """The next message; None once the peer is gone."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    def direct(self) -> FrameWriter | None: ...


class StarletteSocket:
    """A WebSocket accepted by uvicorn, through Starlette's ASGI wrapper."""

    __slots__ = ("ws",)

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    def query(self) -> Mapping[str, str]:
        return self.ws.query_params

    def limit_key(self, trusted_proxies: Iterable[str]) -> str:
        return of_connection(self.ws, trusted_proxies)

    async def receive(self) -> str | bytes | None:
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        return raw

    async def send_text(self, text: str) -> None:
        await self.ws.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def direct(self) -> FrameWriter | None:
        return direct_writer(self.ws.scope)


async def websocket_endpoint(ws: WebSocket) -> None:
    """``/ws`` on the ASGI server."""
    await ws.accept()
    await serve_peer(StarletteSocket(ws), ws.app.state.services)


async def serve_peer(peer: WebSocketPeer, services: Services) -> None:
    """One accepted WebSocket's whole life: admission, authentication, then ops until it closes."""
    settings = services.settings
    if not settings.websocket:
        await peer.close(CloseCode.feature_disabled, "WebSocket transport disabled: use the SSE fallback")
        return
    if services.shutting_down:
        await peer.close(CloseCode.service_restart, "server restarting")
        return
    if services.connections.full():
        await peer.close(CloseCode.try_again_later, "server at max_connections")
        return

    async def send(frame: str, _event_id: str | None) -> None:
        await peer.send_text(frame)

    # The reader (this task) must stop as soon as the connection is closed from our side (slow
    # consumer, shutdown, revocation): a peer that never reads would otherwise keep this endpoint
    # waiting in receive(). Closing cancels that wait, and only that wait; no helper task per
    # connection (issue 11: idle connections must be cheap).
    reader = asyncio.current_task()
    receiving = False
    interrupted = False

    async def close(code: int, reason: str) -> None:
        nonlocal interrupted
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.close(code, reason), timeout=5)
        if receiving and not interrupted and asyncio.current_task() is not reader:
            interrupted = True
            reader.cancel()

    direct = peer.direct() if settings.ws_direct_frames else None
    conn = Connection(
        secrets.token_hex(6), send=send, close=close, transport="ws", outbox=new_outbox(services), direct=direct
    )
    session = Session(services, conn)
    gauge = services.metrics.ws_connections
    gauge.inc()
    try:
        if not await _authenticate_from_url(peer, services, conn):
            return
        loop = asyncio.get_running_loop()
        auth_deadline = loop.time() + settings.auth_timeout_s
        while not conn.closed:
            receiving = True
            try:
                if conn.user is None:
                    async with asyncio.timeout_at(auth_deadline):
                        raw = await peer.receive()
                else:  # no timeout object held by every idle connection (issue 11)
                    raw = await peer.receive()
            except TimeoutError:
                if not conn.closed:
                    await conn.close(CloseCode.unauthenticated, "authentication timeout")
                break
            except asyncio.CancelledError:
                if not interrupted:
                    raise  # cancelled from outside (server shutdown): not ours to swallow
                reader.uncancel()
                break
            finally:
                receiving = False
            if raw is None:
                break
            if conn.user is not None:
                try:  # revoked elsewhere (another process, the CLI): noticed on the next op
                    await services.auth.check_current(conn.user)
                except AuthError as exc:
                    await conn.close(CloseCode.unauthenticated, str(exc))
                    break
            await session.handle(raw)
            if conn.user is None:
                # The first frame of an unauthenticated connection must authenticate it.
                await conn.drain()
                code = CloseCode.unauthenticated
                if session.limit_exceeded:
                    code = CloseCode.try_again_later if services.connections.full() else CloseCode.too_many_connections
                await conn.close(code, code.name)
                break
    finally:
        gauge.dec()
        if conn.close_code == CloseCode.slow_consumer:
            services.metrics.slow_consumers.inc()
        await services.disconnect(conn)
        await conn.close(CloseCode.normal, "")


async def _authenticate_from_url(peer: WebSocketPeer, services: Services, conn: Connection) -> bool:
    """Authenticate with ``?ticket=``, or hold the connection as unauthenticated; False when
    the connection was refused (and closed)."""
    params = peer.query()
    if "token" in params:
        await _refuse(
            conn, ErrorCode.unauthenticated,
            "tokens are not accepted in URLs (proxies and logs keep them): connect with ?ticket= "
            "from POST /api/ticket, or send the token in a first auth op",
            CloseCode.unauthenticated,
        )
        return False
    ticket = params.get("ticket")
    if ticket is None:
        try:
            services.connections.admit_unauthenticated(conn, peer.limit_key(services.settings.trusted_proxies))
        except TooManyUnauthenticated as exc:
            close_code = CloseCode.too_many_unauthenticated if exc.per_address else CloseCode.try_again_later
            await _refuse(conn, ErrorCode.too_many_connections, str(exc), close_code)
            return False
        return True
    try:
        services.connections.bind_user(conn, await services.auth.redeem_ticket(ticket))
    except AuthError as exc:
        await _refuse(conn, ErrorCode.unauthenticated, str(exc), CloseCode.unauthenticated)
        return False
    except ServerFull as exc:
        await _refuse(conn, ErrorCode.too_many_connections, str(exc), CloseCode.try_again_later)
        return False
    except ConnectionLimitExceeded as exc:
        await _refuse(conn, ErrorCode.too_many_connections, str(exc), CloseCode.too_many_connections)
        return False
    return True


async def _refuse(conn: Connection, code: ErrorCode, message: str, close_code: CloseCode) -> None:
    conn.enqueue(dumps(error_reply(None, code, message)))
    await conn.drain()
    await conn.close(close_code, close_code.name)
