"""Delivery benchmark: connection set-up, fan-out latency, a slow consumer, recovery, SSE.

    .venv/bin/python benchmarks/delivery.py                 # full run (a few minutes)
    .venv/bin/python benchmarks/delivery.py --quick         # small sizes, < 60 s
    .venv/bin/python benchmarks/delivery.py --readers 500 --client-procs 2 --json out.json

Processes (everything on 127.0.0.1):

- the **server**: this file re-run as ``--serve CONFIG`` in a subprocess. It builds the real
  server with ``build_server(Settings(...))`` (uvicorn, uvloop) and adds benchmark-only routes
  that exist nowhere else: ``POST /bench/publish`` starts a background task publishing
  ``notification``s on ``system`` at a fixed rate, each carrying ``t = time.time()`` taken just
  before ``services.publish``; ``GET /bench/state`` reports the channel position, the
  publisher's progress, the server's CPU time and every connection closed with a code other
  than 1000 (``Connection.close`` is wrapped in the server process to timestamp it).
- **reader workers** (``--client-procs``, default 2, ``multiprocessing`` spawn): each holds a
  share of the readers, which are real ``livebi.client.LiveClient`` instances subscribed to
  ``system``. A reader records ``time.time() - t`` when a publication reaches its
  subscription (after the frame was parsed and de-duplicated), the frames that carried
  benchmark messages (batching), and, after ``kill_transport``, when it was resubscribed and
  caught up.
- **this process** orchestrates (HTTP control calls, collection, the report), measures
  connection set-up itself, and drives the never-reading raw socket of the slow-consumer
  scenario.

Latencies are measured on one machine clock (``time.time()`` in two processes), so there is no
clock skew to correct. They include the client's own parsing: when a worker's CPU is near
100 % (see ``cliCPU`` and ``lag``) the figure measures the client as much as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

USER, PASSWORD = "bench", "bench-pw"
SECRET = "bench-secret"
CHANNEL = "system"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_queue_wait() -> float:
    """Seconds this process's threads spent runnable but waiting for a CPU (Linux schedstat).

    On a quiet machine it stays near zero; when it grows during a run, other processes took the
    CPU and the latencies measured then say more about the machine than about livebi.
    """
    total = 0.0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as f:
                total += int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0
    return total


def cpu_pressure() -> float | None:
    """The machine's CPU pressure (share of time some task waited for a CPU, last 10 s), %."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].split("=")[1])
    except (OSError, ValueError, IndexError):
        return None


def make_pad(n: int) -> str:
    """``n`` characters of random base64: JSON-safe and, like real data, not all that compressible."""
    return base64.b64encode(os.urandom(n * 3 // 4 + 3)).decode()[:n] if n > 0 else ""


def run_loop(coro: Any) -> Any:
    """Run with uvloop when installed (the server uses it too), else asyncio."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# ==========================================================================================
# Server process (benchmark-only routes live here and nowhere else)
# ==========================================================================================


def serve_main(cfg: dict[str, Any]) -> None:
    from livebi.config import Settings
    from livebi.realtime import connection as connection_module
    from livebi.server import build_server

    closes: list[dict[str, Any]] = []
    original_close = connection_module.Connection.close

    async def timed_close(self: Any, code: int = 1000, reason: str = "") -> None:
        if not self.closed and int(code) != 1000:
            closes.append({"conn": self.id, "code": int(code), "t": time.time()})
        await original_close(self, code, reason)

    connection_module.Connection.close = timed_close  # type: ignore[method-assign]

    # Time authentication per connection (signature + user lookup in the metadata store): a
    # ticket in the URL (browsers, LiveClient) or a token in a first auth op.
    from livebi import auth as auth_module
    from livebi import session as session_module

    auths: list[float] = []

    def timed(original: Any) -> Any:
        async def wrapper(self: Any, credential: str) -> Any:
            t = time.perf_counter()
            try:
                return await original(self, credential)
            finally:
                auths.append(time.perf_counter() - t)
                del auths[:-5000]

        return wrapper

    session_module.Session.authenticate = timed(session_module.Session.authenticate)  # type: ignore[method-assign]
    auth_module.Authenticator.redeem_ticket = timed(auth_module.Authenticator.redeem_ticket)  # type: ignore[method-assign]

    settings = Settings(
        host="127.0.0.1",
        port=cfg["port"],
        data_dir=Path(cfg["data_dir"]),
        warehouses={"demo": f"duckdb:///{cfg['demo']}"},
        store_url=f"sqlite:///{cfg['store']}",
        secret_key=SECRET,
        max_connections=100_000,
        max_connections_per_user=100_000,
        op_rate_per_s=0,
        outgoing_queue_bytes=cfg["queue_bytes"],
        presence=cfg["presence"],
    )
    server = build_server(settings, log_level="warning")
    if cfg.get("loop", "auto") != "auto":
        server.config.loop = cfg["loop"]  # e.g. "asyncio" instead of uvloop (a diagnostic switch)
    app = server.config.app

    # Timestamps of each WebSocket's life on the server: ASGI app invoked, accept sent, first frame sent.
    ws_times: list[list[float]] = []

    class WebSocketTiming:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                return await self.inner(scope, receive, send)
            row = [time.time(), 0.0, 0.0]
            ws_times.append(row)
            del ws_times[:-5000]

            async def timed_send(message: Any) -> None:
                if message["type"] == "websocket.accept":
                    row[1] = time.time()
                elif message["type"] == "websocket.send" and not row[2]:
                    row[2] = time.time()
                await send(message)

            await self.inner(scope, receive, timed_send)

    app.add_middleware(WebSocketTiming)

    # When the server's event loop took each new TCP connection (before any HTTP parsing).
    tcp_made: list[float] = []
    try:
        from uvicorn.protocols.http import httptools_impl

        original_made = httptools_impl.HttpToolsProtocol.connection_made

        def timed_made(self: Any, transport: Any) -> None:
            tcp_made.append(time.time())
            del tcp_made[:-5000]
            original_made(self, transport)

        httptools_impl.HttpToolsProtocol.connection_made = timed_made  # type: ignore[method-assign]
    except ImportError:  # h11 instead of httptools: no TCP timestamps
        pass
    from fastapi import Body

    pub: dict[str, Any] = {"task": None, "run": None, "published": 0, "count": 0, "started_at": None,
                           "finished_at": None, "lag": []}

    async def publisher(run: str, count: int, rate: float, pad: int, bulk_channel: str | None, bulk_pad: int) -> None:
        services = app.state.services
        loop = asyncio.get_running_loop()
        padding = make_pad(pad)
        bulk = make_pad(bulk_pad)
        start = loop.time() + 0.05
        pub["started_at"] = time.time() + 0.05
        for i in range(count):
            target = start + i / rate
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pub["lag"].append(loop.time() - target)
            await services.publish(CHANNEL, "notification", {"run": run, "i": i, "t": time.time(), "pad": padding})
            pub["published"] = i + 1
            if bulk_channel:
                await services.publish(bulk_channel, "notification", {"run": run + "-bulk", "i": i, "t": time.time(), "pad": bulk})
        pub["finished_at"] = time.time()

    async def bench_publish(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        if pub["task"] is not None and not pub["task"].done():
            return {"ok": False, "error": "a publisher is running"}
        pub.update(run=body["run"], published=0, count=body["count"], started_at=None, finished_at=None, lag=[])
        pub["task"] = asyncio.create_task(publisher(
            body["run"], body["count"], body["rate"], body.get("pad", 0), body.get("bulk_channel"), body.get("bulk_pad", 0)
        ))
        return {"ok": True}

    loop_lags: list[float] = []

    async def lag_monitor() -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            loop_lags.append(loop.time() - t - 0.01)
            del loop_lags[:-2000]  # the last ~20 s

    async def bench_ws_times(since: float = 0.0) -> dict[str, Any]:
        return {"rows": [r for r in ws_times if r[0] >= since], "tcp": [t for t in tcp_made if t >= since]}

    async def bench_auth(reset: int = 0) -> dict[str, Any]:
        values = sorted(auths)
        if reset:
            auths.clear()
        return {"n": len(values), "p50": values[len(values) // 2] if values else 0.0,
                "p95": values[int(len(values) * 0.95)] if values else 0.0, "max": values[-1] if values else 0.0}

    async def bench_lag(reset: int = 0) -> dict[str, Any]:
        if pub.get("lag_task") is None:  # the first call, right after start-up
            pub["lag_task"] = asyncio.create_task(lag_monitor())
            pub["orphan_watch"] = asyncio.create_task(orphan_watch())
        lags = sorted(loop_lags)
        if reset:
            loop_lags.clear()
        return {"p50": lags[len(lags) // 2] if lags else 0.0, "p99": lags[int(len(lags) * 0.99)] if lags else 0.0,
                "max": lags[-1] if lags else 0.0, "n": len(lags)}

    async def bench_profile(seconds: float = 5.0, top: int = 40) -> dict[str, Any]:
        """cProfile the server's thread for ``seconds`` (diagnostics; callbacks in uvloop's C code are not seen)."""
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        await asyncio.sleep(seconds)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
        return {"text": out.getvalue()}

    async def bench_tasks() -> dict[str, Any]:
        """Where every task of the server is waiting (diagnostics)."""
        import collections as _c

        where: _c.Counter[str] = _c.Counter()
        for task in asyncio.all_tasks():
            chain, coro = [], task.get_coro()
            while coro is not None and len(chain) < 40:
                frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                if frame is not None:
                    chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
            where[" > ".join(chain[-5:])] += 1
        return {"tasks": where.most_common(30)}

    async def bench_state() -> dict[str, Any]:
        services = app.state.services
        task = pub["task"]
        if task is not None and task.done() and task.exception() is not None:
            raise task.exception()
        lag = sorted(pub["lag"])
        return {
            "seq": services.hub.position(CHANNEL)[1],
            "run": pub["run"],
            "publishing": task is not None and not task.done(),
            "published": pub["published"],
            "started_at": pub["started_at"],
            "finished_at": pub["finished_at"],
            "publish_lag_p99": lag[min(len(lag) - 1, int(len(lag) * 0.99))] if lag else 0.0,
            "publish_lag_max": lag[-1] if lag else 0.0,
            "cpu": time.process_time(),
            "wait": run_queue_wait(),
            "now": time.time(),
            "connections": len(services.connections.connections),
            "closes": closes[-50:],
            "closes_by_code": {str(c): sum(1 for x in closes if x["code"] == c) for c in {x["code"] for x in closes}},
        }

    parent = os.getppid()

    async def orphan_watch() -> None:
        """Stop when the benchmark that started this server is gone (killed, crashed)."""
        while os.getppid() == parent:
            await asyncio.sleep(1)
        server.should_exit = True

    app.add_api_route("/bench/publish", bench_publish, methods=["POST"])
    app.add_api_route("/bench/state", bench_state, methods=["GET"])
    app.add_api_route("/bench/lag", bench_lag, methods=["GET"])
    app.add_api_route("/bench/auth", bench_auth, methods=["GET"])
    app.add_api_route("/bench/ws_times", bench_ws_times, methods=["GET"])
    app.add_api_route("/bench/tasks", bench_tasks, methods=["GET"])
    app.add_api_route("/bench/profile", bench_profile, methods=["GET"])
    server.run()


# ==========================================================================================
# Reader workers
# ==========================================================================================


class Reader:
    """One LiveClient subscribed to ``system``; doubles as its subscription's queue (recorder)."""

    def __init__(self, worker: "Worker", client: Any) -> None:
        self.w = worker
        self.client = client
        self.sub: Any = None
        self.reset()

    def reset(self) -> None:
        self.lat: list[float] = []
        self.got: list[int] = []
        self.frames = 0  # frames that carried at least one message of the current run
        self.msgs = 0  # messages of the current run inside those frames
        self.kill_t: float | None = None
        self.resub_t: float | None = None
        self.caught_t: float | None = None
        self.target_seq: int | None = None
        self.recovered_after_kill: Any = "n/a"
        self.killed = False
        self.states: list[tuple[str, float]] = []  # (state, time) after a kill

    async def start(self) -> None:
        await self.client.connect()
        self.sub = await self.client.subscribe(CHANNEL)
        self.sub._queue = self  # Subscription._accept (after dedup) calls put_nowait(pub)
        original_subscribed = self.sub._subscribed

        def subscribed(data: dict[str, Any]) -> None:
            original_subscribed(data)
            self.on_subscribed(data)

        self.sub._subscribed = subscribed
        original_set_state = self.client._set_state

        def set_state(state: str, detail: str | None = None) -> None:
            if self.kill_t is not None and self.resub_t is None:
                self.states.append((state, time.time()))
            original_set_state(state, detail)

        self.client._set_state = set_state
        original_on_connected = self.client._on_connected

        async def on_connected(transport: str, resumed: list[dict[str, Any]]) -> None:
            if self.kill_t is not None and self.resub_t is None:
                self.states.append(("open", time.time()))  # socket open and the first ping answered
            await original_on_connected(transport, resumed)

        self.client._on_connected = on_connected
        if self.client.active_transport == "sse":
            original_sse = self.client._on_sse_message
            depth = [0]

            async def on_sse(message: dict[str, Any]) -> None:
                if depth[0] == 0:
                    self.count_frame(message)
                depth[0] += 1
                try:
                    await original_sse(message)
                finally:
                    depth[0] -= 1

            self.client._on_sse_message = on_sse
        else:
            original_dispatch = self.client._dispatch
            depth = [0]

            def dispatch(message: dict[str, Any]) -> None:
                if depth[0] == 0:
                    self.count_frame(message)
                depth[0] += 1
                try:
                    original_dispatch(message)
                finally:
                    depth[0] -= 1

            self.client._dispatch = dispatch

    def count_frame(self, message: dict[str, Any]) -> None:
        run = self.w.run
        if message.get("type") == "message_batch":
            k = sum(1 for m in message["messages"] if m.get("type") == "notification" and m["data"].get("run") == run)
        else:
            k = 1 if message.get("type") == "notification" and message["data"].get("run") == run else 0
        if k:
            self.frames += 1
            self.msgs += k

    def put_nowait(self, pub: dict[str, Any]) -> None:
        now = time.time()
        if self.target_seq is not None and self.caught_t is None and pub["seq"] >= self.target_seq:
            self.caught_t = now
        if pub["type"] == "notification":
            data = pub["data"]
            if data.get("run") == self.w.run:
                self.lat.append(now - data["t"])
                self.got.append(data["i"])

    def on_subscribed(self, data: dict[str, Any]) -> None:
        if self.kill_t is None or self.resub_t is not None:
            return
        now = time.time()
        self.resub_t = now
        self.recovered_after_kill = data.get("recovered")
        self.target_seq = data["seq"]
        if self.sub.seq >= data["seq"]:  # the replay came in the reply's batch, already applied
            self.caught_t = now


class Worker:
    def __init__(self, conn: Any, wid: int) -> None:
        self.conn = conn
        self.wid = wid
        self.readers: list[Reader] = []
        self.run: str | None = None
        self.lags: list[float] = []
        self.cpu0 = time.process_time()
        self.t0 = time.time()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        lag_task = asyncio.create_task(self._lag_monitor())
        try:
            while True:
                msg = await loop.run_in_executor(None, self.conn.recv)
                try:
                    reply = await getattr(self, "cmd_" + msg["cmd"])(**msg.get("args", {}))
                except Exception as exc:  # reported to the orchestrator, which stops
                    reply = {"error": f"worker {self.wid}: {exc!r}", "traceback": traceback.format_exc()}
                self.conn.send(reply)
                if msg["cmd"] == "exit":
                    return
        finally:
            lag_task.cancel()

    async def _lag_monitor(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            if len(self.lags) < 200_000:
                self.lags.append(loop.time() - t - 0.01)

    async def cmd_connect(
        self, n: int, transport: str, base_url: str, token: str, deflate: bool = True, chunk: int = 50
    ) -> dict[str, Any]:
        from livebi.client import LiveClient

        if not deflate:
            no_deflate()
        times: list[float] = []
        failures: list[str] = []
        # Built first: each LiveClient creates an httpx.AsyncClient (tens of ms of CPU for its
        # SSL context), which would otherwise block the loop inside the timed connects.
        t = time.perf_counter()
        clients = [LiveClient(base_url, token, transport=transport) for _ in range(n)]
        build = (time.perf_counter() - t) / max(1, n)

        async def one(client: Any) -> None:
            reader = Reader(self, client)
            t = time.perf_counter()
            try:
                await reader.start()
            except Exception as exc:
                failures.append(repr(exc))
                await client.close()
                return
            times.append(time.perf_counter() - t)
            self.readers.append(reader)

        for i in range(0, n, chunk):
            await asyncio.gather(*(one(c) for c in clients[i:i + chunk]))
        return {"times": times, "failures": failures, "readers": len(self.readers), "build": build}

    async def cmd_reset(self, run: str) -> dict[str, Any]:
        self.run = run
        for r in self.readers:
            r.reset()
        self.lags = []
        self.cpu0 = time.process_time()
        self.wait0 = run_queue_wait()
        self.t0 = time.time()
        return {}

    async def cmd_sync(self, seq: int, timeout: float) -> dict[str, Any]:
        """Wait until every reader has reached ``seq`` on the channel."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            behind = [r for r in self.readers if r.sub.seq < seq]
            if not behind:
                return {"behind": 0}
            await asyncio.sleep(0.02)
        return {"behind": len(behind)}

    async def cmd_kill(self, k: int, timeout: float) -> dict[str, Any]:
        victims = self.readers[:k]
        for r in victims:
            r.killed = True
            r.kill_t = time.time()
            await r.client.kill_transport()
        deadline = time.time() + timeout
        while time.time() < deadline and any(r.caught_t is None for r in victims):
            await asyncio.sleep(0.01)
        return {"killed": len(victims), "not_recovered": sum(1 for r in victims if r.caught_t is None)}

    async def cmd_collect(self, count: int) -> dict[str, Any]:
        wall = time.time() - self.t0
        cpu = time.process_time() - self.cpu0
        wait = run_queue_wait() - self.wait0
        lags = sorted(self.lags)
        out = []
        for r in self.readers:
            got = r.got
            out.append({
                "lat": r.lat,
                "received": len(got),
                "missing": count - len(set(got)),
                "dups": len(got) - len(set(got)),
                "in_order": got == sorted(got),
                "gaps": r.sub.gaps,
                "frames": r.frames,
                "msgs": r.msgs,
                "killed": r.killed,
                "resub": (r.resub_t - r.kill_t) if r.killed and r.resub_t else None,
                "caught": (r.caught_t - r.kill_t) if r.killed and r.caught_t else None,
                "recovered": r.recovered_after_kill,
                "states": [(st, t - r.kill_t) for st, t in r.states] if r.killed else [],
                "transport": r.client.active_transport,
            })
        return {
            "readers": out,
            "cpu": cpu,
            "wait": wait,
            "wall": wall,
            "lag_p99": lags[int(len(lags) * 0.99)] if lags else 0.0,
            "lag_max": lags[-1] if lags else 0.0,
        }

    async def cmd_close(self) -> dict[str, Any]:
        readers, self.readers = self.readers, []
        for i in range(0, len(readers), 100):
            await asyncio.gather(*(r.client.close() for r in readers[i:i + 100]), return_exceptions=True)
        return {}

    async def cmd_exit(self) -> dict[str, Any]:
        await self.cmd_close()
        return {}


def no_deflate() -> None:
    """Make websockets.connect (used by LiveClient) offer no permessage-deflate."""
    import websockets

    if getattr(websockets.connect, "_bench_no_deflate", False):
        return
    original = websockets.connect

    def connect(*args: Any, **kw: Any) -> Any:
        kw.setdefault("compression", None)
        return original(*args, **kw)

    connect._bench_no_deflate = True  # type: ignore[attr-defined]
    websockets.connect = connect


def worker_main(conn: Any, wid: int) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    run_loop(Worker(conn, wid).serve())


class WorkerHandle:
    def __init__(self, wid: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, wid), daemon=True, name=f"bench-readers-{wid}")
        self.proc.start()
        self.lock = asyncio.Lock()
        self.readers = 0

    async def call(self, cmd: str, wait: float = 300, **args: Any) -> dict[str, Any]:
        async with self.lock:
            self.conn.send({"cmd": cmd, "args": args})
            loop = asyncio.get_running_loop()
            ready = await loop.run_in_executor(None, self.conn.poll, wait)
            if not ready:
                raise TimeoutError(f"worker did not answer {cmd} within {wait} s")
            reply = self.conn.recv()
        if "error" in reply:
            raise RuntimeError(reply["error"] + "\n" + reply.get("traceback", ""))
        return reply


# ==========================================================================================
# The never-reading client (same idea as tests/integration/test_delivery.py::RawWebSocket)
# ==========================================================================================


class RawWebSocket:
    """A blocking WebSocket client with a 4 KiB receive buffer that reads only when told to."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))

    def send_text(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def read_close_code(self, timeout: float) -> tuple[int | None, int]:
        """Read frames until the close frame: (its code, data frames read before it)."""
        self.sock.settimeout(timeout)
        buf = b""
        frames = 0

        def need(k: int) -> bytes:
            nonlocal buf
            while len(buf) < k:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("closed without a close frame")
                buf += chunk
            out, buf = buf[:k], buf[k:]
            return out

        while True:
            b0, b1 = need(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", need(8))[0]
            payload = need(n)
            if b0 & 0x0F == 0x8:
                return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None), frames
            frames += 1

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ==========================================================================================
# Orchestration
# ==========================================================================================


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def ms(x: float) -> str:
    return "   n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1000:6.1f}"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="livebi-bench-"))
        self.server: subprocess.Popen | None = None
        self.port = 0
        self.base_url = ""
        self.token = ""
        self.user_id = ""
        self.workers: list[WorkerHandle] = []
        self.results: dict[str, Any] = {"runs": {}, "connect": {}, "reader_connect": {}, "slow": {}, "recovery": {}}
        self.http: Any = None
        self.idle_cpu = 0.0

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    # Server --------------------------------------------------------------------------------

    async def setup_data(self) -> None:
        from livebi.auth import hash_password
        from livebi.demo.generate import generate_demo
        from livebi.store import MetadataStore

        self.demo = self.tmp / "demo.duckdb"
        generate_demo(self.demo, rows=20_000)
        self.store = self.tmp / "meta.db"
        store = await MetadataStore.open(f"sqlite:///{self.store}")
        try:
            await store.add_user(USER, hash_password(PASSWORD))
        finally:
            await store.close()

    async def start_server(self) -> None:
        import httpx

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        data_dir = self.tmp / "data"
        data_dir.mkdir(exist_ok=True)
        cfg = {"port": self.port, "data_dir": str(data_dir), "demo": str(self.demo), "store": str(self.store),
               "queue_bytes": self.args.queue_kib * 1024, "presence": not self.args.no_presence,
               "loop": self.args.server_loop}
        self.server_log_path = self.tmp / "server.log"
        self.server_log = open(self.server_log_path, "w")
        self.server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", json.dumps(cfg)],
                                       stdout=self.server_log, stderr=subprocess.STDOUT)
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30)
        for _ in range(600):
            if self.server.poll() is not None:
                raise RuntimeError(f"server exited: {self.server_log_path.read_text()[-3000:]}")
            try:
                if (await self.http.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("server did not start within 60 s")
        r = await self.http.post("/api/login", json={"username": USER, "password": PASSWORD})
        r.raise_for_status()
        self.token = r.json()["token"]
        self.user_id = r.json()["user"]["id"]
        await self.http.get("/bench/lag")  # starts the server's event-loop lag monitor
        # The server's CPU while idle but polled like during a run (the benchmark's own overhead).
        s0 = await self.state()
        for _ in range(8):
            await asyncio.sleep(0.25)
            await self.state()
        s1 = await self.state()
        self.idle_cpu = (s1["cpu"] - s0["cpu"]) / max(1e-9, s1["now"] - s0["now"])
        self.results["server_idle_cpu"] = self.idle_cpu
        self.log(f"server up on port {self.port} (pid {self.server.pid}, outgoing_queue_bytes={cfg['queue_bytes']}, "
                 f"presence {'on' if cfg['presence'] else 'off'})")

    async def stop_server(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.server.wait, 30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None

    async def state(self) -> dict[str, Any]:
        r = await self.http.get("/bench/state")
        r.raise_for_status()
        return r.json()

    async def metric(self, name: str) -> float | None:
        text = (await self.http.get("/metrics")).text
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    # Workers -------------------------------------------------------------------------------

    async def all_workers(self, cmd: str, wait: float = 300, **args: Any) -> list[dict[str, Any]]:
        return await asyncio.gather(*(w.call(cmd, wait, **args) for w in self.workers))

    async def add_readers(self, n: int, transport: str = "ws") -> dict[str, Any]:
        """Connect and subscribe ``n`` more readers, spread over the workers; wait until settled."""
        shares = [0] * len(self.workers)
        for _ in range(n):
            shares[min(range(len(self.workers)), key=lambda k: self.workers[k].readers + shares[k])] += 1
        t = time.perf_counter()
        replies = await asyncio.gather(*(
            w.call("connect", 600, n=s, transport=transport, base_url=self.base_url, token=self.token,
                   deflate=not self.args.no_deflate)
            for w, s in zip(self.workers, shares) if s
        ))
        for w, s in zip(self.workers, shares):
            w.readers += s
        elapsed = time.perf_counter() - t
        failures = [f for r in replies for f in r["failures"]]
        if failures:
            raise RuntimeError(f"{len(failures)} readers failed to connect: {failures[:3]}")
        times = [x for r in replies for x in r["times"]]
        await self.settle()
        total = sum(w.readers for w in self.workers)
        res = {"n": n, "total": total, "transport": transport, "elapsed": elapsed, "p50": pct(times, 50),
               "p95": pct(times, 95), "build": max(r["build"] for r in replies)}
        self.results["reader_connect"][f"{transport}-{total}"] = res
        self.log(f"{n} {transport} readers connected+subscribed ({total} in all): p50 {ms(res['p50'])} "
                 f"p95 {ms(res['p95'])} ms, {elapsed:.1f} s wall (LiveClient() build {res['build'] * 1000:.0f} ms each)")
        return res

    async def settle(self, timeout: float = 60) -> None:
        """Wait until the channel is quiet and every reader has seen all of it (presence storms)."""
        last, stable_since = -1, time.time()
        deadline = time.time() + timeout
        while time.time() < deadline:
            seq = (await self.state())["seq"]
            if seq != last:
                last, stable_since = seq, time.time()
            elif time.time() - stable_since > 0.3:
                break
            await asyncio.sleep(0.1)
        behind = sum(r["behind"] for r in await self.all_workers("sync", seq=last, timeout=timeout))
        if behind:
            raise RuntimeError(f"{behind} readers did not reach seq {last}")

    async def close_readers(self) -> None:
        await self.all_workers("close")
        for w in self.workers:
            w.readers = 0
        await asyncio.sleep(0.5)

    # One publishing run ----------------------------------------------------------------------

    async def run(self, name: str, *, ref: str | None = None, pad: int = 0, bulk_channel: str | None = None,
                  bulk_pad: int = 0, during: Any = None) -> dict[str, Any]:
        a = self.args
        count, rate = a.count, a.rate
        readers = sum(w.readers for w in self.workers)
        self.log(f"run {name}: {readers} readers, {count} messages at {rate:g}/s, pad {pad} B"
                 + (f", plus {bulk_pad} B each on {bulk_channel}" if bulk_channel else ""))
        await self.all_workers("reset", run=name)
        await self.http.get("/bench/lag", params={"reset": 1})
        s0 = await self.state()
        r = await self.http.post("/bench/publish", json={"run": name, "count": count, "rate": rate, "pad": pad,
                                                         "bulk_channel": bulk_channel, "bulk_pad": bulk_pad})
        if not r.json().get("ok"):
            raise RuntimeError(r.text)
        extra = await during() if during else None
        deadline = time.time() + count / rate + 60
        while True:
            s1 = await self.state()
            if not s1["publishing"] and s1["run"] == name and s1["published"] == count:
                break
            if time.time() > deadline:
                raise RuntimeError(f"publisher did not finish: {s1}")
            await asyncio.sleep(0.25)
        server_cpu = (s1["cpu"] - s0["cpu"]) / max(1e-9, s1["now"] - s0["now"])
        server_wait = (s1["wait"] - s0["wait"]) / max(1e-9, s1["now"] - s0["now"])
        server_lag = (await self.http.get("/bench/lag")).json()
        sync = await self.all_workers("sync", seq=s1["seq"], timeout=30)
        collected = await self.all_workers("collect", count=count)
        per_reader = [r for c in collected for r in c["readers"]]
        lat = [x for r in per_reader for x in r["lat"]]
        frames = sum(r["frames"] for r in per_reader)
        msgs = sum(r["msgs"] for r in per_reader)
        res = {
            "name": name, "ref": ref or next(iter(self.results["runs"]), name),
            "readers": len(per_reader), "count": count, "rate": rate, "pad": pad,
            "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99), "max": max(lat) if lat else float("nan"),
            "mean": sum(lat) / len(lat) if lat else float("nan"),
            "received": sum(r["received"] for r in per_reader),
            "expected": count * len(per_reader),
            "missing": sum(r["missing"] for r in per_reader),
            "dups": sum(r["dups"] for r in per_reader),
            "out_of_order": sum(1 for r in per_reader if not r["in_order"]),
            "gaps": sum(r["gaps"] for r in per_reader),
            "frames": frames, "msgs": msgs, "msgs_per_frame": msgs / frames if frames else float("nan"),
            "server_cpu": server_cpu,
            "server_wait": server_wait,
            "server_us_per_msg": max(0.0, s1["cpu"] - s0["cpu"] - self.idle_cpu * (s1["now"] - s0["now"]))
            / max(1, sum(r["received"] for r in per_reader)) * 1e6,
            "server_lag_p99": server_lag["p99"], "server_lag_max": server_lag["max"],
            "client_cpu": [c["cpu"] / max(1e-9, c["wall"]) for c in collected],
            "client_wait": [c["wait"] / max(1e-9, c["wall"]) for c in collected],
            "client_lag_p99": max(c["lag_p99"] for c in collected),
            "publish_lag_p99": s1["publish_lag_p99"],
            "behind_after": sum(x["behind"] for x in sync),
            "publish_started_at": s1["started_at"],
            "extra": extra,
        }
        self.log(
            f"  mean {ms(res['mean'])} p50 {ms(res['p50'])} p95 {ms(res['p95'])} p99 {ms(res['p99'])} max {ms(res['max'])} ms; "
            f"received {res['received']}/{res['expected']}, {res['msgs_per_frame']:.2f} msgs/frame, server CPU "
            f"{server_cpu:.0%} (waited for a CPU {server_wait:.0%}), client CPU "
            f"{'/'.join(f'{c:.0%}' for c in res['client_cpu'])}"
        )
        self.results["runs"][name] = res
        return {**res, "per_reader": per_reader}

    # Scenarios ------------------------------------------------------------------------------

    async def ticket(self) -> str:
        """A single-use connection ticket (tokens are refused in URLs)."""
        r = await self.http.post("/api/ticket", headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return r.json()["ticket"]

    async def scenario_connect(self) -> None:
        import websockets

        a = self.args
        kw: dict[str, Any] = {"max_size": None}
        if a.no_deflate:
            kw["compression"] = None

        async def one(keep: list | None) -> float:
            # As browsers and LiveClient do: a fresh single-use ticket, then the socket.
            t = time.perf_counter()
            ws = await websockets.connect(f"ws://127.0.0.1:{self.port}/ws?ticket={await self.ticket()}", **kw)
            await ws.send('{"id":1,"op":"ping"}')
            reply = json.loads(await ws.recv())
            elapsed = time.perf_counter() - t
            if not reply.get("ok"):
                raise RuntimeError(reply)
            if keep is None:
                await ws.close()
            else:
                keep.append(ws)
            return elapsed

        self.log(f"connect: {a.connect_seq} sequential connects, then bursts of {a.connect_bursts}")
        seq = [await one(None) for _ in range(a.connect_seq)]
        c: dict[str, Any] = {"seq_n": len(seq), "seq_p50": pct(seq, 50), "seq_p95": pct(seq, 95), "seq_max": max(seq),
                             "bursts": []}
        for n in a.connect_bursts:
            kept: list = []
            await self.http.get("/bench/auth", params={"reset": 1})
            s0 = await self.state()
            t = time.perf_counter()
            burst = list(await asyncio.gather(*(one(kept) for _ in range(n))))
            wall = time.perf_counter() - t
            s1 = await self.state()
            auth = (await self.http.get("/bench/auth", params={"reset": 1})).json()
            c["bursts"].append({"auth_p50": auth["p50"], "auth_p95": auth["p95"], "n": n, "p50": pct(burst, 50), "p95": pct(burst, 95), "max": max(burst), "wall": wall,
                                "open": s1["connections"], "server_cpu_ms_per_conn": (s1["cpu"] - s0["cpu"]) / n * 1000})
            await asyncio.gather(*(ws.close() for ws in kept), return_exceptions=True)
            await asyncio.sleep(0.5)
        logins = []
        for _ in range(5):
            t = time.perf_counter()
            r = await self.http.post("/api/login", json={"username": USER, "password": PASSWORD})
            r.raise_for_status()
            logins.append(time.perf_counter() - t)
        c["login_p50"], c["login_max"] = pct(logins, 50), max(logins)
        self.results["connect"] = c
        self.log(f"  sequential p50 {ms(c['seq_p50'])} p95 {ms(c['seq_p95'])} ms; " + "; ".join(
            f"burst of {b['n']}: p50 {ms(b['p50'])} p95 {ms(b['p95'])} ms ({b['wall']:.2f} s wall, "
            f"{b['server_cpu_ms_per_conn']:.1f} ms server CPU each)" for b in c["bursts"]))

    async def scenario_slow(self) -> None:
        a = self.args
        bulk_channel = f"user:{self.user_id}" if a.slow_bulk else None
        kw = {"pad": a.slow_pad, "bulk_channel": bulk_channel, "bulk_pad": a.slow_bulk}
        base_name = f"slow-baseline-{a.readers}"
        base = await self.run(base_name, **kw)
        before = await self.metric("livebi_slow_consumers_total") or 0.0

        slow = await asyncio.to_thread(RawWebSocket, self.port, "/ws?ticket=" + await self.ticket())
        await asyncio.to_thread(slow.send_text, json.dumps({"id": 1, "op": "subscribe", "channel": CHANNEL}))
        if bulk_channel:
            await asyncio.to_thread(slow.send_text, json.dumps({"id": 2, "op": "subscribe", "channel": bulk_channel}))
        await asyncio.sleep(0.3)
        await self.settle()
        info: dict[str, Any] = {"close_code": None, "cut_t": None, "frames_read": None}

        async def during() -> dict[str, Any]:
            deadline = time.time() + a.count / a.rate + 5
            while time.time() < deadline:
                s = await self.state()
                cuts = [c for c in s["closes"] if c["code"] == 4008]
                if cuts:
                    info["cut_t"] = cuts[0]["t"]
                    info["published_at_cut"] = s["published"]
                    break
                await asyncio.sleep(0.05)
            # Read what the kernel buffered, then the close frame (the server waits up to 5 s for it).
            info["reader"] = asyncio.ensure_future(asyncio.to_thread(slow.read_close_code, 15))
            return {}

        res = await self.run(f"slow-with-slow-reader-{a.readers}", ref=base_name, during=during, **kw)
        try:
            code, frames = await info.pop("reader")
            info["close_code"], info["frames_read"] = code, frames
        except Exception as exc:
            info["close_code"] = f"error: {exc!r}"
        finally:
            slow.close()
        await asyncio.sleep(0.5)
        after = await self.metric("livebi_slow_consumers_total") or 0.0
        st = await self.state()
        cut_after = (info["cut_t"] - res["publish_started_at"]) if info["cut_t"] else None
        self.results["slow"] = {
            "pad": a.slow_pad, "bulk": a.slow_bulk, "bulk_channel": bulk_channel,
            "queue_bytes": a.queue_kib * 1024,
            "close_code": info["close_code"],
            "frames_read_before_close": info["frames_read"],
            "cut_after_s": cut_after,
            "published_at_cut": info.get("published_at_cut"),
            "slow_consumers_metric": after - before,
            "closes_by_code": st["closes_by_code"],
            "base_p50": base["p50"], "base_p95": base["p95"], "base_p99": base["p99"], "base_mean": base["mean"],
            "slow_p50": res["p50"], "slow_p95": res["p95"], "slow_p99": res["p99"], "slow_mean": res["mean"],
            "ratio_p50": res["p50"] / base["p50"], "ratio_p95": res["p95"] / base["p95"],
            "normal_received": res["received"], "normal_expected": res["expected"], "normal_missing": res["missing"],
        }
        s = self.results["slow"]
        self.log(f"  slow reader: close code {s['close_code']}, cut off "
                 f"{'never' if cut_after is None else f'{cut_after:.2f} s'} after publishing began; "
                 f"livebi_slow_consumers_total +{s['slow_consumers_metric']:g}; normal readers p50 x{s['ratio_p50']:.2f}, "
                 f"p95 x{s['ratio_p95']:.2f} vs baseline; received {res['received']}/{res['expected']}")

    async def scenario_recovery(self, ref: str) -> None:
        a = self.args
        shares = [0] * len(self.workers)
        for i in range(a.kill):
            shares[i % len(self.workers)] += 1

        async def during() -> dict[str, Any]:
            await asyncio.sleep(a.seconds * 0.3)
            await self.http.get("/bench/auth", params={"reset": 1})
            t = time.perf_counter()
            kill_at = time.time()
            replies = await asyncio.gather(*(w.call("kill", 120, k=s, timeout=60) for w, s in zip(self.workers, shares) if s))
            auth = (await self.http.get("/bench/auth", params={"reset": 1})).json()
            times = (await self.http.get("/bench/ws_times", params={"since": kill_at})).json()
            rows = times["rows"]
            return {"tcp": times["tcp"], "not_recovered": sum(r["not_recovered"] for r in replies), "wall": time.perf_counter() - t,
                    "auth": auth, "ws_rows": rows, "kill_at": kill_at}

        res = await self.run("recovery", ref=ref, during=during)
        killed = [r for r in res["per_reader"] if r["killed"]]
        others = [r for r in res["per_reader"] if not r["killed"]]
        resub = [r["resub"] for r in killed if r["resub"] is not None]
        caught = [r["caught"] for r in killed if r["caught"] is not None]
        other_lat = [x for r in others for x in r["lat"]]
        attempt = [next((t for st, t in r["states"] if st == "reconnecting"), None) for r in killed]
        attempt = [t for t in attempt if t is not None]
        opened = [next((t for st, t in r["states"] if st == "open"), None) for r in killed]
        opened = [t for t in opened if t is not None]
        retried = sum(1 for r in killed if sum(1 for st, _ in r["states"] if st == "reconnecting") > 1)
        base = self.results["runs"][ref]
        rec = {
            "killed": len(killed), "of": len(res["per_reader"]),
            "not_recovered": res["extra"]["not_recovered"],
            "attempt_p50": pct(attempt, 50), "attempt_p95": pct(attempt, 95),
            "open_p50": pct(opened, 50), "open_p95": pct(opened, 95), "retried": retried,
            "auth": res["extra"]["auth"],
            "srv_tcp_p50": pct([t - res["extra"]["kill_at"] for t in res["extra"]["tcp"]], 50),
            "srv_tcp_p95": pct([t - res["extra"]["kill_at"] for t in res["extra"]["tcp"]], 95),
            "srv_invoked_p50": pct([r[0] - res["extra"]["kill_at"] for r in res["extra"]["ws_rows"]], 50),
            "srv_invoked_p95": pct([r[0] - res["extra"]["kill_at"] for r in res["extra"]["ws_rows"]], 95),
            "srv_accept_p50": pct([r[1] - r[0] for r in res["extra"]["ws_rows"] if r[1]], 50),
            "srv_accept_p95": pct([r[1] - r[0] for r in res["extra"]["ws_rows"] if r[1]], 95),
            "srv_first_send_p50": pct([r[2] - r[1] for r in res["extra"]["ws_rows"] if r[2] and r[1]], 50),
            "srv_first_send_p95": pct([r[2] - r[1] for r in res["extra"]["ws_rows"] if r[2] and r[1]], 95),
            "states": [r["states"] for r in killed][:5],
            "resub_p50": pct(resub, 50), "resub_p95": pct(resub, 95), "resub_max": max(resub) if resub else float("nan"),
            "caught_p50": pct(caught, 50), "caught_p95": pct(caught, 95), "caught_max": max(caught) if caught else float("nan"),
            "recovered_true": sum(1 for r in killed if r["recovered"] is True),
            "killed_missing": sum(r["missing"] for r in killed),
            "killed_dups": sum(r["dups"] for r in killed),
            "killed_out_of_order": sum(1 for r in killed if not r["in_order"]),
            "all_missing": res["missing"],
            "others_p50": pct(other_lat, 50), "others_p95": pct(other_lat, 95), "others_p99": pct(other_lat, 99),
            "base_p50": base["p50"], "base_p95": base["p95"], "base_p99": base["p99"],
        }
        self.results["recovery"] = rec
        self.log(f"  {len(killed)} killed: reconnect attempt began p50 {ms(rec['attempt_p50'])} p95 {ms(rec['attempt_p95'])} ms, "
                 f"resubscribed p50 {ms(rec['resub_p50'])} p95 {ms(rec['resub_p95'])} ms, "
                 f"caught up p50 {ms(rec['caught_p50'])} p95 {ms(rec['caught_p95'])} max {ms(rec['caught_max'])} ms; "
                 f"recovered=true {rec['recovered_true']}/{len(killed)}; missing {rec['killed_missing']}, dups {rec['killed_dups']}")

    # Main ----------------------------------------------------------------------------------

    async def main(self) -> None:
        a = self.args
        t_start = time.time()
        self.results["load_before"] = os.getloadavg()
        self.results["pressure_before"] = cpu_pressure()
        await self.setup_data()
        self.workers = [WorkerHandle(i) for i in range(a.client_procs)]
        try:
            only = set(a.only.split(","))
            await self.start_server()
            if "connect" in only:
                await self.scenario_connect()
            have = 0
            for size in a.sizes:
                await self.add_readers(size - have)
                have = size
                await self.run(f"ws-{size}")
            if "slow" in only:
                await self.scenario_slow()
            if "recovery" in only:
                await self.scenario_recovery(ref=f"ws-{a.readers}")
            await self.close_readers()
            if not a.no_sse and "sse" in only:
                await self.add_readers(a.sse_readers, "sse")
                await self.run(f"sse-{a.sse_readers}", ref=f"ws-{a.sse_readers}")
                await self.close_readers()
        finally:
            for w in self.workers:
                try:
                    await w.call("exit", 60)
                except Exception:
                    pass
                w.proc.join(10)
                if w.proc.is_alive():
                    w.proc.terminate()
            await self.stop_server()
        self.results["elapsed_s"] = time.time() - t_start
        self.results["load_after"] = os.getloadavg()
        self.results["pressure_after"] = cpu_pressure()
        self.report()
        if a.json:
            Path(a.json).write_text(json.dumps(self.results, indent=2, default=str))
        if a.keep:
            print(f"(temp dir kept: {self.tmp})")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self) -> None:
        a = self.args
        R = self.results
        runs = R["runs"]
        w = 120
        print("\n" + "=" * w)
        print(f"livebi delivery benchmark   {os.cpu_count()} CPUs   1 server process (uvicorn + uvloop)   "
              f"{a.client_procs} reader process(es) of LiveClient (uvloop)   permessage-deflate "
              f"{'off' if a.no_deflate else 'on'}   presence {'off' if a.no_presence else 'on'}   {R['elapsed_s']:.0f} s")
        lb, la = R["load_before"], R["load_after"]
        busy = max((r["server_wait"] for r in runs.values()), default=0) > 0.1
        print(f"machine load average (1/5/15 min) before {lb[0]:.1f}/{lb[1]:.1f}/{lb[2]:.1f}, after "
              f"{la[0]:.1f}/{la[1]:.1f}/{la[2]:.1f}; CPU pressure (some, avg10) before {R['pressure_before']}%, "
              f"after {R['pressure_after']}%")
        if busy:
            print("** the server waited for a CPU > 10 % of some run (srvWait): other processes were busy, "
                  "latencies are pessimistic **")
        print("=" * w)
        checks: list[tuple[str, bool | None, str]] = []

        c = R["connect"]
        if c:
            print("\n1. Connection establishment: POST /api/ticket + WebSocket connect with ?ticket= -> first ping reply, ms")
            print(f"   sequential x{c['seq_n']:<4} p50 {ms(c['seq_p50'])}  p95 {ms(c['seq_p95'])}  max {ms(c['seq_max'])}")
            for b in c["bursts"]:
                print(f"   burst      x{b['n']:<4} p50 {ms(b['p50'])}  p95 {ms(b['p95'])}  max {ms(b['max'])}   "
                      f"all open in {b['wall']:.2f} s, {b['server_cpu_ms_per_conn']:.1f} ms server CPU per connection, "
                      f"p50 x{b['p50'] / c['seq_p50']:.0f} of sequential; token auth on the server p50 "
                      f"{ms(b['auth_p50']).strip()} p95 {ms(b['auth_p95']).strip()} ms")
            print(f"   POST /api/login (argon2 verify) p50 {ms(c['login_p50'])}  max {ms(c['login_max'])}")
            b100 = next((b for b in c["bursts"] if b["n"] >= 100), c["bursts"][-1])
            checks += [
                ("connection establishment < 100 ms, one at a time (p95)", c["seq_p95"] < 0.1,
                 f"{c['seq_p95'] * 1000:.1f} ms"),
                (f"connection establishment < 100 ms, {b100['n']} at once (p95)", b100["p95"] < 0.1,
                 f"{b100['p95'] * 1000:.1f} ms"),
            ]
        for r in R["reader_connect"].values():
            print(f"   LiveClient connect+subscribe, +{r['n']:<3} {r['transport']} readers ({r['total']} open): p50 "
                  f"{ms(r['p50'])}  p95 {ms(r['p95'])}   ({r['elapsed']:.1f} s wall; LiveClient() itself "
                  f"{r['build'] * 1000:.0f} ms each, not timed)")

        print(f"\n2. Fan-out on '{CHANNEL}', {a.rate:g} msg/s for {a.seconds:g} s per run; "
              f"latency = arrival in the reader - publish time (one clock), ms")
        print(f"   {'run':<27}{'readers':>7}{'mean':>7}{'p50':>7}{'p95':>7}{'p99':>7}{'max':>8}{'x p50':>6}{'x p95':>6}"
              f"{'delivered':>14}{'msg/frm':>8}{'srvCPU':>7}{'us/msg':>7}{'srvWait':>8}{'srvLag':>7}{'cliCPU':>9}"
              f"{'cliLag':>7}")
        for name, r in runs.items():
            ref = runs.get(r["ref"], r)
            cli = "/".join(f"{x:.0%}" for x in r["client_cpu"])
            print(f"   {name:<27}{r['readers']:>7}{ms(r['mean']):>7}{ms(r['p50']):>7}{ms(r['p95']):>7}{ms(r['p99']):>7}"
                  f"{ms(r['max']):>8}{r['p50'] / ref['p50']:>6.1f}{r['p95'] / ref['p95']:>6.1f}"
                  f"{str(r['received']) + '/' + str(r['expected']):>14}{r['msgs_per_frame']:>8.2f}"
                  f"{r['server_cpu']:>7.0%}{r['server_us_per_msg']:>7.0f}{r['server_wait']:>8.0%}"
                  f"{ms(r['server_lag_p99']):>7}{cli:>9}{ms(r['client_lag_p99']):>7}")
        print("   x p50 / x p95: ratio to the run's baseline ("
              + ", ".join(f"{n} -> {r['ref']}" for n, r in runs.items() if r["ref"] != n) + ").")
        print("   msg/frm: messages per WebSocket frame or SSE event (>1: message_batch). srvCPU / cliCPU: CPU time over "
              "wall time of the server / of each reader process.\n   us/msg: server CPU per message delivered to one "
              f"reader, net of the server's idle CPU under the benchmark's polling ({self.idle_cpu:.1%}). srvWait: share of the run the server was runnable but waiting for a CPU (other processes).\n"
              "   srvLag / cliLag: p99 lateness of a 10 ms timer on the server's / the readers' event loops.")
        big = runs.get(f"ws-{a.readers}")
        if big:
            checks += [
                (f"message latency < 50 ms average ({big['readers']} readers)", big["mean"] < 0.05,
                 f"{big['mean'] * 1000:.1f} ms (p95 {big['p95'] * 1000:.1f} ms)"),
                ("100+ simultaneous connections, nothing lost",
                 None if big["readers"] < 100 else big["missing"] == 0,
                 f"{big['readers']} readers, {big['missing']} messages missing"),
            ]

        s = R["slow"]
        if s:
            print(f"\n3. Slow consumer: {a.readers} readers + 1 socket that never reads (SO_RCVBUF 4 KiB), subscribed to "
                  f"'{CHANNEL}'" + (f" and {s['bulk_channel']} ({s['bulk']} B per message)" if s["bulk_channel"] else "")
                  + f"; outgoing_queue_bytes {s['queue_bytes'] // 1024} KiB")
            cut = ("NOT CUT OFF" if s["cut_after_s"] is None
                   else f"{s['cut_after_s']:.2f} s after publishing began (after message {s['published_at_cut']})")
            print(f"   cut off {cut}; close code the socket read afterwards: {s['close_code']} (after "
                  f"{s['frames_read_before_close']} frames left in kernel buffers); livebi_slow_consumers_total "
                  f"+{s['slow_consumers_metric']:g}")
            print(f"   the {a.readers} normal readers, baseline -> with the slow reader: p50 {ms(s['base_p50'])} -> "
                  f"{ms(s['slow_p50'])} ms (x{s['ratio_p50']:.2f}), p95 {ms(s['base_p95'])} -> {ms(s['slow_p95'])} ms "
                  f"(x{s['ratio_p95']:.2f}), p99 {ms(s['base_p99'])} -> {ms(s['slow_p99'])} ms; received "
                  f"{s['normal_received']}/{s['normal_expected']}")
            checks.append(("slow reader cut off with 4008; the others lose nothing",
                           s["close_code"] == 4008 and s["normal_missing"] == 0,
                           f"code {s['close_code']}, normal readers p50 x{s['ratio_p50']:.2f}, p95 x{s['ratio_p95']:.2f}"))

        rec = R["recovery"]
        if rec:
            print(f"\n4. Recovery: kill_transport() on {rec['killed']} of {rec['of']} readers at once, mid-run "
                  f"(LiveClient's default backoff: 0.1 s x 0.5-1.5)")
            print(f"   after the kill: reconnect attempt began p50 {ms(rec['attempt_p50'])}  p95 {ms(rec['attempt_p95'])} ms;"
                  f"  socket open + first ping answered p50 {ms(rec['open_p50'])}  p95 {ms(rec['open_p95'])} ms;"
                  f"  {rec['retried']} needed more than one attempt (connect_timeout 5 s)")
            au = rec["auth"]
            print(f"   server side: TCP connection taken by the event loop p50 {ms(rec['srv_tcp_p50'])}  p95 "
                  f"{ms(rec['srv_tcp_p95'])} ms after the kill")
            print(f"   server side: WebSocket reached the app p50 {ms(rec['srv_invoked_p50'])}  p95 "
                  f"{ms(rec['srv_invoked_p95'])} ms after the kill; accept sent p50 {ms(rec['srv_accept_p50'])}  p95 "
                  f"{ms(rec['srv_accept_p95'])} ms later; first frame (ping reply) p50 {ms(rec['srv_first_send_p50'])}  "
                  f"p95 {ms(rec['srv_first_send_p95'])} ms after accept")
            print(f"   server side: {au['n']} token authentications (signature + user lookup in the store) took p50 "
                  f"{ms(au['p50'])}  p95 {ms(au['p95'])}  max {ms(au['max'])} ms")
            print(f"   resubscribed p50 {ms(rec['resub_p50'])}  p95 {ms(rec['resub_p95'])}  max {ms(rec['resub_max'])} ms;"
                  f"  caught up p50 {ms(rec['caught_p50'])}  p95 {ms(rec['caught_p95'])}  max {ms(rec['caught_max'])} ms;"
                  f"  never recovered {rec['not_recovered']}")
            print(f"   recovered=true {rec['recovered_true']}/{rec['killed']}; killed readers: missing "
                  f"{rec['killed_missing']}, duplicates {rec['killed_dups']}, out of order {rec['killed_out_of_order']}; "
                  f"all readers missing {rec['all_missing']}")
            print(f"   the other {rec['of'] - rec['killed']} during the reconnect storm: p50 {ms(rec['others_p50'])}  "
                  f"p95 {ms(rec['others_p95'])}  p99 {ms(rec['others_p99'])} ms   (ws-{a.readers}: "
                  f"{ms(rec['base_p50'])} / {ms(rec['base_p95'])} / {ms(rec['base_p99'])})")
            checks.append(("connection recovery < 2 s (caught up, max)", rec["caught_max"] < 2,
                           f"{rec['caught_max'] * 1000:.0f} ms (p50 {rec['caught_p50'] * 1000:.0f} ms)"))
        sse = runs.get(f"sse-{a.sse_readers}")
        if sse:
            ws = runs.get(f"ws-{a.sse_readers}", sse)
            print(f"\n5. SSE fallback, {sse['readers']} readers: p50 {ms(sse['p50'])} p95 {ms(sse['p95'])} ms vs WebSocket "
                  f"{ms(ws['p50'])} / {ms(ws['p95'])} ms; received {sse['received']}/{sse['expected']}")

        print("\nTargets")
        for label, ok, fig in checks:
            print(f"   [{'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}] {label}: {fig}")
        print("\nCommand: " + " ".join(shlex.quote(x) for x in [".venv/bin/python", "benchmarks/delivery.py", *sys.argv[1:]]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--readers", type=int, default=500, help="readers in the largest fan-out, slow-consumer and recovery runs")
    p.add_argument("--quick", action="store_true", help="small sizes, < 60 s (smoke check)")
    p.add_argument("--client-procs", type=int, default=2, help="worker processes holding the readers")
    p.add_argument("--rate", type=float, default=20.0, help="publications per second on 'system'")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each publishing run")
    p.add_argument("--queue-kib", type=int, default=4096, help="the server's outgoing_queue_bytes in KiB (default: the product default)")
    p.add_argument("--slow-pad", type=int, default=0, help="payload padding on 'system' in the slow-consumer runs (bytes)")
    p.add_argument("--slow-bulk", type=int, default=131072,
                   help="payload (bytes) of a second stream on the slow reader's own user channel, same rate; 0: none")
    p.add_argument("--no-presence", action="store_true", help="switch presence off (no join/leave storms)")
    p.add_argument("--no-deflate", action="store_true", help="readers do not offer permessage-deflate")
    p.add_argument("--no-sse", action="store_true", help="skip the SSE run")
    p.add_argument("--server-loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                   help="the server's event loop (uvicorn's --loop; auto = uvloop when installed)")
    p.add_argument("--only", default="connect,fanout,slow,recovery,sse",
                   help="comma-separated scenarios to run (connect, fanout, slow, recovery, sse); the fan-out runs always run")
    p.add_argument("--json", help="write every figure to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    args = p.parse_args(argv)
    if args.quick:
        args.readers = min(args.readers, 50)
        args.seconds = min(args.seconds, 4.0)
        args.connect_seq, args.connect_bursts = 20, [args.readers]
    else:
        args.connect_seq = 100
        args.connect_bursts = sorted({min(100, args.readers), args.readers})
    args.sizes = sorted({1, min(100, args.readers), args.readers})
    args.kill = max(1, args.readers // 5)
    args.sse_readers = min(100, args.readers)
    args.count = int(args.rate * args.seconds)
    return args


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve_main(json.loads(sys.argv[2]))
    else:
        run_loop(Bench(parse_args()).main())
