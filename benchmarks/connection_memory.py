"""Memory and set-up cost of idle, authenticated, subscribed WebSocket connections.

    .venv/bin/python benchmarks/connection_memory.py                     # 2,000 connections
    .venv/bin/python benchmarks/connection_memory.py --connections 500 --flow two-trips
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/connection_memory.py --flow two-trips
                                                 # the same against another checkout's code

The server runs in a subprocess (this file re-run with ``--serve``: the real ``build_server``,
uvicorn with uvloop, a generated 20,000-row demo warehouse). This process opens the
connections **one after another** (connect, authenticate with the token in a first ``auth``
op, subscribe to ``system`` and one public ``dashboard:<id>``) and keeps them open and idle.

Printed: the server's RSS before and after (``VmRSS`` from /proc, after a warm-up connection
and after the connections settled for 2 s), the delta per connection and the extrapolation to
10,000; the time to connect them all; and the presence publications all clients received (a
join fanned out to every member already there would be N(N+1)/2 per channel).

The same figures against raw ``websockets`` (and FastAPI, python-socketio) in one run, with
lean clients, 10,000 sequential connects and a burst of 200 at once:
``benchmarks/realtime.py --servers raw,livebi --connections-only``.

``--flow one-trip`` sends ``{"op": "auth", "token", "subscribe": [...]}`` (one round trip);
``two-trips`` sends the auth op, then one ``subscribe`` op per channel (what older servers need).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> None:
    """Each connection is a socket on both sides: 10,000 need more than the usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def bench_server(cfg: dict[str, Any], **settings: Any) -> Any:
    """The real server (``build_server``) for a benchmark: no per-user or address limits."""
    from livebi.config import Settings
    from livebi.server import build_server

    return build_server(Settings(
        host="127.0.0.1", port=cfg["port"], data_dir=Path(cfg["data_dir"]),
        warehouses={"demo": f"duckdb:///{cfg['demo']}"}, store_url=f"sqlite:///{cfg['store']}",
        secret_key=SECRET, max_connections=100_000, max_connections_per_user=100_000,
        max_unauthenticated_per_address=100_000, op_rate_per_s=0, live_dashboards=False, **settings,
    ), log_level="warning")


def serve_main(cfg: dict[str, Any]) -> None:
    bench_server(cfg).run()


async def prepare(store: str) -> None:
    from livebi.auth import hash_password
    from livebi.store import MetadataStore

    s = await MetadataStore.open(f"sqlite:///{store}")
    try:
        await s.add_user("bench", hash_password("bench-pw"))
    finally:
        await s.close()


async def start(script: str, cfg: dict[str, Any]) -> tuple[subprocess.Popen, str]:
    """Run ``script --serve cfg`` and wait until it answers; returns the process and a token."""
    import httpx

    await prepare(cfg["store"])
    proc = subprocess.Popen([sys.executable, script, "--serve", json.dumps(cfg)], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg['port']}", timeout=60) as http:
        for _ in range(600):
            try:
                if (await http.get("/api/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        r = await http.post("/api/login", json={"username": "bench", "password": "bench-pw"})
        r.raise_for_status()
        return proc, r.json()["token"]


async def run(args: argparse.Namespace) -> None:
    import httpx
    import websockets

    from livebi.demo.generate import generate_demo

    tmp = Path(tempfile.mkdtemp(prefix="livebi-connmem-"))
    demo, store = tmp / "demo.duckdb", tmp / "meta.db"
    generate_demo(demo, rows=20_000)
    port = free_port()
    cfg = {"port": port, "data_dir": str(tmp), "demo": str(demo), "store": str(store)}
    proc, token = await start(__file__, cfg)
    sockets: list[Any] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            auth = {"Authorization": f"Bearer {token}"}
            dashboard = (await http.post("/api/dashboards", json={"title": "Bench"}, headers=auth)).json()["id"]
            (await http.put(f"/api/dashboards/{dashboard}/sharing", json={"public": True}, headers=auth)).raise_for_status()
        channels = ["system", f"dashboard:{dashboard}"]
        presence = [0]

        async def reader(ws: Any) -> None:
            try:
                async for raw in ws:
                    msg = json.loads(raw)
                    for item in msg["messages"] if msg.get("type") == "message_batch" else [msg]:
                        if item.get("type") == "presence":
                            presence[0] += 1
            except websockets.ConnectionClosed:
                pass

        async def open_one() -> Any:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None, ping_interval=None)
            if args.flow == "one-trip":
                await ws.send(json.dumps({"id": 1, "op": "auth", "token": token, "subscribe": channels}))
                expect = 1
            else:
                await ws.send(json.dumps({"id": 1, "op": "auth", "token": token}))
                for i, channel in enumerate(channels, start=2):
                    await ws.send(json.dumps({"id": i, "op": "subscribe", "channel": channel}))
                expect = 1 + len(channels)
            replies = 0
            while replies < expect:
                msg = json.loads(await ws.recv())
                for item in msg["messages"] if msg.get("type") == "message_batch" else [msg]:
                    if "ok" in item:
                        assert item["ok"], item
                        replies += 1
                    elif item.get("type") == "presence":
                        presence[0] += 1
            return ws

        warm = await open_one()  # imports and first-use caches are not per-connection memory
        await asyncio.sleep(1.0)
        before = rss_kib(proc.pid)
        started = time.perf_counter()
        readers = []
        for _ in range(args.connections):
            ws = await open_one()
            sockets.append(ws)
            readers.append(asyncio.create_task(reader(ws)))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(2.0)
        after = rss_kib(proc.pid)
        per = (after - before) / args.connections
        print(f"flow {args.flow}: {args.connections} connections one after another in {elapsed:.2f} s "
              f"({elapsed / args.connections * 1000:.2f} ms each)")
        print(f"server RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: {per:.1f} KiB per idle authenticated "
              f"connection subscribed to {len(channels)} channels; 10,000 would take {per * 10_000 / 1024:.0f} MiB")
        print(f"presence publications received by all clients: {presence[0]} "
              f"(a join per member already there: {args.connections * (args.connections + 1)})")
        if args.json:
            Path(args.json).write_text(json.dumps({"flow": args.flow, "connections": args.connections, "seconds": elapsed,
                                                   "rss_before_kib": before, "rss_after_kib": after, "kib_per_connection": per,
                                                   "presence_publications": presence[0]}))
        for task in readers:
            task.cancel()
        await warm.close()
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        proc.terminate()
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--flow", choices=("one-trip", "two-trips"), default="one-trip")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit()
    if args.serve:
        serve_main(json.loads(args.serve))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
