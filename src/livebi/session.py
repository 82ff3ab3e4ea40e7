"""A client session: turns one connection's ops into service calls and replies.

Transport-agnostic: the WebSocket endpoint feeds it frames and queues the reply on the
connection (so replies and publications reach the client in the order they were produced); the
HTTP fallback POSTs frames and returns the reply in the response while publications flow on the
SSE stream. Any bad input becomes an error reply; the session, the connection and every other
client carry on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from .auth import AuthError, User
from .pipeline import AskRequest, TooManyQueries
from .protocol import (
    AskOp,
    AuthOp,
    CancelOp,
    EditOp,
    ErrorCode,
    PingOp,
    PresenceOp,
    ProtocolError,
    RefreshOp,
    ShareOp,
    SubscribeOp,
    SubscribeTarget,
    UnsubscribeOp,
    dumps,
    error_reply,
    ok_reply,
    parse_op,
)
from .realtime.connection import Connection
from .realtime.manager import ConnectionLimitExceeded
from .services import Services

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Replay:
    """What must follow a reply, in this order: missed publications (channel, epoch, seq,
    frame), then presence joins to record (their coalesced publication comes later still, so
    its seq never lands ahead of the replay)."""

    items: list[tuple[str, str, int, str]] = dataclasses.field(default_factory=list)
    joins: list[str] = dataclasses.field(default_factory=list)


class TokenBucket:
    """Allows ``rate`` ops per second with bursts up to ``burst`` (pure; clock injected)."""

    def __init__(self, rate: float, burst: float, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class Session:
    def __init__(self, services: Services, conn: Connection) -> None:
        self.services = services
        self.conn = conn
        s = services.settings
        self._bucket = TokenBucket(s.op_rate_per_s, s.op_burst) if s.op_rate_per_s > 0 else None
        self.limit_exceeded = False  # set when auth was refused for the per-user connection limit

    @property
    def user(self) -> User | None:
        return self.conn.user

    # Entry points ---------------------------------------------------------------------------

    async def handle(self, raw: str | bytes) -> None:
        """WebSocket: process one frame and queue its reply, then any replay, in order."""
        reply, replay = await self.process(raw)
        self.conn.enqueue(dumps(reply))
        await self.send_replay(replay)

    async def process(self, raw: str | bytes) -> tuple[dict[str, Any], Replay]:
        """Process one client frame; returns the reply and what must follow it.

        Never raises for anything the client sent.
        """
        metrics = self.services.metrics
        started = time.perf_counter()
        op_name = "invalid"
        op_id = None
        replay = Replay()
        try:
            op = parse_op(raw, max_bytes=self.services.settings.max_message_bytes)
            op_name, op_id = op.op, op.id
            try:
                if self._bucket is not None and not self._bucket.take():
                    raise ProtocolError(
                        ErrorCode.rate_limited,
                        f"more than {self.services.settings.op_rate_per_s:g} ops per second; slow down",
                    )
                if self.user is None and not isinstance(op, AuthOp):
                    raise ProtocolError(ErrorCode.unauthenticated, "authenticate first (auth op with a token)")
                data = await getattr(self, f"_op_{op.op}")(op, replay)
            except ProtocolError as exc:
                exc.op_id = op.id
                raise
            reply = ok_reply(op.id, data)
        except ProtocolError as exc:
            metrics.op_errors.labels(exc.code.value).inc()
            reply = exc.reply()
        except Exception:
            log.exception("internal error handling a %s op", op_name)
            metrics.op_errors.labels("internal").inc()
            reply = error_reply(op_id, ErrorCode.internal, "internal error; it has been logged")
        finally:
            metrics.op_handled(op_name, time.perf_counter() - started)
        return reply, replay

    async def send_replay(self, replay: Replay) -> None:
        for channel, epoch, seq, frame in replay.items:
            self.conn.enqueue_publication(channel, epoch, seq, frame)
        for channel in replay.joins:
            self.services.presence.join(self.conn, channel)

    async def authenticate(self, token: str) -> User:
        """Check a token, apply connection limits and bind the user to this connection.

        Raises:
            AuthError: the token is invalid or expired.
            ConnectionLimitExceeded: the user has max_connections_per_user connections.
        """
        user = await self.services.auth.authenticate(token)
        self.services.connections.bind_user(self.conn, user)
        return user

    async def subscribe(self, channel: str, since: tuple[str, int] | None, replay: Replay) -> dict[str, Any]:
        """Authorize, subscribe, queue missed publications into ``replay``; the reply data."""
        await self.services.authorize_channel(self.user, channel)
        result = await self.services.subscribe(self.conn, channel, since)
        recovered, missed = result.recovered, result.missed
        if missed and sum(len(frame) for _, frame in missed) > self.services.settings.outgoing_queue_bytes // 2:
            # A replay this big would overflow the outbox and cut the client off again and
            # again; it is cheaper for the client to reload state (e.g. ask again).
            recovered, missed = False, ()
        if self.conn.track_positions:
            start = since[1] if recovered else result.seq
            self.conn.positions[channel] = (result.epoch, start)
        replay.items.extend((channel, result.epoch, seq, frame) for seq, frame in missed)
        replay.joins.append(channel)
        return {"channel": channel, "epoch": result.epoch, "seq": result.seq, "recovered": recovered}

    # Ops ------------------------------------------------------------------------------------

    async def _op_auth(self, op: AuthOp, replay: Replay) -> dict[str, Any]:
        if self.user is None:
            try:
                await self.authenticate(op.token)
            except AuthError as exc:
                raise ProtocolError(ErrorCode.unauthenticated, str(exc)) from None
            except ConnectionLimitExceeded as exc:
                self.limit_exceeded = True
                raise ProtocolError(ErrorCode.too_many_connections, str(exc)) from None
        data: dict[str, Any] = {"user": self.user.public()}
        if op.subscribe is not None:
            # Connect, authenticate and subscribe in one round trip: each channel is answered
            # like a subscribe op (or its error), and one refusal does not undo the others.
            data["subscribed"] = [await self._subscribe_one(target, replay) for target in op.subscribe]
        return data

    async def _subscribe_one(self, target: str | SubscribeTarget, replay: Replay) -> dict[str, Any]:
        if isinstance(target, str):
            channel, since = target, None
        else:
            channel, since = target.channel, (target.since.epoch, target.since.seq) if target.since else None
        try:
            return {"ok": True, **await self.subscribe(channel, since, replay)}
        except ProtocolError as exc:
            self.services.metrics.op_errors.labels(exc.code.value).inc()
            return {"ok": False, "channel": channel, "error": {"code": exc.code.value, "message": exc.message}}

    async def _op_ping(self, op: PingOp, replay: Replay) -> dict[str, Any]:
        return {"pong": True, "ts": round(time.time(), 3)}

    async def _op_subscribe(self, op: SubscribeOp, replay: Replay) -> dict[str, Any]:
        since = (op.since.epoch, op.since.seq) if op.since else None
        return await self.subscribe(op.channel, since, replay)

    async def _op_unsubscribe(self, op: UnsubscribeOp, replay: Replay) -> dict[str, Any]:
        self.conn.positions.pop(op.channel, None)
        done = await self.services.unsubscribe(self.conn, op.channel)
        return {"channel": op.channel, "unsubscribed": done}

    async def _op_presence(self, op: PresenceOp, replay: Replay) -> dict[str, Any]:
        return await self.services.presence_op(self.conn, op.channel, op.state)

    async def _op_ask(self, op: AskOp, replay: Replay) -> dict[str, Any]:
        if (op.question is None) == (op.sql is None):
            raise ProtocolError(ErrorCode.invalid_op, "ask needs exactly one of question or sql")
        asks = self.services.asks
        # Resolved here, so the pipeline and the history always get a warehouse this user may use.
        warehouse = self.services.warehouse_access.resolve(self.user, op.warehouse)
        req = AskRequest(question=op.question, sql=op.sql, warehouse=warehouse, chart=op.chart, fresh=op.fresh)
        try:
            query_id = await asks.start(self.user.id, req)
        except TooManyQueries as exc:
            raise ProtocolError(ErrorCode.too_many_queries, str(exc)) from None
        channel = f"query:{query_id}"
        # Subscribe before the pipeline task first runs, so no publication is missed (with a
        # shared broker the subscribe awaits Redis: what was published meanwhile is replayed).
        result = await self.services.subscribe(self.conn, channel, None, from_start=True)
        if self.conn.track_positions:
            self.conn.positions[channel] = (result.epoch, result.missed[0][0] - 1 if result.missed else result.seq)
        replay.items.extend((channel, result.epoch, seq, frame) for seq, frame in result.missed)
        return {"query_id": query_id, "channel": channel}

    async def _op_edit(self, op: EditOp, replay: Replay) -> dict[str, Any]:
        """Dashboard ops: applied atomically, persisted, then published (dashboards.service)."""
        return await self.services.dashboards.edit(op.dashboard_id, self.user, op.ops)

    async def _op_cancel(self, op: CancelOp, replay: Replay) -> dict[str, Any]:
        owner = await self.services.asks.owner(op.query_id)
        if owner is None:
            raise ProtocolError(ErrorCode.not_found, f"no query {op.query_id!r}")
        if owner != self.user.id:
            raise ProtocolError(ErrorCode.forbidden, f"query {op.query_id!r} belongs to another user")
        cancelled = await self.services.asks.cancel(op.query_id)
        return {"query_id": op.query_id, "cancelled": cancelled}

    async def _op_refresh(self, op: RefreshOp, replay: Replay) -> dict[str, Any]:
        if self.services.live is None:
            raise ProtocolError(ErrorCode.feature_disabled, "live dashboards are switched off on this server")
        return await self.services.live.refresh_for(self.user, op.dashboard_id, op.widget_id)

    async def _op_share(self, op: ShareOp, replay: Replay) -> dict[str, Any]:
        return await self.services.sharing.share(
            self.user, op.query_id, usernames=op.usernames, dashboard_id=op.dashboard_id
        )
