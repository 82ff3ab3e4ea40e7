"""The WebSocket transport at ``/ws``: a thin adapter between a socket and a Session.

Authentication: a ``token`` query parameter, or an ``auth`` op as the first frame within
``auth_timeout_s``. Anything else closes the socket with 4001 (unauthenticated). Frames beyond
the transport's hard limit close it with 1009; frames over ``max_message_bytes`` get a
``too_large`` error reply and the connection stays open. Heartbeats (WebSocket pings every
``ws_ping_interval_s``) are sent by the server (uvicorn), which drops peers that stop answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..auth import AuthError
from ..protocol import CloseCode, ErrorCode, dumps, error_reply
from ..realtime.connection import Connection
from ..realtime.manager import ConnectionLimitExceeded
from ..realtime.outbox import Outbox
from ..services import Services
from ..session import Session

log = logging.getLogger(__name__)


def new_outbox(services: Services) -> Outbox:
    s = services.settings
    return Outbox(
        max_bytes=s.outgoing_queue_bytes,
        batching=s.batching,
        batch_max_messages=s.batch_max_messages,
        batch_max_bytes=s.batch_max_bytes,
    )


async def websocket_endpoint(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    settings = services.settings
    await ws.accept()
    if not settings.websocket:
        await ws.close(CloseCode.feature_disabled, "WebSocket transport disabled: use the SSE fallback")
        return
    if services.shutting_down:
        await ws.close(CloseCode.service_restart, "server restarting")
        return
    if services.connections.full():
        await ws.close(CloseCode.try_again_later, "server at max_connections")
        return

    async def send(frame: str, _event_id: str | None) -> None:
        await ws.send_text(frame)

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code, reason), timeout=5)

    conn = Connection(secrets.token_hex(6), send=send, close=close, transport="ws", outbox=new_outbox(services))
    session = Session(services, conn)
    services.connections.add(conn)
    gauge = services.metrics.connections.labels("ws")
    gauge.inc()
    try:
        token = ws.query_params.get("token")
        if token:
            try:
                await session.authenticate(token)
            except AuthError as exc:
                await _refuse(conn, ErrorCode.unauthenticated, str(exc), CloseCode.unauthenticated)
                return
            except ConnectionLimitExceeded as exc:
                await _refuse(conn, ErrorCode.too_many_connections, str(exc), CloseCode.too_many_connections)
                return
        loop = asyncio.get_running_loop()
        auth_deadline = loop.time() + settings.auth_timeout_s
        closed = asyncio.ensure_future(conn.closed_event.wait())
        while not conn.closed:
            timeout = None if conn.user is not None else max(0.0, auth_deadline - loop.time())
            receiving = asyncio.ensure_future(ws.receive())
            # Stop reading as soon as the connection is closed from our side (slow consumer,
            # shutdown): a peer that never reads would otherwise keep this endpoint alive.
            await asyncio.wait({receiving, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                if not conn.closed:
                    await conn.close(CloseCode.unauthenticated, "authentication timeout")
                break
            message = receiving.result()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await session.handle(raw)
            if conn.user is None:
                # The first frame of an unauthenticated connection must authenticate it.
                await conn.drain()
                code = CloseCode.too_many_connections if session.limit_exceeded else CloseCode.unauthenticated
                await conn.close(code, code.name)
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if "closed" in locals():
            closed.cancel()
        gauge.dec()
        if conn.close_code == CloseCode.slow_consumer:
            services.metrics.slow_consumers.inc()
        await services.disconnect(conn)
        await conn.close(CloseCode.normal, "")


async def _refuse(conn: Connection, code: ErrorCode, message: str, close_code: CloseCode) -> None:
    conn.enqueue(dumps(error_reply(None, code, message)))
    await conn.drain()
    await conn.close(close_code, close_code.name)
