"""The server's side of a remote agent: a pool of connections to one kind of agent.

:meth:`AgentPool.call` runs one call (an op and its arguments) on one of the agent's URLs and
returns its result, forwarding the agent's progress messages to ``on_progress`` as they come:

* **Pool.** At most ``max_connections`` calls run at once, each on a WebSocket connection of
  its own (kept open afterwards for the next call) or an HTTP stream; a call that finds them
  all busy waits up to ``pool_timeout_s``, then fails with ``agent_pool_exhausted``.
  ``min_connections`` WebSockets are opened at startup.
* **Round robin.** Each call (and each retry) goes to the next URL.
* **Retries.** Calls are read-only (parse, SELECT, chart), so a call whose connection fails is
  sent again, ``call_attempts`` times at most, to the next URL; a URL whose connection failed is
  left alone for an exponential backoff with jitter (:class:`~.backoff.Backoff`, longer after
  each failure in a row), and a call waits only when every URL is backing off; then
  ``agent_unavailable``.
* **HTTP fallback.** After ``ws_failures_before_http`` WebSocket failures in a row calls go over
  HTTP (``POST /agent/call``, the answer streamed as NDJSON so progress still flows), and
  ``on_transport_change`` is told; a probe tries a WebSocket every ``probe_interval_s`` (with
  backoff and jitter) and, when one opens, calls use WebSockets again and the change is told.
* **Cancellation.** A cancelled call sends ``cancel`` on its WebSocket and drops the
  connection, or closes its HTTP stream; the agent stops the work either way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import secrets
from typing import Any, Callable

import httpx
import websockets
from websockets.protocol import State

from ...pipeline import AskFailed
from ...protocol import ErrorCode, Stage
from .backoff import Backoff, PoolLedger, TransportMode
from .wire import PROTOCOL, STAGE_OF, WireError, base_urls, decode, dumps, encode, loads, raise_error

log = logging.getLogger(__name__)

#: on_transport_change(agent, transport, degraded)
TransportChange = Callable[[str, str, bool], None]


class TransportFailure(Exception):
    """The connection to an agent failed (refused, closed, timed out): the call may be retried."""


class AgentPool:
    """Connections from this server to every URL of one kind of agent (``nlp``, ``data`` or ``viz``)."""

    def __init__(
        self,
        agent: str,
        urls: list[str],
        *,
        token: str,
        # Pool
        min_connections: int = 1,
        max_connections: int = 16,
        pool_timeout_s: float = 5.0,
        # Failures
        connect_timeout_s: float = 5.0,
        call_attempts: int = 4,
        ws_failures_before_http: int = 2,
        probe_interval_s: float = 5.0,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
        # Limits
        max_message_bytes: int = 16 * 1024 * 1024,
        on_transport_change: TransportChange | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if agent not in STAGE_OF:
            raise ValueError(f"unknown agent {agent!r}")
        self.agent = agent
        self.stage = Stage(STAGE_OF[agent])
        self._targets = {url: base_urls(url) for url in urls}  # checked here: a bad URL stops startup
        self.ledger = PoolLedger(urls, max_connections=max_connections)
        self.mode = TransportMode(failures_before_http=ws_failures_before_http)
        self.backoff = Backoff(base_s=backoff_base_s, max_s=backoff_max_s, rng=rng)
        self._probe_backoff = Backoff(base_s=probe_interval_s, max_s=8 * probe_interval_s, rng=rng)
        self.token = token
        self.min_connections = min(min_connections, max_connections)
        self.pool_timeout_s = pool_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.call_attempts = call_attempts
        self.max_message_bytes = max_message_bytes
        self.on_transport_change = on_transport_change
        self._idle: dict[str, list[Any]] = {url: [] for url in urls}
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._probe: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        #: calls answered per transport (for /health, metrics and tests)
        self.calls = {"websocket": 0, "http": 0}

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=self.connect_timeout_s, read=30.0, write=30.0, pool=self.connect_timeout_s),
            limits=httpx.Limits(max_connections=self.ledger.max_connections),
        )
        if self.min_connections:
            self._spawn(self._warm(), "warm")

    async def close(self) -> None:
        for task in list(self._tasks) + ([self._probe] if self._probe else []):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._probe] if self._probe else []), return_exceptions=True)
        for conns in self._idle.values():
            for conn in conns:
                with contextlib.suppress(OSError, websockets.exceptions.WebSocketException):
                    await conn.close()
            conns.clear()
        if self._http is not None:
            await self._http.aclose()

    @property
    def idle_connections(self) -> int:
        return sum(len(c) for c in self._idle.values())

    # -- calls ----------------------------------------------------------------------------

    async def call(self, op: str, args: dict[str, Any], on_progress: Callable[..., None] | None = None) -> Any:
        """Run ``op`` on the agent; its result data. Raises what the in-process agent would
        (see :func:`.wire.raise_error`), or AskFailed (``agent_pool_exhausted``,
        ``agent_unavailable``) naming the agent's stage."""
        await self._acquire()
        try:
            return await self._call(op, args, on_progress or (lambda *a: None))
        finally:
            self.ledger.give_back()
            self._wake()

    async def _call(self, op: str, args: dict[str, Any], on_progress: Callable[..., None]) -> Any:
        failure: TransportFailure | None = None
        loop = asyncio.get_running_loop()
        for attempt in range(self.call_attempts):
            url = self.ledger.next_url(loop.time())
            wait = self.ledger.backing_off(url, loop.time())
            if wait > 0:  # every URL failed just now: wait for the first backoff to end
                await asyncio.sleep(wait)
            try:
                if self.mode.degraded:
                    result = await self._call_http(url, op, args, on_progress)
                else:
                    result = await self._call_ws(url, op, args, on_progress)
            except TransportFailure as exc:
                failure = exc
                self.ledger.failed(url, loop.time(), self.backoff)
                log.warning("%s agent call %s on %s failed (attempt %d of %d): %s",
                            self.agent, op, url, attempt + 1, self.call_attempts, exc)
                continue
            self.ledger.succeeded(url)
            return result
        # the detail (addresses of the agents) is for the operator's log, not for users
        log.error("%s agent unavailable after %d attempts: %s", self.agent, self.call_attempts, failure)
        raise AskFailed(self.stage, ErrorCode.agent_unavailable,
                        f"the {self.agent} agent is unavailable", ["try again in a moment"])

    async def _acquire(self) -> None:
        if not self._waiters and self.ledger.free > 0:
            self.ledger.take()
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pool_timeout_s
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(fut, remaining)
                if self.ledger.free > 0:
                    self.ledger.take()
                    return
                fut = loop.create_future()  # another caller got there first: first in line again
                self._waiters.appendleft(fut)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            if fut.done() and not fut.cancelled():
                self._wake()  # we were woken but leave: pass it on
            if isinstance(exc, TimeoutError):
                raise AskFailed(
                    self.stage, ErrorCode.agent_pool_exhausted,
                    f"all {self.ledger.max_connections} connections to the {self.agent} agent stayed busy for "
                    f"{self.pool_timeout_s:g} s", ["try again in a moment"],
                ) from None
            raise

    def _wake(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    # -- WebSocket ------------------------------------------------------------------------

    async def _open_ws(self, url: str) -> Any:
        ws_url = self._targets[url][0]
        try:
            conn = await websockets.connect(
                ws_url, additional_headers={"Authorization": f"Bearer {self.token}"},
                max_size=self.max_message_bytes, open_timeout=self.connect_timeout_s, compression=None,
                ping_interval=20, ping_timeout=20,
            )
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise TransportFailure(f"cannot open {ws_url}: {exc}") from None
        try:
            hello = loads(await asyncio.wait_for(conn.recv(), self.connect_timeout_s), max_bytes=self.max_message_bytes)
            if hello.get("type") != "hello" or hello.get("agent") != self.agent:
                raise TransportFailure(f"{ws_url} is not a {self.agent} agent (it said {hello!r:.200})")
            if hello.get("protocol") != PROTOCOL:
                raise TransportFailure(f"{ws_url} speaks agent protocol {hello.get('protocol')!r}, not {PROTOCOL}")
        except (OSError, TimeoutError, WireError, websockets.exceptions.WebSocketException) as exc:
            await conn.close()
            raise TransportFailure(f"no hello from {ws_url}: {exc}") from None
        except BaseException:
            await conn.close()
            raise
        return conn

    def _idle_connection(self, url: str) -> Any | None:
        conns = self._idle[url]
        while conns:
            conn = conns.pop()
            if conn.state is State.OPEN:
                return conn
            self._spawn(conn.close(), "close")
        return None

    async def _call_ws(self, url: str, op: str, args: dict[str, Any], on_progress: Callable[..., None]) -> Any:
        conn = self._idle_connection(url)
        answered = conn is None  # a fresh connection that fails counts; a stale idle one does not
        if conn is None:
            try:
                conn = await self._open_ws(url)
            except TransportFailure:
                self._ws_failed()
                raise
            self._ws_ok()
        call_id = secrets.token_hex(8)
        try:
            await conn.send(await encode({"id": call_id, "op": op, "args": args}, large=op == "chart"))
            while True:
                message = await decode(await conn.recv(), max_bytes=self.max_message_bytes)
                if message.get("id") != call_id:
                    continue  # a late message of a call this connection no longer serves
                answered = True
                kind = message.get("type")
                if kind == "progress":
                    on_progress(*message.get("args") or [])
                    continue
                if kind not in ("result", "error"):
                    continue
                self._idle[url].append(conn)
                conn = None
                self.calls["websocket"] += 1
                if kind == "error":
                    raise_error(self.agent, message)
                return message.get("data")
        except asyncio.CancelledError:
            if conn is not None:  # tell the agent to stop, then drop the connection
                self._spawn(self._cancel_and_close(conn, call_id), "cancel")
                conn = None
            raise
        except (OSError, websockets.exceptions.ConnectionClosed) as exc:
            if answered:
                self._ws_failed()
            raise TransportFailure(f"WebSocket to {url} lost: {exc}") from None
        except WireError as exc:
            raise TransportFailure(f"bad message from {url}: {exc}") from None
        finally:
            if conn is not None:
                self._spawn(conn.close(), "close")

    async def _cancel_and_close(self, conn: Any, call_id: str) -> None:
        with contextlib.suppress(OSError, TimeoutError, websockets.exceptions.WebSocketException):
            await asyncio.wait_for(conn.send(dumps({"id": call_id, "op": "cancel"})), 1.0)
        await conn.close()

    def _ws_failed(self) -> None:
        if self.mode.ws_failed():
            log.warning("%s agent: %d WebSocket failures in a row, calls go over HTTP", self.agent, self.mode.failures)
            self._tell("http", True)
            if self._probe is None or self._probe.done():
                self._probe = asyncio.get_running_loop().create_task(self._probe_loop(), name=f"{self.agent}-agent-probe")

    def _ws_ok(self) -> None:
        if self.mode.ws_succeeded():
            log.warning("%s agent: WebSocket works again", self.agent)
            self._tell("websocket", False)

    async def _probe_loop(self) -> None:
        """While calls go over HTTP: try a WebSocket now and then; keep it when it opens."""
        failed = 0
        while self.mode.degraded:
            await asyncio.sleep(self._probe_backoff.delay(failed))
            url = self.ledger.next_url(asyncio.get_running_loop().time())
            try:
                conn = await self._open_ws(url)
            except TransportFailure as exc:
                failed += 1
                log.info("%s agent probe: %s", self.agent, exc)
                continue
            self._idle[url].append(conn)
            self._ws_ok()

    async def _warm(self) -> None:
        for _ in range(self.min_connections):
            url = self.ledger.next_url()
            try:
                conn = await self._open_ws(url)
            except TransportFailure as exc:
                log.warning("%s agent: could not open a connection at startup: %s", self.agent, exc)
                continue
            self._idle[url].append(conn)

    # -- HTTP -----------------------------------------------------------------------------

    async def _call_http(self, url: str, op: str, args: dict[str, Any], on_progress: Callable[..., None]) -> Any:
        assert self._http is not None, "start() first"
        http_url = self._targets[url][1]
        body = await encode({"id": secrets.token_hex(8), "op": op, "args": args}, large=op == "chart")
        try:
            async with self._http.stream("POST", http_url, content=body.encode(), headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
            }) as response:
                if response.status_code != 200:
                    raise TransportFailure(f"{http_url} answered HTTP {response.status_code}")
                said = response.headers.get("x-livebi-agent")
                if said != f"{self.agent}/{PROTOCOL}":
                    raise TransportFailure(f"{http_url} is not a {self.agent} agent of protocol {PROTOCOL} (it said {said!r})")
                final = None
                async for line in response.aiter_lines():
                    if not line.strip() or final is not None:
                        continue  # the final line ends the stream: read to its end to keep the connection
                    message = await decode(line, max_bytes=self.max_message_bytes)
                    kind = message.get("type")
                    if kind == "progress":
                        on_progress(*message.get("args") or [])
                    elif kind in ("result", "error"):
                        final = message
                if final is None:
                    raise TransportFailure(f"{http_url} ended the stream without a result")
        except httpx.HTTPError as exc:
            raise TransportFailure(f"HTTP to {http_url} failed: {type(exc).__name__} {exc}") from None
        except WireError as exc:
            raise TransportFailure(f"bad message from {http_url}: {exc}") from None
        self.calls["http"] += 1
        if final["type"] == "error":
            raise_error(self.agent, final)
        return final.get("data")

    # -- helpers --------------------------------------------------------------------------

    def _tell(self, transport: str, degraded: bool) -> None:
        if self.on_transport_change is not None:
            self.on_transport_change(self.agent, transport, degraded)

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.agent}-agent-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s agent pool task failed", self.agent, exc_info=task.exception())
