"""A client session: turns one connection's ops into service calls and replies.

Transport-agnostic: the WebSocket endpoint (and later the HTTP fallback) feed it raw frames;
everything it sends goes through the connection's outbox, so replies and publications reach the
client in the order they were produced. Any bad input becomes an error reply; the session, the
connection and every other client carry on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .auth import AuthError, User
from .pipeline import AskRequest
from .protocol import (
    AskOp,
    AuthOp,
    CancelOp,
    ErrorCode,
    PingOp,
    ProtocolError,
    SubscribeOp,
    UnsubscribeOp,
    dumps,
    error_reply,
    ok_reply,
    parse_op,
)
from .realtime.connection import Connection
from .services import Services

log = logging.getLogger(__name__)


class Session:
    def __init__(self, services: Services, conn: Connection) -> None:
        self.services = services
        self.conn = conn
        self._after_reply: tuple[str, ...] = ()  # frames to send right after the current reply

    @property
    def user(self) -> User | None:
        return self.conn.user

    def send(self, message: dict[str, Any]) -> None:
        self.conn.enqueue(dumps(message))

    async def handle(self, raw: str | bytes) -> None:
        """Process one client frame; never raises for anything the client sent."""
        metrics = self.services.metrics
        started = time.perf_counter()
        op_name = "invalid"
        try:
            op = parse_op(raw, max_bytes=self.services.settings.max_message_bytes)
            op_name = op.op
            if self.user is None and not isinstance(op, AuthOp):
                raise ProtocolError(ErrorCode.unauthenticated, "authenticate first (auth op with a token)", op_id=op.id)
            handler = getattr(self, f"_op_{op.op}")
            try:
                data = await handler(op)
            except ProtocolError as exc:
                exc.op_id = op.id
                raise
            self.send(ok_reply(op.id, data))
            if self._after_reply:
                for frame in self._after_reply:
                    self.conn.enqueue(frame)
                self._after_reply = ()
        except ProtocolError as exc:
            metrics.op_errors.labels(exc.code.value).inc()
            self.send(exc.reply())
        except Exception:
            log.exception("internal error handling a %s op", op_name)
            metrics.op_errors.labels("internal").inc()
            self.send(error_reply(None, ErrorCode.internal, "internal error; it has been logged"))
        finally:
            metrics.messages_received.labels(op_name).inc()
            metrics.op_seconds.labels(op_name).observe(time.perf_counter() - started)

    # Ops ------------------------------------------------------------------------------------

    async def authenticate(self, token: str) -> User:
        """Check a token and bind the user to this connection. Raises AuthError."""
        user = await self.services.auth.authenticate(token)
        self.conn.user = user
        return user

    async def _op_auth(self, op: AuthOp) -> dict[str, Any]:
        if self.user is not None:
            return {"user": self.user.public()}
        try:
            user = await self.authenticate(op.token)
        except AuthError as exc:
            raise ProtocolError(ErrorCode.unauthenticated, str(exc)) from None
        return {"user": user.public()}

    async def _op_ping(self, op: PingOp) -> dict[str, Any]:
        return {"pong": True, "ts": round(time.time(), 3)}

    async def _op_subscribe(self, op: SubscribeOp) -> dict[str, Any]:
        await self.services.authorize_channel(self.user, op.channel)
        since = (op.since.epoch, op.since.seq) if op.since else None
        result = self.services.connections.subscribe(self.conn, op.channel, since)
        # The reply goes out first, then the missed publications, then live ones: the outbox
        # preserves this order because nothing runs between the reply and the replay.
        self._after_reply = result.missed
        return {"channel": op.channel, "epoch": result.epoch, "seq": result.seq, "recovered": result.recovered}

    async def _op_unsubscribe(self, op: UnsubscribeOp) -> dict[str, Any]:
        return {"channel": op.channel, "unsubscribed": self.services.connections.unsubscribe(self.conn, op.channel)}

    async def _op_ask(self, op: AskOp) -> dict[str, Any]:
        if (op.question is None) == (op.sql is None):
            raise ProtocolError(ErrorCode.invalid_op, "ask needs exactly one of question or sql")
        asks = self.services.asks
        if asks.running_count(self.user.id) >= asks.max_concurrent_per_user:
            raise ProtocolError(
                ErrorCode.too_many_queries,
                f"you already have {asks.max_concurrent_per_user} questions running; wait or cancel one",
            )
        if op.warehouse is not None and op.warehouse not in self.services.warehouses:
            raise ProtocolError(
                ErrorCode.unknown_warehouse,
                f"no warehouse named {op.warehouse!r}; available: {', '.join(self.services.warehouses)}",
            )
        req = AskRequest(question=op.question, sql=op.sql, warehouse=op.warehouse, chart=op.chart)
        query_id = await asks.start(self.user.id, req)
        channel = f"query:{query_id}"
        # Subscribe before the pipeline task first runs, so no publication is missed.
        self.services.connections.subscribe(self.conn, channel, None)
        return {"query_id": query_id, "channel": channel}

    async def _op_cancel(self, op: CancelOp) -> dict[str, Any]:
        owner = await self.services.asks.owner(op.query_id)
        if owner is None:
            raise ProtocolError(ErrorCode.not_found, f"no query {op.query_id!r}")
        if owner != self.user.id:
            raise ProtocolError(ErrorCode.forbidden, f"query {op.query_id!r} belongs to another user")
        cancelled = await self.services.asks.cancel(op.query_id)
        return {"query_id": op.query_id, "cancelled": cancelled}
