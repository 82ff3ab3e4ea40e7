"""Delivery latency with many connections, with and without the garbage-collector tuning.

    .venv/bin/python benchmarks/gc_latency.py                  # 2,000 connections, 20 pub/s, 20 s
    .venv/bin/python benchmarks/gc_latency.py --quick          # 300 connections, 8 s
    .venv/bin/python benchmarks/gc_latency.py --variants default,tuned --connections 4000

For each variant a fresh server runs in a subprocess (this file re-run with ``--serve``: the
real ``build_server``, uvicorn with uvloop) with these settings:

- ``default``: ``gc_tuning = false`` (CPython's collector as it comes);
- ``freeze``: freeze after start-up only (``gc_threshold0 = 700``, ``gc_freeze_interval_s = 0``);
- ``threshold``: freeze after start-up and threshold 50,000, no periodic freeze;
- ``tuned``: the shipped tuning (threshold 50,000 and periodic freezes), with the freeze
  interval shortened to 5 s so the connections are frozen before publishing starts (as they
  would be a minute into a real server's life).

This process opens ``--connections`` WebSockets (auth + subscribe to ``system`` in one
round trip); all but ``--readers`` of them never read again (the kernel buffers what the
server writes, so the server does the full per-subscriber work while the client spends no
CPU on them). The server publishes ``--rate`` notifications per second on ``system``, each
stamped with ``time.time()`` just before ``publish``; the readers parse every frame and
record ``now - t``. Printed per variant: latency p50/p99/max over all readers, the
server's collections during the run with the longest generation-2 pause (``gc.callbacks``),
and what one full collection costs after the run (objects it walks, milliseconds).
Both processes share one machine clock, so no skew to correct; with a busy machine the
figures move, the difference between variants is what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from connection_memory import bench_server, free_port, start  # noqa: E402  (a sibling script)

VARIANTS = {
    "default": {"gc_tuning": False},
    "freeze": {"gc_tuning": True, "gc_threshold0": 700, "gc_freeze_interval_s": 0},
    "threshold": {"gc_tuning": True, "gc_freeze_interval_s": 0},
    "tuned": {"gc_tuning": True, "gc_freeze_interval_s": 5},
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def serve_main(cfg: dict[str, Any]) -> None:
    import gc

    from fastapi import Body

    server = bench_server(cfg, outgoing_queue_bytes=64 * 1024 * 1024, **cfg["settings"])
    app = server.config.app
    pauses: list[tuple[int, float]] = []
    started: dict[int, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[info["generation"]] = time.perf_counter()
        elif info["generation"] in started:
            pauses.append((info["generation"], time.perf_counter() - started.pop(info["generation"])))

    state: dict[str, Any] = {"done": False}

    async def publisher(rate: float, count: int) -> None:
        services = app.state.services
        loop = asyncio.get_running_loop()
        pauses.clear()
        start = loop.time() + 0.05
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await services.publish("system", "notification", {"i": i, "t": time.time(), "pad": "x" * 200})
        state["done"] = True

    async def bench_publish(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        state["task"] = asyncio.get_running_loop().create_task(publisher(body["rate"], body["count"]))
        return {"started": True}

    async def bench_gc(full: bool = False) -> dict[str, Any]:
        out = {"done": state["done"], "pauses": list(pauses), "frozen": gc.get_freeze_count(),
               "threshold": gc.get_threshold(), "tracked": len(gc.get_objects())}
        if full:  # what one full collection costs now (frozen objects are not walked)
            t = time.perf_counter()
            gc.collect()
            out["full_collection_ms"] = (time.perf_counter() - t) * 1000
        return out

    app.add_api_route("/bench/publish", bench_publish, methods=["POST"])
    app.add_api_route("/bench/gc", bench_gc, methods=["GET"])
    gc.callbacks.append(on_gc)
    server.run()


async def run_variant(name: str, args: argparse.Namespace, tmp: Path, demo: Path) -> dict[str, Any]:
    import httpx
    import websockets

    port = free_port()
    cfg = {"port": port, "data_dir": str(tmp), "demo": str(demo), "store": str(tmp / f"meta-{name}.db"), "settings": VARIANTS[name]}
    proc, token = await start(__file__, cfg)
    sockets: list[Any] = []
    latencies: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            async def open_one() -> Any:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None, ping_interval=None,
                                              max_queue=None if len(sockets) < args.readers else 1)
                await ws.send(json.dumps({"id": 1, "op": "auth", "token": token, "subscribe": ["system"]}))
                reply = json.loads(await ws.recv())
                assert reply.get("ok"), reply
                return ws

            async def read(ws: Any) -> None:
                try:
                    async for raw in ws:
                        now = time.time()
                        msg = json.loads(raw)
                        for item in msg["messages"] if msg.get("type") == "message_batch" else [msg]:
                            if item.get("type") == "notification":
                                latencies.append(now - item["data"]["t"])
                except websockets.ConnectionClosed:
                    pass

            for _ in range(args.connections):
                sockets.append(await open_one())
            readers = [asyncio.create_task(read(ws)) for ws in sockets[: args.readers]]
            if VARIANTS[name].get("gc_freeze_interval_s"):
                await asyncio.sleep(VARIANTS[name]["gc_freeze_interval_s"] + 1)  # one periodic freeze
            count = int(args.rate * args.seconds)
            await http.post("/bench/publish", json={"rate": args.rate, "count": count})
            while not (await http.get("/bench/gc")).json()["done"]:
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)
            gc_state = (await http.get("/bench/gc", params={"full": "true"})).json()
            for task in readers:
                task.cancel()
        full = [d for g, d in gc_state["pauses"] if g == 2]
        young = [d for g, d in gc_state["pauses"] if g < 2]
        return {
            "variant": name, "connections": args.connections, "readers": args.readers, "publications": count,
            "received": len(latencies), "expected": count * args.readers,
            "p50_ms": pct(latencies, 50) * 1000, "p99_ms": pct(latencies, 99) * 1000, "max_ms": max(latencies, default=0) * 1000,
            "gen2_collections": len(full), "gen2_max_ms": max(full, default=0) * 1000,
            "gen01_collections": len(young), "gen01_total_ms": sum(young) * 1000,
            "frozen_objects": gc_state["frozen"], "tracked_objects": gc_state["tracked"],
            "full_collection_ms": gc_state["full_collection_ms"],
        }
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        proc.terminate()
        proc.wait(30)


async def main_async(args: argparse.Namespace) -> None:
    from livebi.demo.generate import generate_demo

    tmp = Path(tempfile.mkdtemp(prefix="livebi-gc-"))
    demo = tmp / "demo.duckdb"
    generate_demo(demo, rows=20_000)
    results = []
    for name in args.variants.split(","):
        r = await run_variant(name, args, tmp, demo)
        results.append(r)
        print(f"{name:8s} {r['connections']} conns, {r['publications']} pubs at {args.rate:g}/s: "
              f"latency p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  max {r['max_ms']:.1f} ms "
              f"({r['received']}/{r['expected']} received); server gen2 collections {r['gen2_collections']} "
              f"(longest {r['gen2_max_ms']:.1f} ms), gen0/1 {r['gen01_collections']} ({r['gen01_total_ms']:.0f} ms in all); "
              f"then a full collection walks {r['tracked_objects']} objects in {r['full_collection_ms']:.0f} ms "
              f"({r['frozen_objects']} frozen)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--readers", type=int, default=50, help="connections that read and measure")
    parser.add_argument("--rate", type=float, default=20.0, help="publications per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--variants", default="default,freeze,tuned")
    parser.add_argument("--quick", action="store_true", help="300 connections for 8 s")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(json.loads(args.serve))
        return
    if args.quick:
        args.connections, args.seconds = min(args.connections, 300), 8.0
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
