"""Fan-out through the broker: 1 node on the memory broker, 1 node on Redis, 2 nodes on Redis.

    .venv/bin/python benchmarks/cluster_fanout.py                    # 1000 subscribers, 100 pub/s, 5 s, 3 rounds
    .venv/bin/python benchmarks/cluster_fanout.py --subscribers 2000 --rate 200 --seconds 10
    .venv/bin/python benchmarks/cluster_fanout.py --quick            # 200 subscribers, 2 s (a smoke run)
    .venv/bin/python benchmarks/cluster_fanout.py --broker-only      # the brokers alone, in process

Each livebi node is the real server started by ``benchmarks/realtime.py`` (``--serve livebi``,
pinned to CPU 0; ``LIVEBI_BROKER_URL`` / ``LIVEBI_REDIS_PREFIX`` pick the broker), driven the
same way: node 1 publishes ``{"i", "t", "pad"}`` on ``system`` at a fixed rate; the lean
clients of that file (pinned to CPU 1) are spread evenly over the nodes and measure latency
(publication to parsed frame, one clock). With two nodes, both share CPU 0 (a 2-core machine),
so their figures are an upper bound on what two hosts would show.

Reported per setup: latency p50/p99, server CPU per delivery (every node's utime + stime over
the run, divided by deliveries) and the same net of the nodes' idle CPU (measured for 2 s
before, with every subscriber connected: a run that lasts longer pays more of it), how long
node 1 took to make its publications (the driver awaits each one, so a Redis round trip per
publication stretches the run when the node is busy), Redis CPU per publication (``INFO
cpu``, the whole server, so other users of that Redis count too) and lost deliveries (must be
0). The memory broker is the baseline the ratios refer to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery import pct, run_loop  # noqa: E402  (sibling benchmark helpers)
from realtime import CLIENT_CPU, Client, Run, ServerProc, pin, proc_cpu, raise_fd_limit, self_cpu, settle  # noqa: E402

SETUPS = (("memory", 1), ("redis", 1), ("redis", 2))

_message = Client.message


def _count_frames(self: Client, payload: bytes) -> None:
    """realtime.py's client, also counting WebSocket frames (a message_batch is one frame)."""
    if self.run.recording:
        self.run.frames = getattr(self.run, "frames", 0) + 1
    _message(self, payload)


Client.message = _count_frames


def redis_cpu(url: str) -> float:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


def drop_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def run_setup(broker: str, nodes: int, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench:{secrets.token_hex(4)}:"
    os.environ["LIVEBI_BROKER_URL"] = args.redis if broker == "redis" else "memory://"
    os.environ["LIVEBI_REDIS_PREFIX"] = prefix
    server_args = argparse.Namespace(livebi_ws="default", anchor_ws="default", no_presence=False, no_direct=False)
    servers: list[ServerProc] = []
    runs: list[Run] = []
    try:
        for _ in range(nodes):
            server = ServerProc("livebi", server_args, Path(tempfile.mkdtemp(prefix="livebi-cluster-bench-")))
            servers.append(server)
            await server.start()
        share = args.subscribers // nodes
        for server in servers:
            run = Run("livebi", server.port, server.token)
            await run.connect(share, parallel=200, timeout=120)
            runs.append(run)
        for server in servers:
            await settle(server.pid)
        # the nodes' own background work with every subscriber connected (keepalive pings,
        # timers): subtracted from the run's CPU for the "net" figure, since a run that takes
        # longer (a Redis round trip per publication) pays more of it
        idle0, window = sum(proc_cpu(s.pid) for s in servers), 2.0
        await asyncio.sleep(window)
        idle_rate = (sum(proc_cpu(s.pid) for s in servers) - idle0) / window
        count = max(1, int(args.rate * args.seconds))
        expected = count * share * nodes
        for run in runs:
            run.recording = True
        cpu0 = sum(proc_cpu(s.pid) for s in servers)
        rcpu0 = redis_cpu(args.redis) if broker == "redis" else 0.0
        ccpu0, t0 = self_cpu(), time.perf_counter()
        servers[0].send({"cmd": "publish", "count": count, "rate": args.rate, "pad": args.pad})
        await servers[0].read(args.seconds + 60)
        published = time.perf_counter() - t0
        deadline = time.perf_counter() + 10
        while sum(c.received for r in runs for c in r.clients) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - t0
        cpu = sum(proc_cpu(s.pid) for s in servers) - cpu0
        rcpu = redis_cpu(args.redis) - rcpu0 if broker == "redis" else float("nan")
        ccpu = self_cpu() - ccpu0
        received = sum(c.received for r in runs for c in r.clients)
        lat = [x for r in runs for x in r.latencies]
        return {
            "setup": f"{nodes} node{'s' if nodes > 1 else ''}, {broker}", "subscribers": share * nodes,
            "publications": count, "expected": expected, "received": received, "lost": expected - received,
            "dropped_connections": sum(r.dropped for r in runs),
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "p50_ms_per_node": [round(pct(r.latencies, 50) * 1000, 2) for r in runs],
            "server_us_per_delivery": cpu / max(1, received) * 1e6, "server_cpu_pct": cpu / wall * 100,
            "server_net_us_per_delivery": max(0.0, cpu - idle_rate * wall) / max(1, received) * 1e6,
            "server_idle_cpu_pct": idle_rate * 100,
            "redis_us_per_publication": rcpu / count * 1e6, "client_cpu_pct": ccpu / wall * 100,
            "publishing_s": published, "wall_s": wall,
            "deliveries_per_frame": received / max(1, sum(getattr(r, "frames", 0) for r in runs)),
            "errors": [e for r in runs for e in r.errors],
        }
    finally:
        for run in runs:
            await run.close()
        for server in servers:
            server.stop()
        if broker == "redis":
            drop_prefix(args.redis, prefix)


def report(rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    print(f"\nfan-out on `system`: {base['subscribers']} subscribers, {base['publications']} publications "
          f"(medians of {base['repeats']} rounds; net: CPU per delivery minus the nodes' idle CPU over the run; "
          f"ratio: net against 1 node, memory; pub s: time node 1 took to make its publications, each awaited)")
    print(f"{'setup':<18}{'p50 ms':>9}{'p99 ms':>9}{'srv µs/deliv':>14}{'net':>7}{'ratio':>7}{'idle %':>8}"
          f"{'srv CPU %':>11}{'pub s':>7}{'redis µs/pub':>14}{'lost':>6}")
    for row in rows:
        base_net = base["server_net_us_per_delivery"]
        ratio = row["server_net_us_per_delivery"] / base_net if base_net else float("nan")
        print(f"{row['setup']:<18}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['server_us_per_delivery']:>14.2f}"
              f"{row['server_net_us_per_delivery']:>7.2f}{ratio:>6.2f}x{row['server_idle_cpu_pct']:>8.1f}"
              f"{row['server_cpu_pct']:>11.1f}{row['publishing_s']:>7.1f}{row['redis_us_per_publication']:>14.1f}{row['lost']:>6}")
        print(f"  {row['setup']}: {row['deliveries_per_frame']:.2f} publications per WebSocket frame (batching)")
        if len(row["p50_ms_per_node"]) > 1:
            print(f"  p50 ms by node (node 1 publishes): {row['p50_ms_per_node']}")
        if row["errors"] or row["dropped_connections"]:
            print(f"  !! {row['setup']}: errors {row['errors']}, dropped connections {row['dropped_connections']}")


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the repeats (the lost count: the worst)."""
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            row[key] = statistics.median(r[key] for r in runs)
    row["lost"] = max(r["lost"] for r in runs)
    row["errors"] = [e for r in runs for e in r["errors"]]
    row["dropped_connections"] = max(r["dropped_connections"] for r in runs)
    row["repeats"] = len(runs)
    return row


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every setup once per round, ``--repeat`` rounds (so a busy moment on the machine hits
    all setups alike), then the median of each figure."""
    setups = [(b, n) for b, n in SETUPS if not args.setups or f"{b}{n}" in args.setups.split(",")]
    results: dict[tuple[str, int], list[dict[str, Any]]] = {s: [] for s in setups}
    for round_ in range(args.repeat):
        for broker, nodes in setups:
            print(f"round {round_ + 1}/{args.repeat}: {nodes} node(s), {broker} broker ...", file=sys.stderr, flush=True)
            results[(broker, nodes)].append(await run_setup(broker, nodes, args))
    return [median_row(runs) for runs in results.values()]


async def broker_only(args: argparse.Namespace) -> None:
    """The broker's own CPU per publication, in this process: publish ``n`` times to
    ``--subscribers`` local subscribers whose delivery only counts (no sockets, no JSON), memory
    against Redis. Isolates what the Redis round trip and pub/sub echo cost from the writes."""
    from livebi.realtime.broker import MemoryBroker
    from livebi.realtime.hub import Hub
    from livebi.realtime.redis_broker import RedisBroker

    n, subs = 2000, args.subscribers
    got = [0]

    def deliver(delivery: Any) -> None:
        got[0] += len(delivery.targets)

    data = {"i": 1, "t": time.time(), "pad": "x" * args.pad}
    for kind in ("memory", "redis"):
        hub, got[0] = Hub(), 0
        prefix = f"bench:{secrets.token_hex(4)}:"
        broker: Any = MemoryBroker(hub, deliver) if kind == "memory" else RedisBroker(args.redis, hub, deliver, prefix=prefix)
        await broker.start()
        for i in range(subs):
            await broker.prepare("system", None)
            hub.subscribe(f"c{i}", "system")
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            await broker.publish("system", "notification", data)
        while got[0] < n * subs:
            await asyncio.sleep(0.001)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        await broker.stop()
        if kind == "redis":
            drop_prefix(args.redis, prefix)
        print(f"broker only, {kind:<6}: {cpu / n * 1e6:8.1f} µs CPU per publication ({subs} local subscribers), "
              f"{wall / n * 1e6:8.1f} µs wall per awaited publish")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="publications per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pad", type=int, default=100, help="bytes of padding per publication")
    parser.add_argument("--redis", default=os.environ.get("LIVEBI_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--repeat", type=int, default=3, help="rounds over every setup; medians are reported")
    parser.add_argument("--setups", default="", help="a subset, e.g. memory1,redis1,redis2")
    parser.add_argument("--broker-only", action="store_true", help="in-process broker CPU per publication only")
    parser.add_argument("--quick", action="store_true", help="200 subscribers for 2 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.seconds, args.repeat = 200, 2.0, 1
    if args.broker_only:
        run_loop(broker_only(args))
        return 0
    raise_fd_limit()
    pin(CLIENT_CPU)
    rows = run_loop(bench(args))
    report(rows)
    return 1 if any(r["lost"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
