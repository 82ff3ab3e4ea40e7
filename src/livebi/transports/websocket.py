"""The WebSocket transport at ``/ws``: a thin adapter between a socket and a Session.

Authentication: a ``token`` query parameter, or an ``auth`` op as the first frame within
``auth_timeout_s``. Anything else closes the socket with 4001 (unauthenticated). Frames beyond
the transport's hard limit close it with 1009; frames over ``max_message_bytes`` get a
``too_large`` error reply and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..auth import AuthError
from ..protocol import CloseCode, dumps, error_reply
from ..realtime.connection import Connection
from ..realtime.outbox import Outbox
from ..services import Services
from ..session import Session

log = logging.getLogger(__name__)


async def websocket_endpoint(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    settings = services.settings
    await ws.accept()
    if not settings.websocket:
        await ws.close(CloseCode.feature_disabled, "WebSocket transport disabled: use the SSE fallback")
        return

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code, reason), timeout=5)

    conn = Connection(
        secrets.token_hex(6),
        send=ws.send_text,
        close=close,
        transport="ws",
        outbox=Outbox(
            max_bytes=settings.outgoing_queue_bytes,
            batching=settings.batching,
            batch_max_messages=settings.batch_max_messages,
            batch_max_bytes=settings.batch_max_bytes,
        ),
    )
    session = Session(services, conn)
    token = ws.query_params.get("token")
    if token:
        try:
            await session.authenticate(token)
        except AuthError as exc:
            conn.enqueue(dumps(error_reply(None, "unauthenticated", str(exc))))
            await conn.drain()
            await conn.close(CloseCode.unauthenticated, "unauthenticated")
            return

    services.connections.add(conn)
    gauge = services.metrics.connections.labels("ws")
    gauge.inc()
    loop = asyncio.get_running_loop()
    auth_deadline = loop.time() + settings.auth_timeout_s
    try:
        while not conn.closed:
            timeout = None if conn.user is not None else max(0.0, auth_deadline - loop.time())
            try:
                message = await asyncio.wait_for(ws.receive(), timeout)
            except asyncio.TimeoutError:
                await conn.close(CloseCode.unauthenticated, "authentication timeout")
                break
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await session.handle(raw)
            if conn.user is None:
                # The first frame of an unauthenticated connection must authenticate it.
                await conn.drain()
                await conn.close(CloseCode.unauthenticated, "unauthenticated")
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        gauge.dec()
        services.connections.remove(conn)
        if conn.close_code == CloseCode.slow_consumer:
            services.metrics.slow_consumers.inc()
        await conn.close(CloseCode.normal, "")
