"""A Python client for livebi: connect, authenticate, run ops, follow channels, recover.

    client = await LiveClient.login("http://127.0.0.1:8000", "demo", "demo")
    query = await client.ask("total revenue by region")
    async for pub in query:                 # progress…, then result (or error)
        print(pub["type"], pub["data"].get("progress"))
    result = await query.result()
    await client.close()

The token never travels in a URL: each WebSocket (re)connect fetches a single-use ticket
(``POST /api/ticket``) for ``/ws?ticket=``; the SSE stream and its POSTs send the token in an
``Authorization: Bearer`` header.

The client keeps one connection: a WebSocket, or the SSE + POST fallback when WebSockets fail
(after ``ws_failures_before_fallback`` failed attempts, or at once when the server says they
are off), and probes the WebSocket again every ``ws_probe_interval`` seconds. When the
connection drops it reconnects with exponential backoff and jitter and resubscribes every
channel with ``since`` its last position, so subscriptions see every publication exactly once
and in order. When the server cannot recover a gap (history trimmed, server restarted with
the memory broker) the subscription's ``on_reset`` callback runs: reload state then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
from typing import Any, AsyncIterator, Callable

import httpx
import websockets

log = logging.getLogger(__name__)

# Close codes after which reconnecting cannot help.
_FATAL = {4001: "unauthenticated", 4009: "too many connections"}


class LiveError(Exception):
    """An error reply or an ``error`` publication: ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data or {}


class Subscription:
    """A channel followed across reconnects. Async-iterate it for publications (dicts)."""

    def __init__(self, client: "LiveClient", channel: str, on_reset: Callable[["Subscription"], Any] | None) -> None:
        self.client = client
        self.channel = channel
        self.on_reset = on_reset
        self.epoch: str | None = None
        self.seq = 0
        self.recovered: list[bool | None] = []  # the `recovered` of every (re)subscribe reply
        self.duplicates = 0  # publications dropped because they were already seen
        self.gaps = 0  # publications that skipped a seq (should stay 0)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def _accept(self, pub: dict[str, Any]) -> None:
        epoch, seq = pub["epoch"], pub["seq"]
        if epoch == self.epoch:
            if seq <= self.seq:
                self.duplicates += 1
                return
            if seq != self.seq + 1:
                self.gaps += 1
        self.epoch, self.seq = epoch, seq
        self._queue.put_nowait(pub)

    def _subscribed(self, data: dict[str, Any]) -> None:
        """Apply a (re)subscribe reply: adopt the server's position unless it recovered."""
        recovered = data.get("recovered")
        self.recovered.append(recovered)
        if recovered is True:
            return  # the missed publications follow the reply
        if self.epoch != data["epoch"] or self.seq < data["seq"]:
            self.epoch, self.seq = data["epoch"], data["seq"]
        if recovered is False and self.on_reset is not None:
            self.on_reset(self)

    def since(self) -> dict[str, Any] | None:
        return {"epoch": self.epoch, "seq": self.seq} if self.epoch is not None else None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._queue.get()

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def pending(self) -> list[dict[str, Any]]:
        """Publications received and not yet consumed (drains them)."""
        out = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out


class Query(Subscription):
    """The channel of one question: progress publications, then a result or an error."""

    query_id: str = ""

    async def result(self, timeout: float | None = 120) -> dict[str, Any]:
        """The result data; raises LiveError with the error publication's code otherwise."""
        async def wait() -> dict[str, Any]:
            async for pub in self:
                if pub["type"] == "result":
                    return pub["data"]
                if pub["type"] == "error":
                    raise LiveError(pub["data"]["code"], pub["data"]["message"], pub["data"])
            raise AssertionError("unreachable")

        return await asyncio.wait_for(wait(), timeout)


class LiveClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: str = "auto",
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        ws_failures_before_fallback: int = 3,
        ws_probe_interval: float = 30.0,
        connect_timeout: float = 5.0,
        op_timeout: float = 30.0,
        on_state: Callable[[str, str | None], Any] | None = None,
    ) -> None:
        if transport not in ("auto", "ws", "sse"):
            raise ValueError("transport must be auto, ws or sse")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.transport = transport
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ws_failures_before_fallback = ws_failures_before_fallback
        self.ws_probe_interval = ws_probe_interval
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self.on_state = on_state
        self.state = "idle"
        self.active_transport: str | None = None  # "ws" or "sse" while connected
        self.connects = 0  # successful (re)connections
        self.fallbacks = 0  # switches from WebSocket to SSE
        self.subscriptions: dict[str, Subscription] = {}
        self._ids = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()
        self._closed = False
        self._fatal: LiveError | None = None
        self._ws: Any = None
        self._sse_conn: str | None = None
        self._sse_last_id: str | None = None
        self._sse_response: httpx.Response | None = None
        self._ws_failures = 0
        self._ws_disabled = False
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(op_timeout, read=None))
        self._runner: asyncio.Task[None] | None = None
        self._probe_after = 0.0
        self._asks_in_flight = 0
        self._conn_task: asyncio.Task[None] | None = None
        self._early: dict[str, list[dict[str, Any]]] = {}
        self._last_transport: str | None = None

    # Lifecycle ------------------------------------------------------------------------------

    @classmethod
    async def login(cls, base_url: str, username: str, password: str, **kw: Any) -> "LiveClient":
        """Log in with ``POST /api/login`` and connect."""
        async with httpx.AsyncClient(base_url=base_url.rstrip("/")) as http:
            r = await http.post("/api/login", json={"username": username, "password": password})
        if r.status_code != 200:
            raise LiveError("unauthenticated", r.json().get("detail", r.text))
        client = cls(base_url, r.json()["token"], **kw)
        await client.connect()
        return client

    async def connect(self) -> None:
        """Start the connection loop and wait until connected (or raise LiveError)."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="livebi-client")
        await self._wait_connected(self.connect_timeout * 4)

    async def close(self) -> None:
        self._closed = True
        self._set_state("closed")
        if self._conn_task:
            self._conn_task.cancel()
        if self._runner:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        await self._drop_transport()
        await self._http.aclose()
        self._fail_pending(LiveError("closed", "client closed"))

    async def kill_transport(self) -> None:
        """Drop the current connection abruptly, as a network failure would (for tests)."""
        if self._ws is not None:
            self._ws.transport.abort()
        elif self._sse_response is not None:
            # Shut the socket under the stream, as a network failure would: the read fails and
            # the loop reconnects. (Cancelling the reading task is not reliable inside httpx.)
            stream = self._sse_response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    # Ops ------------------------------------------------------------------------------------

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one op and return its reply data; raises LiveError on an error reply."""
        await self._wait_connected(self.op_timeout)
        return await self._send_op(op, **fields)

    async def _send_op(self, op: str, **fields: Any) -> dict[str, Any]:
        self._ids += 1
        message = {"id": self._ids, "op": op, **fields}
        if self.active_transport == "sse":
            r = await self._http.post(
                "/sse/ops", params={"conn": self._sse_conn}, json=message, headers=self._auth(), timeout=self.op_timeout
            )
            if r.status_code != 200:
                raise LiveError("disconnected", f"POST /sse/ops answered {r.status_code}: {r.text[:200]}")
            reply = r.json()
        else:
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[message["id"]] = fut
            try:
                await self._ws.send(json.dumps(message))
                reply = await asyncio.wait_for(fut, self.op_timeout)
            except websockets.ConnectionClosed:
                raise LiveError("disconnected", "the connection closed before the reply") from None
            finally:
                self._pending.pop(message["id"], None)
        if not reply.get("ok"):
            err = reply.get("error", {})
            raise LiveError(err.get("code", "internal"), err.get("message", ""), err)
        return reply.get("data", {})

    async def subscribe(self, channel: str, *, on_reset: Callable[[Subscription], Any] | None = None) -> Subscription:
        sub = self.subscriptions.get(channel)
        if sub is None:
            sub = self.subscriptions[channel] = Subscription(self, channel, on_reset)
        data = await self.call("subscribe", channel=channel, **({"since": sub.since()} if sub.since() else {}))
        sub._subscribed(data)
        return sub

    async def unsubscribe(self, channel: str) -> None:
        self.subscriptions.pop(channel, None)
        await self.call("unsubscribe", channel=channel)

    async def ask(self, question: str | None = None, *, sql: str | None = None, warehouse: str | None = None,
                  chart: str | None = None, fresh: bool = False) -> Query:
        """Ask a question (or run ``sql``); iterate the returned Query or await ``result()``.
        ``fresh``: read the warehouse now, not a cached result."""
        fields = {k: v for k, v in {"question": question, "sql": sql, "warehouse": warehouse, "chart": chart,
                                    "fresh": fresh or None}.items() if v is not None}
        # The server subscribes the asker before replying, so publications may come first:
        # they are held in _early until the reply names the channel.
        self._asks_in_flight += 1
        try:
            data = await self.call("ask", **fields)
        finally:
            self._asks_in_flight -= 1
        query = Query(self, data["channel"], None)
        query.query_id = data["query_id"]
        self.subscriptions[query.channel] = query
        for pub in self._early.pop(query.channel, []):
            query._accept(pub)
        if not self._asks_in_flight:
            self._early.clear()
        return query

    # Connection loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff_initial
        loop = asyncio.get_running_loop()
        while not self._closed:
            use_sse = self.transport == "sse" or (
                self.transport == "auto" and (self._ws_disabled or self._ws_failures >= self.ws_failures_before_fallback)
            )
            if use_sse and self.transport == "auto" and not self._ws_disabled and loop.time() >= self._probe_after:
                use_sse = not await self._ws_reachable()
                if not use_sse:
                    self._ws_failures = 0
            self._set_state("connecting" if self.connects == 0 else "reconnecting")
            started = loop.time()
            self._conn_task = asyncio.create_task(self._run_sse() if use_sse else self._run_ws())
            try:
                await self._conn_task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # the client is closing
                # only the connection was cancelled (kill_transport): reconnect
            except LiveError as exc:
                if exc.code in ("unauthenticated", "too_many_connections"):
                    self._fatal = exc
                    self._set_state("closed")
                    self._connected.set()  # wake waiters so they see the error
                    self._fail_pending(exc)
                    return
                log.debug("connection ended: %s", exc)
            except Exception as exc:  # network errors: retry
                log.debug("connection failed: %s", exc)
            finally:
                self._connected.clear()
                self.active_transport = None
                await self._drop_transport()
                self._fail_pending(LiveError("disconnected", "connection lost"))
            if self._closed:
                return
            if loop.time() - started > 5:
                delay = self.backoff_initial  # it was a stable connection: start over
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(self.backoff_max, delay * 2)

    async def _ws_url(self) -> str:
        """The WebSocket URL with a fresh single-use ticket: the long-lived token never goes in
        a URL (proxies and access logs keep URLs), and a socket authenticated at the upgrade
        never waits in the server's small budget of unauthenticated connections."""
        r = await self._http.post("/api/ticket", headers=self._auth(), timeout=self.connect_timeout)
        if r.status_code == 401:
            raise LiveError("unauthenticated", r.json().get("detail", r.text))
        if r.status_code != 200:
            raise LiveError("unavailable", f"POST /api/ticket answered {r.status_code}")
        return self.base_url.replace("http", "ws", 1) + "/ws?ticket=" + r.json()["ticket"]

    async def _run_ws(self) -> None:
        url = await self._ws_url()
        try:
            ws = await asyncio.wait_for(websockets.connect(url, max_size=None, open_timeout=self.connect_timeout), self.connect_timeout)
        except websockets.InvalidStatus:
            self._ws_failures += 1
            raise
        except (OSError, asyncio.TimeoutError):
            self._ws_failures += 1
            raise
        self._ws = ws
        self._ws_failures = 0
        reader = asyncio.create_task(self._read_ws(ws))
        try:
            # The socket is open; the session is usable only once the server answers an op
            # (it may still refuse the ticket, or the WebSocket transport may be off).
            self.active_transport = "ws"
            try:
                await self._send_op("ping")
            except LiveError:
                await reader
            else:
                await self._on_connected("ws", [])
                await reader
        finally:
            reader.cancel()
        code = ws.close_code
        if code == 4003:
            self._ws_disabled = True
            self._set_state("degraded", "WebSockets are switched off on the server: using SSE")
        if code in _FATAL:
            raise LiveError(_FATAL[code].replace(" ", "_"), ws.close_reason or _FATAL[code])

    async def _read_ws(self, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                self._dispatch(json.loads(raw))

    async def _run_sse(self) -> None:
        headers = self._auth()
        if self._sse_last_id:
            headers["Last-Event-ID"] = self._sse_last_id
        async with self._http.stream("GET", "/sse", headers=headers) as response:
            if response.status_code == 401:
                raise LiveError("unauthenticated", (await response.aread()).decode()[:200])
            if response.status_code == 429:
                raise LiveError("too_many_connections", (await response.aread()).decode()[:200])
            if response.status_code != 200:
                raise LiveError("unavailable", f"GET /sse answered {response.status_code}")
            self._sse_response = response
            event_id, data_lines = None, []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data_lines.append(line[5:].lstrip())
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line == "":
                    if data_lines:
                        message = json.loads("\n".join(data_lines))
                        if event_id:
                            self._sse_last_id = event_id
                        await self._on_sse_message(message)
                    event_id, data_lines = None, []

    async def _on_sse_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message_batch":  # may hold the open event, replies' replays, a close
            for item in message["messages"]:
                await self._on_sse_message(item)
        elif kind == "open":
            self._sse_conn = message["conn_id"]
            # Resubscription runs as a task: it POSTs while this loop keeps reading the stream.
            asyncio.create_task(self._on_connected("sse", message.get("resumed", [])))
        elif kind == "close":
            code = message.get("code")
            if code in _FATAL:
                raise LiveError(_FATAL[code].replace(" ", "_"), message.get("reason", ""))
            raise LiveError("closed", f"server closed the stream ({code})")
        else:
            self._dispatch(message)

    async def _on_connected(self, transport: str, resumed: list[dict[str, Any]]) -> None:
        self.active_transport = transport
        self.connects += 1
        if transport == "sse" and self.transport == "auto" and self._last_transport != "sse":
            self.fallbacks += 1
        self._last_transport = transport
        if transport == "sse" and self.transport == "auto" and not self._ws_disabled:
            self._probe_after = asyncio.get_running_loop().time() + self.ws_probe_interval
            self._set_state("degraded", "WebSocket unavailable: using the HTTP fallback (SSE)")
        done = set()
        for item in resumed:
            sub = self.subscriptions.get(item.get("channel", ""))
            if sub is not None and "epoch" in item:
                sub._subscribed(item)
                done.add(sub.channel)
        self._connected.set()
        for sub in list(self.subscriptions.values()):
            if sub.channel in done or not sub.channel:
                continue
            try:
                data = await self.call("subscribe", channel=sub.channel, **({"since": sub.since()} if sub.since() else {}))
                sub._subscribed(data)
            except LiveError as exc:
                log.warning("could not resubscribe to %s: %s", sub.channel, exc)
        if transport == "ws" or self.transport == "sse" or self._ws_disabled:
            self._set_state("connected")

    async def _ws_reachable(self) -> bool:
        """Probe: can a WebSocket be opened now? (used to leave the SSE fallback)."""
        try:
            async with websockets.connect(await self._ws_url(), open_timeout=self.connect_timeout) as ws:
                await ws.send(json.dumps({"id": 0, "op": "ping"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), self.connect_timeout))
                return bool(reply.get("ok"))
        except Exception:
            self._probe_after = asyncio.get_running_loop().time() + self.ws_probe_interval
            return False

    # Dispatch -------------------------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "message_batch":
            for item in message["messages"]:
                self._dispatch(item)
            return
        if "ok" in message:
            fut = self._pending.get(message.get("id"))
            if fut is not None and not fut.done():
                fut.set_result(message)
            return
        channel = message.get("channel")
        sub = self.subscriptions.get(channel)
        if sub is not None:
            sub._accept(message)
        elif channel and channel.startswith("query:") and self._asks_in_flight:
            self._early.setdefault(channel, []).append(message)

    # Helpers --------------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def _wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise LiveError("closed", "client closed")

    def _fail_pending(self, exc: LiveError) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    async def _drop_transport(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)
        resp, self._sse_response = self._sse_response, None
        if resp is not None:
            with contextlib.suppress(Exception):
                await resp.aclose()

    def _set_state(self, state: str, detail: str | None = None) -> None:
        if state != self.state:
            self.state = state
            if self.on_state:
                self.on_state(state, detail)
