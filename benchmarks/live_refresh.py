"""Live dashboards benchmark: ingest one row -> every viewer has the refreshed widgets.

    .venv/bin/python benchmarks/live_refresh.py                     # 200 and 1000 viewers, 10M rows
    .venv/bin/python benchmarks/live_refresh.py --viewers 50 --rows 1000000 --changes 5   # quick

Processes (everything on 127.0.0.1):

- the **server**: this file re-run as ``--serve CONFIG`` in a subprocess: the real server
  (``build_server``) on a DuckDB warehouse holding an ``orders`` table of ``--rows`` rows and a
  small ``customers`` table, with ingest allowed for the benchmark user.
- **viewer workers** (``--procs``, default 2): real WebSocket clients, each subscribed to the
  dashboard's channel; a worker reports, for every change, when each of its viewers had received
  the refreshed widgets (``dashboard_refresh`` done with reason ``data_change``).
- **this process** builds the data, creates the dashboard (four widgets: three read ``orders``,
  one reads ``customers``; all refresh on data change), then for each change posts one row to
  ``POST /api/tables/orders/rows`` and measures until the last viewer is updated.

Figures: latency from the ingest request to each viewer updated (p50/p95 over viewers and
changes) and to the *last* viewer (p50/p95 over changes), and the warehouse queries each change
cost (``livebi_live_queries_total`` from /metrics): the goal is 3, whatever the viewer count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

USER, PASSWORD = "bench", "bench-pw"
SECRET = "bench-secret"
METRICS_TOKEN = "bench-metrics-token"
WIDGETS = [
    ("Revenue today", "SELECT sum(amount) AS revenue FROM orders WHERE ordered_at >= DATE '2026-01-01'"),
    ("Orders by region", "SELECT region, count(*) AS orders FROM orders GROUP BY region ORDER BY region"),
    ("Latest orders", "SELECT order_id, region, amount FROM orders ORDER BY order_id DESC LIMIT 10"),
    ("Customers", "SELECT count(*) AS customers FROM customers"),
]
READS_ORDERS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(path: Path, rows: int) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    con.execute(f"""
        CREATE TABLE orders AS
        SELECT range::BIGINT AS order_id,
               TIMESTAMP '2025-01-01' + to_seconds((range * 3)::BIGINT) AS ordered_at,
               ['North', 'South', 'East', 'West'][(range % 4)::INTEGER + 1] AS region,
               ((range * 7919) % 10000 / 100.0)::DECIMAL(12, 2) AS amount
        FROM range({rows})
    """)
    con.execute("CREATE TABLE customers AS SELECT range AS customer_id, 'c' || range AS name FROM range(1000)")
    con.close()


# -- the server -------------------------------------------------------------------------------------


def serve_main(cfg: dict[str, Any]) -> None:
    from livebi.auth import hash_password
    from livebi.config import Settings
    from livebi.server import build_server
    from livebi.store import MetadataStore

    async def add_user() -> None:
        store = await MetadataStore.open(f"sqlite:///{cfg['store']}")
        if await store.get_user(username=USER) is None:
            await store.add_user(USER, hash_password(PASSWORD))
        await store.close()

    asyncio.run(add_user())
    settings = Settings(
        host="127.0.0.1", port=cfg["port"], data_dir=Path(cfg["data_dir"]),
        warehouses={"bench": f"duckdb:///{cfg['duckdb']}"}, store_url=f"sqlite:///{cfg['store']}",
        secret_key=SECRET, max_connections=100_000, max_connections_per_user=100_000, op_rate_per_s=0,
        ingest_access={"bench": [USER]}, metrics_access="token", metrics_token=METRICS_TOKEN,
        presence=cfg["presence"],
    )
    build_server(settings, log_level="warning").run()


# -- viewers ----------------------------------------------------------------------------------------


def worker_main(cfg: dict[str, Any], n: int, out: Any) -> None:
    asyncio.run(_worker(cfg, n, out))


async def _worker(cfg: dict[str, Any], n: int, out: Any) -> None:
    import httpx
    import websockets

    base, channel = cfg["base"], f"dashboard:{cfg['dashboard_id']}"
    # arrivals[v] = times of data_change 'done' refreshes received by viewer v
    arrivals: list[list[float]] = [[] for _ in range(n)]
    ws_ref: list[Any] = [None] * n

    handshakes = asyncio.Semaphore(32)  # connect in waves: the figure is about refreshes, not a connection storm

    async def viewer(i: int, ticket: str, ready: asyncio.Event) -> None:
        async with handshakes:
            ws = await websockets.connect(f"{cfg['ws']}?ticket={ticket}", max_size=None, open_timeout=60)
        async with ws:
            ws_ref[i] = ws
            await ws.send(json.dumps({"id": 1, "op": "subscribe", "channel": channel}))
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                for item in msg["messages"] if msg.get("type") == "message_batch" else [msg]:
                    if item.get("id") == 1 and item.get("ok"):
                        ready.set()
                    data = item.get("data") or {}
                    if item.get("type") == "dashboard_refresh" and data.get("reason") == "data_change" \
                            and data.get("state") == "done":
                        arrivals[i].append(now)

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        token = cfg["token"]
        tickets = []
        for _ in range(n):
            r = await http.post("/api/ticket", headers={"Authorization": f"Bearer {token}"})
            tickets.append(r.json()["ticket"])
    readies = [asyncio.Event() for _ in range(n)]
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(viewer(i, tickets[i], readies[i])))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    out.put(("ready", n))
    loop = asyncio.get_running_loop()
    while True:
        cmd = await loop.run_in_executor(None, cfg["inbox"].get)
        if cmd == "stop":
            break
        expected = cmd  # READS_ORDERS per change so far
        deadline = time.time() + 60
        while any(len(a) < expected for a in arrivals) and time.time() < deadline:
            await asyncio.sleep(0.005)
        codes = sorted({ws.close_code for ws in ws_ref if ws is not None and ws.close_code is not None})
        out.put(("done", [a[expected - 1] if len(a) >= expected else None for a in arrivals], codes))
    for t in tasks:
        t.cancel()


# -- orchestration ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def queries_so_far(base: str) -> float:
    import httpx

    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    for line in text.splitlines():
        if line.startswith("livebi_live_queries_total "):
            return float(line.split()[1])
    return 0.0


def run(viewers: int, changes: int, procs: int, duckdb_path: Path, tmp: Path, presence: bool = True) -> dict[str, Any]:
    import httpx

    port = free_port()
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws"
    cfg = {"port": port, "data_dir": str(tmp), "duckdb": str(duckdb_path), "store": str(tmp / f"meta-{port}.db"),
           "presence": presence}
    cfg_path = tmp / f"serve-{port}.json"
    cfg_path.write_text(json.dumps(cfg))
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(cfg_path)])
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        token = httpx.post(f"{base}/api/login", json={"username": USER, "password": PASSWORD}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        dashboard_id = httpx.post(f"{base}/api/dashboards", json={"title": "Live bench"}, headers=auth).json()["id"]
        asyncio.run(_add_widgets(ws, base, token, dashboard_id))

        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        inboxes = [ctx.Queue() for _ in range(procs)]
        shares = [viewers // procs + (1 if i < viewers % procs else 0) for i in range(procs)]
        workers = [ctx.Process(target=worker_main, args=({"base": base, "ws": ws, "dashboard_id": dashboard_id,
                                                          "token": token, "inbox": inboxes[i]}, shares[i], out)) for i in range(procs)]
        for w in workers:
            w.start()
        for _ in workers:
            assert out.get(timeout=300)[0] == "ready"
        time.sleep(2.0)  # the initial refreshes are over
        start_queries = queries_so_far(base)
        per_viewer: list[float] = []
        last_viewer: list[float] = []
        with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
            for i in range(1, changes + 1):
                t0 = time.time()
                # a new largest order id each time (runs share the file), so every widget changes
                order_id = time.time_ns() // 1000
                r = http.post("/api/tables/orders/rows", params={"warehouse": "bench"}, json={"rows": [
                    {"order_id": order_id, "ordered_at": "2026-06-01T12:00:00", "region": "North", "amount": 12.5}]})
                assert r.status_code == 200, r.text
                for inbox in inboxes:
                    inbox.put(i * READS_ORDERS)
                times: list[float | None] = []
                codes: set[int] = set()
                for _ in workers:
                    kind, got, closed_codes = out.get(timeout=120)
                    times.extend(got)
                    codes.update(closed_codes)
                missing = sum(1 for t in times if t is None)
                if missing:
                    print(f"  change {i}: {missing} viewers missed the update (close codes seen: {sorted(codes)})", flush=True)
                lat = [(t - t0) * 1000 for t in times if t is not None]
                if not lat:
                    for w in workers:
                        w.terminate()
                    raise SystemExit("no viewer was updated: see the close codes above")
                per_viewer.extend(lat)
                last_viewer.append(max(lat))
                time.sleep(0.3)
        queries = queries_so_far(base) - start_queries
        for inbox in inboxes:
            inbox.put("stop")
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.terminate()
        return {
            "viewers": viewers, "changes": changes,
            "viewer_p50_ms": statistics.median(per_viewer), "viewer_p95_ms": pct(per_viewer, 95),
            "last_viewer_p50_ms": statistics.median(last_viewer), "last_viewer_p95_ms": pct(last_viewer, 95),
            "queries_per_change": queries / changes,
        }
    finally:
        server.terminate()
        server.wait(15)


async def _add_widgets(ws_url: str, base: str, token: str, dashboard_id: str) -> None:
    import httpx
    import websockets

    async with httpx.AsyncClient(base_url=base) as http:
        ticket = (await http.post("/api/ticket", headers={"Authorization": f"Bearer {token}"})).json()["ticket"]
    async with websockets.connect(f"{ws_url}?ticket={ticket}") as ws:
        ops = [{"type": "add_widget", "widget": {"title": title, "sql": sql,
                                                 "refresh": {"interval_s": None, "on_data_change": True}}}
               for title, sql in WIDGETS]
        await ws.send(json.dumps({"id": 1, "op": "edit", "dashboard_id": dashboard_id, "ops": ops}))
        while True:
            msg = json.loads(await ws.recv())
            items = msg["messages"] if msg.get("type") == "message_batch" else [msg]
            if any(item.get("id") == 1 for item in items):
                reply = next(item for item in items if item.get("id") == 1)
                assert reply["ok"], reply
                return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--viewers", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2, help="viewer worker processes")
    parser.add_argument("--no-presence", action="store_true", help="run the server with presence off")
    args = parser.parse_args(argv)
    if args.serve:
        serve_main(json.loads(Path(args.serve).read_text()))
        return
    with tempfile.TemporaryDirectory(prefix="livebi-live-bench-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "bench.duckdb"
        t = time.perf_counter()
        make_data(path, args.rows)
        print(f"data: {args.rows:,} order rows in {time.perf_counter() - t:.1f} s", flush=True)
        results = []
        for viewers in args.viewers:
            result = run(viewers, args.changes, args.procs, path, tmp, presence=not args.no_presence)
            results.append(result)
            print(f"{viewers:>5} viewers: ingest -> viewer updated p50 {result['viewer_p50_ms']:.0f} ms, "
                  f"p95 {result['viewer_p95_ms']:.0f} ms; last viewer p50 {result['last_viewer_p50_ms']:.0f} ms, "
                  f"p95 {result['last_viewer_p95_ms']:.0f} ms; queries per change {result['queries_per_change']:.2f}",
                  flush=True)
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
