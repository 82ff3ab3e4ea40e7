"""Benchmark: what does running the agents as services cost a question?

Starts `livebi agent nlp`, `livebi agent data` and `livebi agent viz` in processes of their own on
a generated demo warehouse, then answers the same questions with :class:`livebi.pipeline.Pipeline`
three ways, in this one run (interleaved: each question is asked in each mode in turn, so load
from elsewhere on the machine hits every mode alike):

1. **in process** (the default: no agent URLs), the baseline;
2. **remote over WebSocket** (every agent remote, through the pools a server uses);
3. **remote over HTTP** (the same pools put in their fallback mode, as after repeated WebSocket
   failures: one streamed POST per call).

For each: median and p95 of the time to answer, and the ratio of each median to the in-process
one. Progress callbacks are counted too, to show they arrive the same way.

    .venv/bin/python benchmarks/remote_agents.py            # ~1 minute
    .venv/bin/python benchmarks/remote_agents.py --quick    # a few seconds of questions

Loopback only; the agent processes stop by themselves at the end.
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

import httpx

from livebi.agents.data import DataAgent
from livebi.agents.remote.wiring import RemoteAgents
from livebi.config import Settings
from livebi.demo.generate import DEMO_TODAY, generate_demo
from livebi.pipeline import AskRequest, Pipeline, new_query_id
from livebi.services import build_nlp_agent, warehouse_options
from livebi.warehouse.registry import open_warehouse

LIVEBI = str(Path(sys.executable).parent / "livebi")
TOKEN = "benchmark-agent-token"
QUESTIONS = [
    "how many orders", "total revenue by region", "revenue by month in 2025", "top 5 products by revenue",
    "number of cancelled orders", "average order value by customer segment",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(kind: str, demo: Path, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LIVEBI_DATA_DIR": str(data_dir), "LIVEBI_AGENT_TOKEN": TOKEN, "LIVEBI_TODAY": str(DEMO_TODAY)}
    proc = subprocess.Popen([LIVEBI, "agent", kind, "--port", str(port), "--warehouse", f"demo=duckdb:///{demo}",
                             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc, f"ws://127.0.0.1:{port}"
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the {kind} agent exited")
        time.sleep(0.05)
    raise RuntimeError(f"the {kind} agent did not start")


class Mode:
    """One way of answering: a pipeline, and the pools to put in HTTP mode (or back) first."""

    def __init__(self, name: str, pipeline: Pipeline, pools: list, transport: str | None = None) -> None:
        self.name, self.pipeline, self.pools, self.transport = name, pipeline, pools, transport
        self.times: list[float] = []
        self.progress = 0

    def report(self, *_args: object) -> None:
        self.progress += 1

    async def ask(self, question: str, *, record: bool) -> None:
        for pool in self.pools:  # as after agent_ws_failures_before_http failures in a row (or a probe)
            pool.mode.transport = self.transport
        started = time.perf_counter()
        await self.pipeline.answer(new_query_id(), AskRequest(question=question), self.report if record else lambda *a: None)
        if record:
            self.times.append((time.perf_counter() - started) * 1000)


async def measure(modes: list[Mode], rounds: int) -> None:
    """Every question in every mode once to warm up, then ``rounds`` rounds in which each mode
    answers each question in turn (interleaved, so load from elsewhere hits every mode alike)."""
    for mode in modes:
        for question in QUESTIONS:
            await mode.ask(question, record=False)
    for _ in range(rounds):
        for question in QUESTIONS:
            for mode in modes:
                await mode.ask(question, record=True)


async def run(rows: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="livebi-remote-bench-"))
    demo = tmp / "demo.duckdb"
    generate_demo(demo, rows=rows)
    procs = {}
    try:
        urls = {}
        for kind in ("nlp", "data", "viz"):
            procs[kind], urls[kind] = start_agent(kind, demo, tmp)
        settings = Settings(data_dir=tmp, warehouses={"demo": f"duckdb:///{demo}"}, today=DEMO_TODAY, agent_token=TOKEN,
                            nlp_agent_urls=[urls["nlp"]], data_agent_urls=[urls["data"]], viz_agent_urls=[urls["viz"]])
        warehouses = {"demo": open_warehouse("demo", f"duckdb:///{demo}", **warehouse_options(settings, "demo"))}
        data = DataAgent(timeout_s=30, row_cap=settings.row_cap)
        local = Pipeline(warehouses=warehouses, nlp=build_nlp_agent(settings), data=data)
        agents = RemoteAgents(settings)
        await agents.start()
        remote = Pipeline(warehouses=warehouses, nlp=agents.nlp(build_nlp_agent(settings)), data=agents.data(data),
                          viz=agents.viz())
        pools = list(agents.pools.values())
        modes = [Mode("in process", local, []), Mode("remote, WebSocket", remote, pools, "websocket"),
                 Mode("remote, HTTP fallback", remote, pools, "http")]
        await measure(modes, rounds)
        await agents.close()
        await warehouses["demo"].close()
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
    base = statistics.median(modes[0].times)
    n = rounds * len(QUESTIONS)
    print(f"{n} questions per mode ({rounds} rounds of {len(QUESTIONS)}, modes interleaved), demo warehouse of "
          f"{rows:,} orders, {os.cpu_count()} CPUs")
    print(f"{'mode':24} {'median ms':>10} {'p95 ms':>8} {'x in process':>13} {'progress/question':>18}")
    for mode in modes:
        median = statistics.median(mode.times)
        p95 = sorted(mode.times)[max(0, int(len(mode.times) * 0.95) - 1)]
        print(f"{mode.name:24} {median:10.1f} {p95:8.1f} {median / base:13.2f} {mode.progress / len(mode.times):18.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="orders in the generated demo warehouse")
    parser.add_argument("--rounds", type=int, default=10, help="times each question is asked per mode")
    parser.add_argument("--quick", action="store_true", help="2 rounds on 20,000 orders")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = 20_000, 2
    asyncio.run(run(args.rows, args.rounds))


if __name__ == "__main__":
    main()
