"""Benchmark: how long do questions take when many people ask at once?

Starts `livebi serve` in its own process on the generated demo warehouse and, over the
WebSocket (real ``livebi.client.LiveClient`` instances, one account each: the per-user limits
would otherwise be what is measured), runs:

1. **one asker**: one user asks the demo questions (benchmarks/questions/demo.yaml) one after
   another;
2. **N concurrent askers** (20 by default): N users each keep one question in flight, each
   going through the same questions from a different starting point, all starting together
   (with the defaults, 100 different questions: half of them asked by the single asker before,
   so reused work shows; ``--pool 60`` only those, ``--env LIVEBI_RESULT_CACHE_S=0`` without
   the result cache).

For each: time from sending ``ask`` to the first ``progress`` publication and to the ``result``
(p50, p95), answers per second, the server's CPU per answer (read from /proc), and the server's
own stage timings (``timings_ms`` of the results). The closing line is the ratio the issue asks
about: the concurrent p95 to result against the single asker's median.

    .venv/bin/python benchmarks/askers.py                       # ~1 minute
    .venv/bin/python benchmarks/askers.py --rows 200000 --rounds 3 --json askers.json

Loopback only; the server and every client stop by themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from livebi.client import LiveClient, LiveError  # noqa: E402

PASSWORD = "pw-asker-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def cpu_seconds(pid: int, path: str = "") -> float:
    """User + system CPU of ``pid`` (all threads) from /proc."""
    fields = Path(path or f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_cpu_seconds(pid: int) -> float:
    """CPU of the server's main thread: the event loop (the other threads are worker pools,
    DuckDB's own threads, SQLite's)."""
    return cpu_seconds(pid, f"/proc/{pid}/task/{pid}/stat")


def demo_questions() -> list[str]:
    data = yaml.safe_load((ROOT / "benchmarks" / "questions" / "demo.yaml").read_text())
    return [item["q"] for items in data["questions"].values() for item in items]


class TimedClient(LiveClient):
    """A LiveClient that notes when the first progress and the outcome of each channel arrive."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.arrivals: dict[str, dict[str, float]] = {}

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if channel and channel.startswith("query:"):
            seen = self.arrivals.setdefault(channel, {})
            kind = message.get("type")
            if kind == "progress":
                seen.setdefault("progress", time.perf_counter())
            elif kind in ("result", "error"):
                seen.setdefault("outcome", time.perf_counter())
        super()._dispatch(message)


async def ask_once(client: TimedClient, question: str) -> dict[str, Any]:
    started = time.perf_counter()
    query = await client.ask(question)
    try:
        data = await query.result(timeout=120)
        error = None
    except LiveError as exc:
        data, error = exc.data, exc.code
    await client.unsubscribe(query.channel)
    seen = client.arrivals.pop(query.channel, {})
    return {
        "question": question,
        "first_progress": seen.get("progress", math.nan) - started,
        "result": seen.get("outcome", time.perf_counter()) - started,
        "error": error,
        "timings": (data or {}).get("timings_ms") or {},
        "sql": (data or {}).get("sql"),
        "cached": bool((data or {}).get("cached")),
    }


class Server:
    def __init__(self, tmp: Path, warehouse: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tmp / "data"
        self.data_dir.mkdir()
        self.env = {
            **os.environ,
            "LIVEBI_DATA_DIR": str(self.data_dir),
            "LIVEBI_SECRET_KEY": "bench",
            "LIVEBI_OP_RATE_PER_S": "0",
            "LIVEBI_LOGIN_BURST_PER_ADDRESS": "1000",
            "LIVEBI_TODAY": "2025-12-31",
            **env,
        }
        self.warehouse = warehouse
        self.log_path = tmp / "server.log"
        self.proc: subprocess.Popen | None = None

    def cpu(self, since: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[float, float, float]:
        """(server process CPU, its event-loop thread's CPU, this process's CPU: the clients)
        in seconds, minus ``since``."""
        pid = self.proc.pid
        return (cpu_seconds(pid) - since[0], loop_cpu_seconds(pid) - since[1],
                cpu_seconds(os.getpid()) - since[2])

    async def add_users(self, names: list[str]) -> None:
        from livebi.auth import hash_password
        from livebi.store import MetadataStore

        store = await MetadataStore.open(f"sqlite:///{self.data_dir / 'livebi.db'}")
        try:
            hashed = hash_password(PASSWORD)
            for name in names:
                await store.add_user(name, hashed)
        finally:
            await store.close()

    async def __aenter__(self) -> "Server":
        import httpx

        livebi = str(Path(sys.executable).parent / "livebi")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [livebi, "serve", "--warehouse", f"demo=duckdb:///{self.warehouse}", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if (await http.get(self.base_url + "/health")).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start within 60 s")

    async def __aexit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def summarize(name: str, samples: list[dict[str, Any]], wall: float, cpu: tuple[float, float, float]) -> dict[str, Any]:
    firsts = [s["first_progress"] for s in samples if not math.isnan(s["first_progress"])]
    results = [s["result"] for s in samples]
    stages = {k: statistics.median([s["timings"].get(k, 0.0) for s in samples]) for k in ("nlp", "data", "viz", "total")}
    out = {
        "phase": name,
        "answers": len(samples),
        "errors": sorted({s["error"] for s in samples if s["error"]}),
        "error_count": sum(1 for s in samples if s["error"]),
        "first_progress_p50_ms": round(statistics.median(firsts) * 1000, 1) if firsts else None,
        "first_progress_p95_ms": round(pct(firsts, 95) * 1000, 1) if firsts else None,
        "result_p50_ms": round(statistics.median(results) * 1000, 1),
        "result_p95_ms": round(pct(results, 95) * 1000, 1),
        "result_max_ms": round(max(results) * 1000, 1),
        "result_mean_ms": round(statistics.fmean(results) * 1000, 1),
        "answers_per_s": round(len(samples) / wall, 1),
        "server_cpu_ms_per_answer": round(cpu[0] / len(samples) * 1000, 1),
        "server_loop_cpu_ms_per_answer": round(cpu[1] / len(samples) * 1000, 1),
        "client_cpu_ms_per_answer": round(cpu[2] / len(samples) * 1000, 1),
        "server_stage_p50_ms": {k: round(v, 1) for k, v in stages.items()},
        "slowest": [
            {"question": s["question"], "result_ms": round(s["result"] * 1000, 1), "server_ms": s["timings"]}
            for s in sorted(samples, key=lambda s: -s["result"])[:5]
        ],
    }
    print(
        f"{name:<22} n={out['answers']:<4} first progress p50 {out['first_progress_p50_ms']:>6} ms  p95 "
        f"{out['first_progress_p95_ms']:>6} ms | result p50 {out['result_p50_ms']:>7} ms  p95 {out['result_p95_ms']:>7} ms"
        f"  max {out['result_max_ms']:>7} ms  mean {out['result_mean_ms']:>7} ms | {out['answers_per_s']:>6} answers/s | server CPU "
        f"{out['server_cpu_ms_per_answer']} ms/answer (event loop {out['server_loop_cpu_ms_per_answer']}), clients {out['client_cpu_ms_per_answer']} | server stages p50 {out['server_stage_p50_ms']}"
        + (f" | errors: {out['error_count']} {out['errors']}" if out["errors"] else ""),
        flush=True,
    )
    return out


def warehouse_cpu_ms(warehouse: Path, sqls: list[str], repeats: int = 3) -> float:
    """Mean CPU (ms) of running each of ``sqls`` straight on the DuckDB file, one thread, warm."""
    import duckdb
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    if not sqls:
        return math.nan
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("SET threads = 1")
        for sql in sqls:
            con.execute(sql).fetchall()
        c0 = cpu()
        for _ in range(repeats):
            for sql in sqls:
                con.execute(sql).fetchall()
        return (cpu() - c0) / (repeats * len(sqls)) * 1000
    finally:
        con.close()


async def single(server: Server, client: TimedClient, questions: list[str]) -> dict[str, Any]:
    cpu0, t0 = server.cpu(), time.perf_counter()
    samples = [await ask_once(client, q) for q in questions]
    return summarize("1 asker", samples, time.perf_counter() - t0, server.cpu(since=cpu0))


async def concurrent(server: Server, clients: list[TimedClient], questions: list[str], rounds: int) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    go = asyncio.Event()
    stride = max(1, len(questions) // len(clients))

    async def asker(i: int, client: TimedClient) -> None:
        await go.wait()
        for r in range(rounds):
            samples.append(await ask_once(client, questions[(i * stride + r) % len(questions)]))

    tasks = [asyncio.create_task(asker(i, c)) for i, c in enumerate(clients)]
    await asyncio.sleep(0.2)
    cpu0, t0 = server.cpu(), time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    out = summarize(f"{len(clients)} concurrent askers", samples, time.perf_counter() - t0, server.cpu(since=cpu0))
    out["samples"] = samples  # for the warehouse-alone figure; not part of the JSON
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from livebi.demo.generate import generate_demo

    questions = demo_questions()
    with tempfile.TemporaryDirectory(prefix="livebi-askers-") as tmp:
        tmp_path = Path(tmp)
        warehouse = tmp_path / "demo.duckdb"
        print(f"generating the demo warehouse ({args.rows:,} orders)…", flush=True)
        generate_demo(warehouse, rows=args.rows)
        env = dict(kv.split("=", 1) for kv in args.env)
        server = Server(tmp_path, warehouse, env)
        names = [f"asker{i:02d}" for i in range(args.askers)]
        await server.add_users(names)
        async with server:
            print(f"server up (pid {server.proc.pid}); "
                  f"{len(questions)} demo questions; env {env or '-'}", flush=True)
            clients: list[TimedClient] = []
            try:
                for name in names:
                    clients.append(await TimedClient.login(server.base_url, name, PASSWORD, transport="ws"))
                for q in questions[:3]:  # builds the semantic model, warms the caches
                    await ask_once(clients[0], q)
                idle0 = server.cpu()
                await asyncio.sleep(2.0)
                idle = server.cpu(since=idle0)
                print(f"server CPU while idle: {idle[0] / 2 * 1000:.1f} ms/s", flush=True)
                one = await single(server, clients[0], questions[: args.single])
                spy = None
                if args.py_spy:  # sample the server's stacks during the concurrent phase
                    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                            str(server.proc.pid), "--format", "raw", "--threads",
                                            "--output", args.py_spy, "--rate", "250"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    await asyncio.sleep(1.0)
                try:
                    pool = questions[: args.pool] if args.pool else questions
                    many = await concurrent(server, clients, pool, args.rounds)
                finally:
                    if spy is not None:
                        spy.send_signal(2)
                        spy.wait(30)
            finally:
                await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        # Answers from the result cache ran nothing on the warehouse: they count as zero.
        samples = many.pop("samples")
        ran = [s["sql"] for s in samples if s["sql"] and not s["cached"]]
        warehouse_cpu = warehouse_cpu_ms(warehouse, ran) * len(ran) / len(samples) if ran else 0.0
    ratio = many["result_p95_ms"] / one["result_p50_ms"]
    # Little's law with the CPU as the only limit: N askers, each keeping one question in
    # flight, wait at least N x (CPU per answer) / cores. Above it is queueing that is not CPU.
    cores = len(os.sched_getaffinity(0))
    per_answer = many["server_cpu_ms_per_answer"] + many["client_cpu_ms_per_answer"]
    floor = args.askers * per_answer / cores
    print(f"CPU floor for {args.askers} askers on {cores} cores: {args.askers} x {per_answer:.1f} ms / {cores} = "
          f"{floor:.0f} ms per answer; measured p50 {many['result_p50_ms']} ms = {many['result_p50_ms'] / floor:.1f}x "
          f"the floor", flush=True)
    # The warehouse alone: the same SQL run straight on DuckDB (one thread, after the server
    # stopped), nothing of livebi around it. N askers on these cores cannot wait less than this.
    wh_floor = args.askers * warehouse_cpu / cores
    print(f"warehouse alone: {warehouse_cpu:.1f} ms of DuckDB CPU per answer of the concurrent phase (mean, the "
          f"{len(ran)} answers not from the result cache run again straight on DuckDB, one thread); "
          f"{args.askers} askers on {cores} cores wait at least {wh_floor:.0f} ms = "
          f"{wh_floor / one['result_p50_ms']:.1f}x the single asker's median before any work of livebi's", flush=True)
    verdict_first = "PASS" if one["first_progress_p95_ms"] < 50 else "FAIL"
    verdict_ratio = "PASS" if ratio < 4 else "FAIL"
    print(f"1 asker first progress p95 {one['first_progress_p95_ms']} ms (< 50 ms: {verdict_first}); "
          f"{args.askers} askers p95 to result / 1 asker p50 = {many['result_p95_ms']} / {one['result_p50_ms']} = "
          f"{ratio:.2f}x (< 4x: {verdict_ratio}); {many['answers_per_s']} answers/s", flush=True)
    return {"rows": args.rows, "askers": args.askers, "env": env, "single": one, "concurrent": many,
            "ratio_p95_to_single_p50": round(ratio, 2), "cpu_floor_ms": round(floor, 1), "cores": cores,
            "warehouse_cpu_ms_per_answer": round(warehouse_cpu, 2), "warehouse_floor_ms": round(wh_floor, 1)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders in the generated demo warehouse")
    parser.add_argument("--askers", type=int, default=20, help="concurrent askers (one account each)")
    parser.add_argument("--rounds", type=int, default=5, help="questions each concurrent asker asks in turn")
    parser.add_argument("--single", type=int, default=60, help="questions the single asker asks")
    parser.add_argument("--pool", type=int, default=0, metavar="N",
                        help="concurrent askers pick from the first N questions only (e.g. --pool 60: only questions the "
                        "single asker asked before, what the result cache can answer); default: all")
    parser.add_argument("--env", action="append", default=[], metavar="LIVEBI_X=value",
                        help="extra server setting (repeatable), e.g. LIVEBI_DUCKDB_THREADS=1")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="record the server's stacks (py-spy raw format) during the concurrent phase")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(figures, indent=2) + "\n")
