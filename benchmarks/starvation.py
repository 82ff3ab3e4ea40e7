"""Benchmark: can two accounts' heavy queries starve a third user, or blow up the server's memory?

Starts `livebi serve` in its own process on the generated demo warehouse (1M orders by default)
and measures, in one run:

1. **baseline**: a victim's ``SELECT 1`` round trips (ask -> result over the WebSocket) alone;
2. **attack**: two attacker accounts keep 4 heavy questions each in flight (one runs a CPU-heavy
   triple join, the other a memory-hungry sort of a self-join) while the victim keeps asking
   ``SELECT 1``; figures with the product's defaults (fair queue, engine limits);
3. **attack, no fairness**: the same with the per-user warehouse limit raised to the warehouse's
   capacity (how the server behaved before the fair queue), for the ratio.

For each: the victim's latency (median, p95, max, and how many answers took over 1 s), the
attackers' outcomes, and the server's peak RSS (read from /proc) against ``--rss-budget-mib``.

    .venv/bin/python benchmarks/starvation.py                 # ~2 minutes
    .venv/bin/python benchmarks/starvation.py --rows 200000 --seconds 10

Loopback only; the server and every client stop by themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from livebi.client import LiveClient, LiveError  # noqa: E402

CPU_HEAVY = (
    "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0"
)
MEMORY_HEAVY = (
    "SELECT a.order_id, b.order_id AS other, a.revenue * b.revenue AS x FROM orders a "
    "JOIN orders b ON a.customer_id = b.customer_id ORDER BY x DESC"
)
USERS = {"attacker1": "pw-attacker1", "attacker2": "pw-attacker2", "victim": "pw-victim"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, data_dir: Path, warehouse: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LIVEBI_DATA_DIR": str(data_dir), "LIVEBI_SECRET_KEY": "bench", **env}
        self.warehouse = warehouse
        self.log = open(data_dir / f"server-{self.port}.log", "w")
        self.proc: subprocess.Popen | None = None
        self.peak_rss = 0.0
        self._sampler: asyncio.Task | None = None

    async def __aenter__(self) -> "Server":
        livebi = str(Path(sys.executable).parent / "livebi")
        for name, password in USERS.items():
            subprocess.run([livebi, "user", "add", name, "--password", password], env=self.env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            [livebi, "serve", "--warehouse", f"demo=duckdb:///{self.warehouse}", "--port", str(self.port),
             "--log-level", "warning"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        import httpx

        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    if (await http.get(self.base_url + "/health")).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: see {self.log.name}")
                await asyncio.sleep(0.1)
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, rss_mib(self.proc.pid))
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: Any) -> None:
        if self._sampler:
            self._sampler.cancel()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def victim_loop(client: LiveClient, stop: float, latencies: list[float], errors: list[str]) -> None:
    while time.monotonic() < stop:
        started = time.perf_counter()
        query = await client.ask(sql="SELECT 1 AS one")
        try:
            await query.result(timeout=120)
        except LiveError as exc:
            errors.append(exc.code)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.3)


async def attacker_loop(client: LiveClient, sql: str, stop: float, outcomes: dict[str, int]) -> None:
    while time.monotonic() < stop:
        try:
            query = await client.ask(sql=sql)
        except LiveError as exc:  # too_many_queries etc.: count and retry shortly
            outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
            await asyncio.sleep(0.05)
            continue
        try:
            await query.result(timeout=300)
            key = "result"
        except LiveError as exc:
            key = exc.code
        outcomes[key] = outcomes.get(key, 0) + 1


async def scenario(name: str, server: Server, seconds: float, attack: bool, rss_budget: float) -> dict[str, Any]:
    victim = await LiveClient.login(server.base_url, "victim", USERS["victim"])
    attackers = [await LiveClient.login(server.base_url, u, USERS[u]) for u in ("attacker1", "attacker2")]
    latencies: list[float] = []
    errors: list[str] = []
    outcomes: dict[str, int] = {}
    stop = time.monotonic() + seconds
    tasks = []
    if attack:
        for client, sql in zip(attackers, (CPU_HEAVY, MEMORY_HEAVY)):
            tasks += [asyncio.create_task(attacker_loop(client, sql, stop, outcomes)) for _ in range(4)]
        await asyncio.sleep(1.0)  # let the attack fill the warehouse first
    await victim_loop(victim, stop, latencies, errors)
    await asyncio.gather(*tasks)
    for client in (victim, *attackers):
        await client.close()
    slow = sum(1 for x in latencies if x > 1.0)
    figures = {
        "scenario": name,
        "victim_answers": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "over_1s": slow,
        "victim_errors": errors,
        "attacker_outcomes": outcomes,
        "peak_rss_mib": round(server.peak_rss, 1),
        "rss_budget_mib": rss_budget,
    }
    verdict = "PASS" if slow == 0 and not errors and server.peak_rss <= rss_budget else "FAIL"
    print(
        f"{name:<22} victim SELECT 1: n={figures['victim_answers']:<3} p50 {figures['p50_ms']:>7} ms  "
        f"p95 {figures['p95_ms']:>7} ms  max {figures['max_ms']:>7} ms  >1s: {slow:<3} errors: {errors or '-'}  "
        f"peak RSS {figures['peak_rss_mib']} MiB (budget {rss_budget})  attackers: {outcomes or '-'}  {verdict}",
        flush=True,
    )
    return figures


async def main(args: argparse.Namespace) -> None:
    from livebi.demo.generate import generate_demo

    with tempfile.TemporaryDirectory(prefix="livebi-starvation-") as tmp:
        tmp_path = Path(tmp)
        warehouse = tmp_path / "demo.duckdb"
        print(f"generating the demo warehouse ({args.rows:,} orders)…", flush=True)
        generate_demo(warehouse, rows=args.rows)
        common = {
            "LIVEBI_QUERY_TIMEOUT_S": str(args.query_timeout),
            "LIVEBI_OP_RATE_PER_S": "0",
            "LIVEBI_DUCKDB_MEMORY_LIMIT": args.duckdb_memory_limit,
        }
        print(f"server: duckdb_memory_limit={args.duckdb_memory_limit}, query_timeout_s={args.query_timeout}; "
              f"RSS budget {args.rss_budget_mib:.0f} MiB", flush=True)
        runs = [
            ("baseline", {}, False),
            ("attack (defaults)", {}, True),
            ("attack (no fairness)", {"LIVEBI_WAREHOUSE_MAX_CONCURRENT_QUERIES_PER_USER": "8"}, True),
        ]
        results = []
        for name, env, attack in runs:
            data_dir = tmp_path / name.replace(" ", "_").replace("(", "").replace(")", "")
            data_dir.mkdir()
            async with Server(data_dir, warehouse, {**common, **env}) as server:
                results.append(await scenario(name, server, args.seconds, attack, args.rss_budget_mib))
        base = results[0]["p50_ms"] or 1.0
        for r in results[1:]:
            print(f"{r['scenario']:<22} victim p50 = {r['p50_ms'] / base:.1f}x baseline, max = {r['max_ms']:.0f} ms")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders in the generated demo warehouse")
    parser.add_argument("--seconds", type=float, default=25.0, help="length of each scenario")
    parser.add_argument("--query-timeout", type=float, default=10.0, help="the server's query_timeout_s")
    parser.add_argument("--duckdb-memory-limit", default="1GB", help="the server's duckdb_memory_limit")
    parser.add_argument("--rss-budget-mib", type=float, default=2048.0,
                        help="peak server RSS allowed (the engine's limit plus the server's own working set)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
