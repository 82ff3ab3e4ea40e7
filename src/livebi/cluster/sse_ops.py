"""SSE ops reach their stream on whichever node holds it (no sticky sessions needed).

An SSE client POSTs its ops to ``/sse/ops?conn=<id>``; behind a load balancer the POST may land
on another node than the one holding the stream. That node asks the cluster: it publishes the
op on ``<prefix>sse-ops`` (every node listens); the node holding the stream runs it there, as
if it had been POSTed to it, and publishes the reply on the asking node's reply channel
(``<prefix>sse-reply:<node id>``); the asking node answers the HTTP request with it. Nobody
answering within ``timeout_s`` means the stream is gone: 404, as on one node.

The asking node has already authenticated the caller; the holding node checks the stream
belongs to that user and that its credential is still current, exactly as for a local POST.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from typing import Any, Awaitable, Callable

from ..realtime.redis_util import UNREACHABLE, listen

log = logging.getLogger(__name__)

#: run_local(conn_id, user_id, raw) -> (HTTP status, JSON body), or None when no stream of
#: that id is on this node
RunLocal = Callable[[str, str, bytes], Awaitable["tuple[int, Any] | None"]]


class ForwardFailed(Exception):
    """The op could not be handed to the cluster (Redis unreachable)."""


class SSEOpForwarder:
    def __init__(self, client: Any, run_local: RunLocal, *, prefix: str = "livebi:", node_id: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self._redis = client
        self._run_local = run_local
        self.prefix = prefix
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[tuple[int, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self.forwarded = 0  # ops this node handed to another
        self.served = 0  # ops this node ran for another

    @property
    def _ops_channel(self) -> str:
        return f"{self.prefix}sse-ops"

    @property
    def _reply_channel(self) -> str:
        return f"{self.prefix}sse-reply:{self.node_id}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="sse-op-forwarder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for future in self._waiting.values():
            future.cancel()

    async def wait_ready(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def forward(self, conn_id: str, user_id: str, raw: bytes) -> tuple[int, Any]:
        """Run an op on another node's stream: its (status, body), 404 when nobody has it."""
        request_id = uuid.uuid4().hex
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {"id": request_id, "reply_to": self._reply_channel, "conn": conn_id, "user_id": user_id,
                   "raw": base64.b64encode(raw).decode()}
        try:
            try:
                receivers = await self._redis.publish(self._ops_channel, json.dumps(message))
            except UNREACHABLE as exc:
                raise ForwardFailed(f"the cluster cannot be reached ({exc})") from exc
            self.forwarded += 1
            if not receivers:
                return 404, {"detail": "no such SSE stream (it ended): open /sse again"}
            try:
                return await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                return 404, {"detail": "no such SSE stream (it ended): open /sse again"}
        finally:
            self._waiting.pop(request_id, None)

    async def _listen(self) -> None:
        def unreachable(exc: BaseException) -> None:
            self._ready.clear()
            log.warning("sse forward: Redis unreachable (%s); retrying", exc)

        await listen(self._redis, [self._ops_channel, self._reply_channel], self._on_message, what="sse forward",
                     on_ready=self._ready.set, on_unreachable=unreachable)

    async def _on_message(self, channel: str, body: Any) -> None:
        if not isinstance(body, dict):
            log.warning("sse forward: malformed message on %s ignored", channel)
        elif channel == self._reply_channel:
            self._settle(body)
        else:
            task = asyncio.create_task(self._serve(body))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    def _settle(self, body: dict[str, Any]) -> None:
        future = self._waiting.get(body.get("id", ""))
        if future is not None and not future.done():
            future.set_result((int(body.get("status", 500)), body.get("body")))

    async def _serve(self, body: dict[str, Any]) -> None:
        try:
            conn_id, user_id, reply_to = body["conn"], body["user_id"], body["reply_to"]
            raw = base64.b64decode(body["raw"])
        except (KeyError, TypeError, ValueError):
            log.warning("sse forward: malformed op request ignored")
            return
        try:
            outcome = await self._run_local(conn_id, user_id, raw)
        except Exception:
            log.exception("sse forward: running a forwarded op on %s failed", conn_id)
            outcome = (500, {"detail": "internal error; it has been logged"})
        if outcome is None:
            return  # not ours: the node holding it answers
        self.served += 1
        status, reply = outcome
        try:
            await self._redis.publish(reply_to, json.dumps({"id": body.get("id"), "status": status, "body": reply}))
        except UNREACHABLE as exc:
            log.warning("sse forward: the reply to %s was lost (Redis unreachable: %s)", reply_to, exc)
