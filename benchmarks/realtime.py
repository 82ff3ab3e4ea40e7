"""Realtime comparison: livebi against raw ``websockets``, bare FastAPI and python-socketio.

    .venv/bin/python benchmarks/realtime.py                     # the whole table (a few minutes)
    .venv/bin/python benchmarks/realtime.py --quick             # small sizes, < 60 s (CI runs it)
    .venv/bin/python benchmarks/realtime.py --servers raw,livebi --fanout 1000,5000 --json out.json
    .venv/bin/python benchmarks/realtime.py --servers raw,livebi --connections-only   # issue 11's
        # connection targets in one run: RSS per idle connection and 10,000 sequential connects
        # against raw websockets, and the burst of 200 (about a minute)

    .venv/bin/python benchmarks/realtime.py --servers raw,livebi --rounds 3   # medians of 3 rounds,
        # with livebi's verdict against each target of issue 11 (about 8 minutes)

Every server is started by this file (re-run as ``--serve KIND``) in a process of its own pinned
to CPU 0; this process is the client, pinned to CPU 1, so the two never share a core. raw
``websockets`` runs first and again last; ratios are against the mean of its two runs. Servers:

- ``raw``: the ``websockets`` library's asyncio server, publishing with ``broadcast()`` (the
  floor: one frame built per publication, written to every socket without a task switch);
- ``fastapi``: a bare FastAPI app under uvicorn, one ``await ws.send_text()`` per subscriber;
- ``socketio``: python-socketio's ASGI server under uvicorn, ``emit`` to a room;
- ``livebi``: the real server (``build_server``), a user with a token, publications through
  ``Services.publish`` on ``system``; ``--livebi-ws`` picks uvicorn's WebSocket implementation.
- ``livebi-ws``: the same with ``ws_server = "websockets"``: the clients connect to the
  ``websockets`` library's server on ``ws_port`` (same process, same session code).

The anchors are the optional ``bench`` dependencies (``pip install -e .[bench]``); a missing one
is skipped with a loud message. The server is driven through its standard input (one JSON
command per line), so every kind publishes the same way: ``{"i": n, "t": time.time(), "pad"}``
at a fixed rate, ``t`` taken just before the publication.

Clients are lean: ``asyncio.Protocol`` over the raw WebSocket protocol (no library, no JSON
parsing; a regular expression finds ``i`` and ``t`` in each frame, batches included), so the
client's CPU (reported) stays well below a core. Scenarios, each on a fresh connection set:

- **idle / sequential**: N clients connect + authenticate + subscribe one after another (total
  time), then the server's RSS growth per connection while they all sit idle;
- **burst**: 200 clients connect at once: time until every one is subscribed, server CPU each
  (median of 7 bursts);
- **fan-out**: N subscribers, R publications/s for D seconds: latency p50/p95/p99 (publication
  to parsed frame, one machine clock), server CPU per delivery (``/proc/<pid>/stat`` utime +
  stime over the run, idle CPU not subtracted; ``idleCPU`` is the server's own CPU over up to
  2 s before, with the subscribers connected), and lost deliveries (must be 0).

Loopback only; every server stops when this process ends (it watches its parent).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The order they run in: livebi next to its baseline, python-socketio (the slowest, which can
# fall behind at 5,000 subscribers) last; raw runs again after all of them (see bench()).
KINDS = ("raw", "livebi", "livebi-ws", "fastapi", "socketio")
SERVER_CPU, CLIENT_CPU = 0, 1
USER, PASSWORD, SECRET = "bench", "bench-pw", "bench-secret"
_PUB = re.compile(rb'"i": ?(\d+), ?"t": ?([0-9.]+)')
_TICK = os.sysconf("SC_CLK_TCK")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery import free_port, pct, run_loop  # noqa: E402  (the sibling benchmark's helpers)


def pad_text(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()[:n]


def pin(cpu: int) -> None:
    """Pin this process to one CPU (a no-op where there is only one)."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) > 1 or os.cpu_count() and os.cpu_count() > 1:
        try:
            os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})
        except OSError:
            pass


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ==========================================================================================
# Servers (one process each; commands on stdin, answers as "BENCH {json}" lines on stdout)
# ==========================================================================================


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write("BENCH " + json.dumps(obj) + "\n")
    sys.stdout.flush()


async def control_loop(publish: Any, stop: Any) -> None:
    """Read commands from stdin until EOF (the benchmark is gone): then stop the server."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    parent = os.getppid()

    async def orphan_watch() -> None:  # the benchmark was killed mid-command: stop anyway
        while os.getppid() == parent:
            await asyncio.sleep(1)
        os._exit(1)

    watch = asyncio.create_task(orphan_watch())  # noqa: F841  (kept alive by this frame)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "publish":
            pad = pad_text(cmd["pad"])
            start = loop.time() + 0.02
            for i in range(cmd["count"]):
                delay = start + i / cmd["rate"] - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await publish({"i": i, "t": time.time(), "pad": pad})
            say({"published": cmd["count"]})
        elif cmd["cmd"] == "ping":
            say({"pong": True})
    await stop()


async def serve_raw(port: int) -> None:
    from websockets.asyncio.server import broadcast, serve
    from websockets.exceptions import ConnectionClosed

    subscribers: set[Any] = set()

    async def handler(ws: Any) -> None:
        try:
            async for message in ws:
                if "subscribe" in message:
                    subscribers.add(ws)
                    await ws.send('{"ok":true}')
        except ConnectionClosed:
            pass
        finally:
            subscribers.discard(ws)

    async def publish(data: dict[str, Any]) -> None:
        broadcast(subscribers, json.dumps(data, separators=(",", ":")))

    # backlog as uvicorn's (2048): websockets' default of 100 drops SYNs in the burst scenario.
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=16, backlog=2048) as server:
        say({"ready": True})

        async def stop() -> None:
            server.close()

        await control_loop(publish, stop)


async def serve_uvicorn(app: Any, port: int, publish: Any, ws: str = "auto") -> None:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws=ws, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    say({"ready": True})

    async def stop() -> None:
        server.should_exit = True
        await task

    await control_loop(publish, stop)


async def serve_fastapi(port: int, ws_impl: str) -> None:
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    app = FastAPI()
    subscribers: set[WebSocket] = set()

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                if "subscribe" in await ws.receive_text():
                    subscribers.add(ws)
                    await ws.send_text('{"ok":true}')
        except WebSocketDisconnect:
            pass
        finally:
            subscribers.discard(ws)

    app.router.add_websocket_route("/ws", endpoint)  # (no annotation lookup: annotations are postponed)

    async def publish(data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        for ws in list(subscribers):
            try:
                await ws.send_text(text)
            except Exception:  # a peer that went away: drop it like a chat server would
                subscribers.discard(ws)

    await serve_uvicorn(app, port, publish, ws_impl)


async def serve_socketio(port: int, ws_impl: str) -> None:
    import socketio

    sio = socketio.AsyncServer(async_mode="asgi")

    @sio.event
    async def subscribe(sid: str) -> bool:
        await sio.enter_room(sid, "ch")
        return True

    async def publish(data: dict[str, Any]) -> None:
        await sio.emit("m", data, room="ch")

    await serve_uvicorn(socketio.ASGIApp(sio), port, publish, ws_impl)


async def serve_livebi(port: int, cfg: dict[str, Any]) -> None:
    from livebi.auth import hash_password
    from livebi.config import Settings
    from livebi.server import build_server
    from livebi.store import MetadataStore

    tmp = Path(cfg["tmp"])
    store_path = tmp / "meta.db"
    store = await MetadataStore.open(f"sqlite:///{store_path}")
    try:
        await store.add_user(USER, hash_password(PASSWORD))
    finally:
        await store.close()
    settings = Settings(
        host="127.0.0.1", port=port, data_dir=tmp / "data", warehouses={}, store_url=f"sqlite:///{store_path}",
        secret_key=SECRET, max_connections=100_000, max_connections_per_user=100_000, op_rate_per_s=0,
        max_unauthenticated_per_address=100_000, max_unauthenticated=100_000, presence=cfg["presence"],
        ws_direct_frames=cfg["direct"], ws_server=cfg.get("ws_server", "asgi"), ws_port=cfg.get("ws_port", 0),
    )
    server = build_server(settings, log_level="warning")
    if cfg["ws"] != "default":
        server.config.ws = cfg["ws"]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    services = server.config.app.state.services
    say({"ready": True})

    async def publish(data: dict[str, Any]) -> None:
        await services.publish("system", "notification", data)

    async def stop() -> None:
        server.should_exit = True
        await task

    await control_loop(publish, stop)


def serve_main(kind: str, port: int, cfg: dict[str, Any]) -> None:
    raise_fd_limit()
    if kind == "raw":
        run_loop(serve_raw(port))
    elif kind == "fastapi":
        run_loop(serve_fastapi(port, cfg["ws"] if cfg["ws"] != "default" else "auto"))
    elif kind == "socketio":
        run_loop(serve_socketio(port, cfg["ws"] if cfg["ws"] != "default" else "auto"))
    else:  # livebi, livebi-ws (the cfg says which WebSocket server)
        run_loop(serve_livebi(port, cfg))


# ==========================================================================================
# Lean clients
# ==========================================================================================


def mask_frame(text: str | bytes, opcode: int = 1) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    # A zero mask is valid and costs the client nothing.
    return head + b"\0\0\0\0" + data


class Client(asyncio.Protocol):
    """One WebSocket client: handshake, hello frames, then count publications and latencies."""

    __slots__ = ("run", "kind", "transport", "buf", "upgraded", "ready", "received", "closed", "sio_state")

    def __init__(self, run: "Run", kind: str) -> None:
        self.run = run
        self.kind = kind
        self.transport: Any = None
        self.buf = b""
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()  # subscribed
        self.received = 0
        self.closed = False
        self.sio_state = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/socket.io/?EIO=4&transport=websocket" if self.kind == "socketio" else "/ws"
        transport.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"{self.kind}: closed before subscribed"))
        self.run.lost_connection(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.run.fail(f"{self.kind}: handshake refused: {buf[:200]!r}")
                self.transport.close()
                return
            self.upgraded = True
            buf = buf[end + 4:]
            self.hello()
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1] & 0x7F
            head = 2
            if b1 == 126:
                if size - pos < 4:
                    break
                b1, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif b1 == 127:
                if size - pos < 10:
                    break
                b1, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if size - pos < head + b1:
                break
            payload = buf[pos + head:pos + head + b1]
            pos += head + b1
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:
                self.message(payload)
            elif opcode == 9:
                self.transport.write(mask_frame(payload, 0xA))
            elif opcode == 8:
                self.transport.close()
        self.buf = buf[pos:] if pos < size else b""

    def hello(self) -> None:
        if self.kind == "livebi":
            self.transport.write(
                mask_frame(json.dumps({"op": "auth", "id": 1, "token": self.run.token}))
                + mask_frame('{"op":"subscribe","id":2,"channel":"system"}')
            )
        elif self.kind != "socketio":
            self.transport.write(mask_frame('{"op":"subscribe"}'))

    def message(self, payload: bytes) -> None:
        if not self.ready.done():
            if self.kind == "socketio":
                if self.sio_state == 0 and payload.startswith(b"0"):
                    self.transport.write(mask_frame("40"))
                    self.sio_state = 1
                elif self.sio_state == 1 and payload.startswith(b"40"):
                    self.transport.write(mask_frame('421["subscribe"]'))
                    self.sio_state = 2
                elif payload.startswith(b"431"):
                    self.set_ready()
            elif self.kind == "livebi":
                if b'"id":2,' in payload:
                    if b'"ok":true' not in payload:
                        self.run.fail(f"livebi refused the subscription: {payload[:300]!r}")
                    self.set_ready()
            elif b'"ok"' in payload:
                self.set_ready()
        if self.kind == "socketio" and payload == b"2":
            self.transport.write(mask_frame("3"))
            return
        run = self.run
        if run.recording:
            now = time.time()
            for m in _PUB.finditer(payload):
                run.latencies.append(now - float(m.group(2)))
                self.received += 1

    def set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)


class Run:
    """The clients of one scenario against one server."""

    def __init__(self, kind: str, port: int, token: str | None) -> None:
        self.kind, self.port, self.token = kind, port, token
        self.clients: list[Client] = []
        self.latencies: list[float] = []
        self.recording = False
        self.closing = False
        self.errors: list[str] = []
        self.dropped = 0

    def fail(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text)

    def lost_connection(self, client: Client) -> None:
        if not self.closing:
            self.dropped += 1

    async def connect(self, n: int, *, parallel: int, timeout: float) -> float:
        """Open ``n`` clients (``parallel`` at a time, each waiting until it is subscribed)."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        sem = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with sem:
                client = Client(self, self.kind)
                self.clients.append(client)
                await loop.create_connection(lambda: client, "127.0.0.1", self.port)
                await asyncio.wait_for(asyncio.shield(client.ready), timeout)

        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - started

    async def close(self) -> None:
        self.closing = True
        bye = mask_frame(struct.pack("!H", 1000), 8)
        for c in self.clients:
            if c.transport is not None and not c.closed:
                c.transport.write(bye)
        await asyncio.sleep(0.5)
        for c in self.clients:
            if c.transport is not None:
                c.transport.close()
        await asyncio.sleep(0.2)
        self.clients.clear()


# ==========================================================================================
# Orchestration
# ==========================================================================================


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def settle(pid: int, timeout: float = 20.0) -> None:
    """Wait until the server is quiet (below 5 % of a core), e.g. done closing the last scenario's
    connections: a busy server would delay the next scenario's accepts, not its own work."""
    deadline = time.monotonic() + timeout
    last = proc_cpu(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = proc_cpu(pid)
        if now - last < 0.0125:
            return
        last = now


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


class ServerProc:
    def __init__(self, kind: str, args: argparse.Namespace, tmp: Path) -> None:
        self.kind = kind
        self.port = free_port()
        # What the lean clients speak and where they connect (livebi-ws: the websockets server).
        self.client_kind = "livebi" if kind.startswith("livebi") else kind
        self.conn_port = self.port
        cfg = {"ws": args.livebi_ws if self.client_kind == "livebi" else args.anchor_ws,
               "presence": not args.no_presence, "direct": not args.no_direct, "tmp": str(tmp)}
        if kind == "livebi-ws":
            self.conn_port = cfg["ws_port"] = free_port()
            cfg["ws_server"] = "websockets"
        (tmp / "data").mkdir(parents=True, exist_ok=True)
        self.log = open(tmp / f"{kind}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", kind, "--port", str(self.port),
             "--cfg", json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            preexec_fn=lambda: pin(SERVER_CPU),
        )
        self.pid = self.proc.pid
        self.token: str | None = None

    async def read(self, timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(loop.run_in_executor(None, self.proc.stdout.readline),
                                          max(0.1, deadline - time.monotonic()))
            if not line:
                raise RuntimeError(f"{self.kind} server exited: see {self.log.name}")
            if line.startswith(b"BENCH "):
                return json.loads(line[6:])
        raise TimeoutError(f"{self.kind} server did not answer within {timeout} s")

    def send(self, cmd: dict[str, Any]) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    async def start(self) -> None:
        await self.read(60)
        if self.client_kind == "livebi":
            self.token = await login(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # EOF: the server stops by itself
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        self.log.close()


async def login(port: int) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        r = await http.post("/api/login", json={"username": USER, "password": PASSWORD})
        r.raise_for_status()
        return r.json()["token"]


async def scenario_idle(server: ServerProc, n: int, budget: float) -> dict[str, Any]:
    warm = Run(server.client_kind, server.conn_port, server.token)
    await warm.connect(20, parallel=1, timeout=30)
    await warm.close()
    await settle(server.pid)
    rss0, cpu0 = proc_rss(server.pid), proc_cpu(server.pid)
    run = Run(server.client_kind, server.conn_port, server.token)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    done = 0
    deadline = loop.time() + budget
    while done < n and loop.time() < deadline:
        await run.connect(min(100, n - done), parallel=1, timeout=30)
        done = len(run.clients)
    seq = time.perf_counter() - started
    cpu = proc_cpu(server.pid) - cpu0
    await asyncio.sleep(1.0)  # let deferred work (presence, timers) settle
    rss1 = proc_rss(server.pid)
    out = {"n": done, "wanted": n, "seconds": seq, "server_cpu_ms_per_conn": cpu / max(1, done) * 1000,
           "rss_kib_per_conn": (rss1 - rss0) / max(1, done) / 1024, "rss_mib": rss1 / 2**20,
           "complete": done == n, "errors": run.errors}
    await run.close()
    return out


async def scenario_burst(server: ServerProc, n: int, repeats: int) -> dict[str, Any]:
    """``n`` clients connect at once, ``repeats`` times (each burst closed before the next):
    a single burst of a few dozen milliseconds varies by ±30 % on a shared machine, so the
    median of the repeats is what is compared."""
    times: list[float] = []
    cpus: list[float] = []
    errors: list[str] = []
    for _ in range(repeats):
        await settle(server.pid)
        run = Run(server.client_kind, server.conn_port, server.token)
        cpu0 = proc_cpu(server.pid)
        times.append(await run.connect(n, parallel=n, timeout=60))
        cpus.append((proc_cpu(server.pid) - cpu0) / n * 1000)
        errors += run.errors
        await run.close()
    return {"n": n, "repeats": repeats, "seconds": statistics.median(times), "seconds_all": times,
            "server_cpu_ms_per_conn": statistics.median(cpus), "errors": errors[:5]}


async def scenario_fanout(server: ServerProc, n: int, rate: float, seconds: float, pad: int) -> dict[str, Any]:
    await settle(server.pid)
    run = Run(server.client_kind, server.conn_port, server.token)
    try:
        return await _fanout(server, run, n, rate, seconds, pad)
    except BaseException:
        await run.close()  # a server that fell behind must not leave n clients to the next one
        raise


async def _fanout(server: ServerProc, run: "Run", n: int, rate: float, seconds: float, pad: int) -> dict[str, Any]:
    await run.connect(n, parallel=200, timeout=120)
    await settle(server.pid)
    count = max(1, int(rate * seconds))
    expected = count * n
    idle0, window = proc_cpu(server.pid), min(2.0, max(0.5, seconds / 5))
    await asyncio.sleep(window)  # the server's own background work with n idle subscribers
    idle_pct = (proc_cpu(server.pid) - idle0) / window * 100
    run.recording = True
    cpu0, ccpu0, t0 = proc_cpu(server.pid), self_cpu(), time.perf_counter()
    server.send({"cmd": "publish", "count": count, "rate": rate, "pad": pad})
    await server.read(seconds + 60)
    # Wait for the last deliveries (bounded): nothing should stay in flight for long.
    deadline = time.perf_counter() + 10
    while sum(c.received for c in run.clients) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - t0
    cpu, ccpu = proc_cpu(server.pid) - cpu0, self_cpu() - ccpu0
    received = sum(c.received for c in run.clients)
    lat = run.latencies
    out = {"n": n, "rate": rate, "publications": count, "expected": expected, "received": received,
           "lost": expected - received, "dropped_connections": run.dropped,
           "p50_ms": pct(lat, 50) * 1000, "p95_ms": pct(lat, 95) * 1000, "p99_ms": pct(lat, 99) * 1000,
           "max_ms": max(lat) * 1000 if lat else float("nan"),
           "server_us_per_delivery": cpu / max(1, received) * 1e6, "server_cpu_pct": cpu / wall * 100,
           "server_idle_cpu_pct": idle_pct,
           "client_cpu_pct": ccpu / wall * 100, "errors": run.errors}
    run.recording = False
    await run.close()
    return out


def anchor_available(kind: str) -> str | None:
    """None when the server kind can run here, else why not."""
    need = {"raw": "websockets", "fastapi": "fastapi", "socketio": "socketio", "livebi": "livebi",
            "livebi-ws": "livebi"}[kind]
    try:
        __import__(need)
    except ImportError:
        return f"{need} is not installed (pip install -e '.[bench]')"
    return None


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    pin(CLIENT_CPU)
    raise_fd_limit()
    results: dict[str, Any] = {"args": vars(args), "servers": {}, "skipped": {}}
    tmp = Path(tempfile.mkdtemp(prefix="livebi-rt-"))
    # raw websockets brackets the others: it runs first and again last, and the ratios use the
    # mean of the two, so a machine whose speed drifts during the minutes of a run (seen here:
    # every server ~15 % slower by the end of some runs) does not favour whoever runs first.
    plan = list(args.servers)
    if "raw" in plan and len(plan) > 1:
        plan = ["raw"] + [k for k in plan if k != "raw"] + ["raw"]
    for step, kind in enumerate(plan):
        label = "raw (end)" if kind == "raw" and step > 0 else kind
        why = anchor_available(kind)
        if why:
            print(f"\n!!! SKIPPING {kind}: {why} !!!\n", flush=True)
            results["skipped"][kind] = why
            continue
        server = ServerProc(kind, args, tmp / kind)
        r: dict[str, Any] = {}
        try:
            await server.start()
            log(f"{label}: server pid {server.pid} on port {server.port}")
            r["idle"] = await scenario_idle(server, args.idle, args.seq_budget)
            log(f"{label}: {r['idle']['n']} sequential connects in {r['idle']['seconds']:.2f} s, "
                f"{r['idle']['rss_kib_per_conn']:.1f} KiB RSS each")
            await asyncio.sleep(0.5)
            r["burst"] = await scenario_burst(server, args.burst, args.burst_repeats)
            log(f"{label}: burst of {args.burst} subscribed in {r['burst']['seconds'] * 1000:.0f} ms (median of {args.burst_repeats}: "
                f"{', '.join(f'{t * 1000:.0f}' for t in r['burst']['seconds_all'])})")
            r["fanout"] = {}
            for n in args.fanout:
                await asyncio.sleep(0.5)
                f = r["fanout"][str(n)] = await scenario_fanout(server, n, args.rate, args.seconds, args.pad)
                log(f"{label}: fan-out {n}: p50/p95/p99 {f['p50_ms']:.1f}/{f['p95_ms']:.1f}/{f['p99_ms']:.1f} ms, "
                    f"{f['server_us_per_delivery']:.1f} µs/delivery, lost {f['lost']}, client CPU {f['client_cpu_pct']:.0f} %")
        except Exception as exc:  # one server failing must not hide the others' figures
            log_tail = Path(server.log.name).read_text(errors="replace")[-2000:] if os.path.exists(server.log.name) else ""
            print(f"\n!!! {kind} FAILED: {exc!r} !!!\n{log_tail}", flush=True)
            r["error"] = repr(exc)
        finally:
            server.stop()
        results["servers"][label] = r
    shutil.rmtree(tmp, ignore_errors=True)  # server logs included: failures were reported above
    servers = results["servers"]
    end = servers.pop("raw (end)", None)
    if end is not None and "error" not in end and "error" not in servers.get("raw", {"error": 1}):
        results["raw_runs"] = [servers["raw"], end]
        servers["raw"] = _mean(servers["raw"], end)
        log("raw: the figures below are the mean of its runs before and after the others")
    return results


def _mean(a: Any, b: Any) -> Any:
    """Element-wise mean of two results of the same shape (numbers averaged, the rest from ``a``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _mean(v, b[k]) if k in b else v for k, v in a.items()}
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and a != b:
        return (a + b) / 2
    return a


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def ratio(value: float, base: float | None) -> str:
    if base is None or not base or math.isnan(base) or math.isnan(value):
        return ""
    return f" (x{value / base:.2f})"


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    servers = results["servers"]
    raw = servers.get("raw", {})
    if args.fanout:
        print(f"\nFan-out: {args.rate:g} publications/s for {args.seconds:g} s, {args.pad}-byte pad; server on CPU "
              f"{SERVER_CPU}, clients on CPU {CLIENT_CPU}; ratios against raw websockets")
    for n in args.fanout:
        print(f"\n  {n} subscribers")
        print(f"  {'server':<10} {'p50 ms':>14} {'p95 ms':>14} {'p99 ms':>14} {'µs/delivery':>16} {'lost':>6} {'clientCPU':>9}"
              f" {'idleCPU':>8}")
        base = raw.get("fanout", {}).get(str(n))
        for kind, r in servers.items():
            f = r.get("fanout", {}).get(str(n))
            if f is None:
                print(f"  {kind:<10} {r.get('error', 'not run')}")
                continue
            cells = []
            for key in ("p50_ms", "p95_ms", "p99_ms", "server_us_per_delivery"):
                cells.append(f"{f[key]:.1f}{ratio(f[key], base[key] if base else None)}")
            print(f"  {kind:<10} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14} {cells[3]:>16} {f['lost']:>6} "
                  f"{f['client_cpu_pct']:>8.0f}% {f['server_idle_cpu_pct']:>7.1f}%")
    print(f"\n  Connections    {'sequential':>22} {'RSS/conn KiB':>16} {'burst ' + str(args.burst):>16} {'ms CPU/conn':>12}")
    for kind, r in servers.items():
        i, b = r.get("idle"), r.get("burst")
        if i is None or b is None:
            print(f"  {kind:<14} {r.get('error', 'not run')}")
            continue
        ri, rb = raw.get("idle"), raw.get("burst")
        seq = f"{i['n']} in {i['seconds']:.2f} s" + ratio(i["seconds"] / max(1, i["n"]), ri and ri["seconds"] / max(1, ri["n"]))
        mem = f"{i['rss_kib_per_conn']:.1f}" + ratio(i["rss_kib_per_conn"], ri and ri["rss_kib_per_conn"])
        burst = f"{b['seconds'] * 1000:.0f} ms" + ratio(b["seconds"], rb and rb["seconds"])
        print(f"  {kind:<14} {seq:>22} {mem:>16} {burst:>16} {b['server_cpu_ms_per_conn']:>12.2f}")
    for kind, why in results["skipped"].items():
        print(f"  {kind:<14} SKIPPED: {why}")


def _med(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def summarize_rounds(rounds: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Medians over the rounds of each server's figures as ratios to raw ``websockets`` in the
    same round (the machine's state moves between rounds; a ratio within a round does not),
    and the issue's targets for livebi."""
    table: dict[str, dict[str, list[float]]] = {}
    for results in rounds:
        servers = results["servers"]
        raw = servers.get("raw", {})
        for kind, r in servers.items():
            if "error" in r or kind == "raw" or "error" in raw or not raw:
                continue
            row = table.setdefault(kind, {})
            for n in args.fanout:
                f, b = r.get("fanout", {}).get(str(n)), raw.get("fanout", {}).get(str(n))
                if f and b:
                    row.setdefault(f"fanout {n} µs/delivery x raw", []).append(f["server_us_per_delivery"] / b["server_us_per_delivery"])
                    row.setdefault(f"fanout {n} p99 x raw", []).append(f["p99_ms"] / b["p99_ms"])
                    row.setdefault(f"fanout {n} lost", []).append(f["lost"])
            i, ri = r.get("idle"), raw.get("idle")
            if i and ri:
                row.setdefault(f"{args.idle} sequential connects, s", []).append(i["seconds"] if i["complete"] else math.inf)
                row.setdefault("RSS KiB per idle connection", []).append(i["rss_kib_per_conn"])
            bb, rb = r.get("burst"), raw.get("burst")
            if bb and rb:
                row.setdefault(f"burst {args.burst} x raw", []).append(bb["seconds"] / rb["seconds"])
    print(f"\nOver {len(rounds)} rounds: median (range) of each round's figure")
    for kind, row in table.items():
        print(f"  {kind}")
        for key, values in row.items():
            print(f"    {key:<40} {_med(values)}")
    targets = {}
    row = table.get("livebi", {})
    if row:
        checks = [(f"fanout {n} µs/delivery x raw", 1.3) for n in args.fanout] + [
            (f"fanout {n} p99 x raw", 1.5) for n in args.fanout] + [
            ("RSS KiB per idle connection", 20.0), (f"{args.idle} sequential connects, s", 20.0),
            (f"burst {args.burst} x raw", 2.0)]
        print("  livebi against the targets of issue 11 (median of the rounds):")
        for key, limit in checks:
            if key in row:
                value = statistics.median(row[key])
                targets[key] = {"median": value, "limit": limit, "met": value <= limit}
                print(f"    {key:<40} {value:8.2f} <= {limit:g}: {'met' if value <= limit else 'NOT MET'}")
    return {"ratios": table, "targets": targets}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cfg", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="small sizes, a few seconds per server (CI)")
    p.add_argument("--servers", default=",".join(KINDS), help="comma-separated: raw,fastapi,socketio,livebi,livebi-ws")
    p.add_argument("--fanout", default="1000,5000", help="subscriber counts for the fan-out runs")
    p.add_argument("--rate", type=float, default=10.0, help="publications per second")
    p.add_argument("--seconds", type=float, default=10.0, help="publishing time per fan-out run")
    p.add_argument("--pad", type=int, default=64, help="bytes of padding in each publication")
    p.add_argument("--idle", type=int, default=10_000, help="connections opened one after another, then held idle")
    p.add_argument("--seq-budget", type=float, default=120.0, help="stop the sequential connects after this many seconds")
    p.add_argument("--burst", type=int, default=200, help="clients connecting at once")
    p.add_argument("--burst-repeats", type=int, default=7, help="bursts per server (the median is reported)")
    p.add_argument("--livebi-ws", default="default", help="uvicorn ws implementation for livebi (websockets, websockets-sansio, wsproto)")
    p.add_argument("--anchor-ws", default="default", help="uvicorn ws implementation for the fastapi/socketio anchors")
    p.add_argument("--no-presence", action="store_true", help="livebi with presence=false")
    p.add_argument("--no-direct", action="store_true", help="livebi with ws_direct_frames=false (the ASGI send path)")
    p.add_argument("--connections-only", action="store_true",
                   help="only the connection scenarios (sequential + idle memory, burst): no fan-out")
    p.add_argument("--rounds", type=int, default=1,
                   help="run everything this many times and print the medians of the per-round ratios to raw")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    args = p.parse_args(argv)
    if args.connections_only:
        args.fanout = ""
    args.servers = [s for s in args.servers.split(",") if s]
    if bad := set(args.servers) - set(KINDS):
        p.error(f"unknown servers {sorted(bad)}")
    if args.quick:
        args.fanout, args.rate, args.seconds, args.idle, args.burst, args.seq_budget = "200", 10.0, 1.0, 100, 100, 10.0
        args.burst_repeats = 1
    args.fanout = [int(x) for x in str(args.fanout).split(",") if x]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve_main(args.serve, args.port, json.loads(args.cfg))
        return 0
    rounds = []
    for i in range(args.rounds):
        if args.rounds > 1:
            print(f"\n===== round {i + 1} of {args.rounds} =====", flush=True)
        started = time.perf_counter()
        results = run_loop(bench(args))
        results["seconds"] = time.perf_counter() - started
        report(results, args)
        print(f"\n(total {results['seconds']:.0f} s)")
        rounds.append(results)
    out: dict[str, Any] = rounds[0]
    if args.rounds > 1 or "raw" in args.servers:
        summary = summarize_rounds(rounds, args)
        out = {"rounds": rounds, "summary": summary} if args.rounds > 1 else {**rounds[0], "summary": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    failed = [k for results in rounds for k, r in results["servers"].items() if "error" in r]
    lost = [k for results in rounds for k, r in results["servers"].items() for f in r.get("fanout", {}).values() if f["lost"]]
    if failed or lost:
        print(f"FAILED: {failed} lost: {lost}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
