"""The HTTP fallback: an SSE stream of publications plus ops POSTed as JSON.

Same session, same ops, same publications as the WebSocket; for clients behind proxies that
break WebSockets, and for the HTTP-only mode.

- ``GET /sse`` opens a stream, authenticated by a single-use ``?ticket=`` from
  ``POST /api/ticket`` (EventSource cannot set headers) or by ``Authorization: Bearer``. A
  long-lived token in the URL (``?token=``) is refused with 401: proxies and logs keep URLs.
  Browsers reconnect a dropped EventSource by themselves with the same URL, whose ticket is used
  up: clients close it and open a new one with a fresh ticket and ``?last_event_id=``. Its first event is ``{"type": "open", "conn_id", "user", "resumed"}``; then
  every publication follows as ``data:`` with ``id:`` set to the client's position on all its
  channels. A client reconnecting with ``Last-Event-ID`` (browsers do it by themselves) is
  resubscribed to those channels from those positions; ``resumed`` says, per channel, whether
  everything missed was recovered.
- ``POST /sse/ops?conn=<conn_id>`` (bearer token, or the browser's session cookie with its
  ``X-CSRF-Token``) runs one op on that stream's session and
  answers with the op's reply; publications it causes arrive on the stream. When the stream's
  credential was revoked (on another process: this one closes such streams at once), the
  stream is closed with 4001 and the POST answered 401.
- The stream ends with ``{"type": "close", "code", "reason"}`` (slow consumer 4008, restart
  1012), and sends a comment line after ``sse_heartbeat_s`` of silence so dead peers are found.
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio
import logging
import secrets
from typing import Any, AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..auth import AuthError
from ..protocol import CloseCode, ProtocolError, dumps
from ..realtime.connection import Connection, decode_positions, encode_positions
from ..realtime.manager import ConnectionLimitExceeded, ServerFull
from ..services import Services
from ..session import Replay, Session
from .browser_session import authenticated_user
from .websocket import new_outbox

log = logging.getLogger(__name__)
router = APIRouter()

_END = object()


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


class SSEStream:
    """One SSE connection: a Connection whose writer feeds the HTTP response body."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)  # backpressure: one chunk in flight
        self.conn = Connection(
            secrets.token_hex(8),
            send=self._send,
            close=self._close,
            outbox=new_outbox(services),
            transport="sse",
            track_positions=True,
        )
        self.session = Session(services, self.conn)
        self._closing: tuple[int, str] | None = None
        self._gone = False  # the client disconnected
        self.ops_lock = asyncio.Lock()

    async def _send(self, frame: str, event_id: str | None) -> None:
        chunk = (f"id: {event_id}\n" if event_id else "") + f"data: {frame}\n\n"
        await self._queue.put(chunk)

    async def _close(self, code: int, reason: str) -> None:
        self._closing = (code, reason)
        await self.services.disconnect(self.conn)  # no more deliveries from now on
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)  # wake the body; if it is blocked sending, it checks after

    async def _watch_disconnect(self, request: Request) -> None:
        """Under ASGI 2.4 servers Starlette notices a gone client only when a write fails;
        listen for ``http.disconnect`` so an idle stream is cleaned up at once."""
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                break
        self._gone = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

    async def body(self, request: Request) -> AsyncIterator[str]:
        heartbeat = self.services.settings.sse_heartbeat_s
        watcher = asyncio.create_task(self._watch_disconnect(request))
        yield "retry: 1000\n\n"
        try:
            while self._closing is None:
                try:
                    item = await asyncio.wait_for(self._queue.get(), heartbeat)
                except asyncio.TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                if item is _END or self._gone:
                    break
                yield item
            if self._closing is not None and not self._gone:
                code, reason = self._closing
                yield f"data: {dumps({'type': 'close', 'code': code, 'reason': reason})}\n\n"
        finally:
            watcher.cancel()
            # Starlette cancels this generator when the client goes away; the cleanup must run
            # all the same (anyio re-raises cancellation at every await in a cancelled scope).
            self.services.sse_streams.pop(self.conn.id, None)
            self.services.metrics.connections.labels("sse").dec()
            if self.conn.close_code == CloseCode.slow_consumer:
                self.services.metrics.slow_consumers.inc()
            with anyio.CancelScope(shield=True):
                await self.services.disconnect(self.conn)
                await self.conn.close(CloseCode.normal, "")


@router.get("/sse")
async def sse_stream(request: Request) -> StreamingResponse:
    services: Services = request.app.state.services
    if services.shutting_down:
        raise HTTPException(503, "server restarting", headers={"Retry-After": "1"})
    if services.connections.full():
        raise HTTPException(503, "server at max_connections", headers={"Retry-After": "5"})
    if "token" in request.query_params:
        raise HTTPException(
            401, "tokens are not accepted in URLs (proxies and logs keep them): use ?ticket= from "
            "POST /api/ticket, or an Authorization: Bearer header",
        )
    token, ticket = _bearer(request), request.query_params.get("ticket")
    if not token and not ticket:
        raise HTTPException(401, "missing credentials: ?ticket= (from POST /api/ticket) or Authorization: Bearer")
    stream = SSEStream(services)
    try:
        if token:
            user = await stream.session.authenticate(token)
        else:
            user = await services.auth.redeem_ticket(ticket)
            services.connections.bind_user(stream.conn, user)
    except AuthError as exc:
        await stream.conn.close(CloseCode.unauthenticated, "")
        raise HTTPException(401, str(exc)) from None
    except ServerFull as exc:
        await stream.conn.close(CloseCode.try_again_later, "")
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None
    except ConnectionLimitExceeded as exc:
        await stream.conn.close(CloseCode.too_many_connections, "")
        raise HTTPException(429, str(exc)) from None
    services.sse_streams[stream.conn.id] = stream
    services.metrics.connections.labels("sse").inc()

    resumed = []
    replay = Replay()
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if last_id:
        try:
            positions = decode_positions(last_id)
        except ValueError as exc:
            positions = {}
            resumed.append({"error": {"code": "invalid_op", "message": str(exc)}})
        for channel, (epoch, seq) in positions.items():
            try:
                data = await stream.session.subscribe(channel, (epoch, seq), replay)
                resumed.append(data)
            except ProtocolError as exc:
                resumed.append({"channel": channel, "error": {"code": exc.code.value, "message": exc.message}})
    opening = {"type": "open", "conn_id": stream.conn.id, "user": user.public(), "resumed": resumed}
    # The open event carries the resumed positions as its id, so a stream that drops before
    # any publication still resumes those channels.
    stream.conn.enqueue(dumps(opening), encode_positions(stream.conn.positions) if stream.conn.positions else None)
    await stream.session.send_replay(replay)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream.body(request), media_type="text/event-stream", headers=headers)


@router.post("/sse/ops")
async def sse_op(request: Request, conn: str) -> JSONResponse:
    services: Services = request.app.state.services
    user = await authenticated_user(request)  # bearer, or the browser's cookie with its CSRF header
    limit = services.settings.max_message_bytes
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            break  # parse_op answers too_large without reading the rest
    outcome = await run_op(services, conn, user.id, raw)
    if outcome is None:
        forwarder = getattr(services, "sse_forwarder", None)
        if forwarder is None:
            raise HTTPException(404, "no such SSE stream (it ended): open /sse again")
        outcome = await forwarder.forward(conn, user.id, raw)  # on another node, perhaps
    status, body = outcome
    if status != 200:
        raise HTTPException(status, (body or {}).get("detail", "refused"))
    return JSONResponse(body)


async def run_op(services: Services, conn: str, user_id: str, raw: bytes) -> tuple[int, Any] | None:
    """Run one op on this node's stream ``conn`` for ``user_id``: (HTTP status, reply or
    ``{"detail"}``), or None when no such stream is here (another node may have it)."""
    stream = services.sse_streams.get(conn)
    if stream is None:
        return None
    if stream.conn.user is None or user_id != stream.conn.user.id:
        return 403, {"detail": "that stream belongs to another user"}
    try:  # the stream's own credential (its ticket's version) may have been revoked since
        await services.auth.check_current(stream.conn.user)
    except AuthError as exc:
        await stream.conn.close(CloseCode.unauthenticated, str(exc))
        return 401, {"detail": str(exc)}
    # Ops on one stream are applied in the order they arrive, as over a WebSocket, even when
    # a client POSTs several at once.
    async with stream.ops_lock:
        reply, replay = await stream.session.process(raw)
        await stream.session.send_replay(replay)
    return 200, reply
