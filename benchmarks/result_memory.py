"""Peak memory one query with huge values costs the server: bounded fetch vs. fetch-then-cut.

    .venv/bin/python benchmarks/result_memory.py
    .venv/bin/python benchmarks/result_memory.py --postgres postgresql://reader@127.0.0.1/test

Each measurement runs in a fresh subprocess (peak RSS only grows, so runs must not share a
process) and prints the growth of the peak RSS (``ru_maxrss``) while the query runs, the
result's rows and JSON size. Two ways to run the same query with the product's default limits
(row cap 10 000, 2 MB of JSON, 10 000 characters per value):

- ``before``: what livebi did until the fetch was bounded: ``fetchmany`` in chunks of 2048
  rows, every value converted in full (``to_json_row``), then ``cap_result`` cut the result;
- ``after``: the connector's ``execute()``, which cuts long values in the engine and stops the
  fetch at the byte budget (``livebi.warehouse.bounded``).

PostgreSQL runs only with ``--postgres DSN``; the connector is opened with
``allow_privileged_role`` so that any local role works (a warning is logged).
Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HUGE = 50_000_000
QUERIES = {
    "duckdb: 20 rows x 50 MB text": ("duckdb", f"SELECT g, repeat('x', {HUGE}) AS big FROM range(20) t(g)"),
    "duckdb: 20 000 wide rows (40 x 5 kB)": (
        "duckdb",
        "SELECT " + ", ".join(f"repeat('x', 5000) AS c{i}" for i in range(40)) + " FROM range(20000)",
    ),
    "sqlite: 20 rows x 50 MB blob + 50 MB text": (
        "sqlite",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20) "
        f"SELECT x, randomblob({HUGE}) AS r, replace(hex(zeroblob({HUGE // 2})), '0', 'x') AS t FROM c",
    ),
    "postgres: 20 rows x 50 MB text": ("postgres", f"SELECT g, repeat('x', {HUGE}) AS big FROM generate_series(1, 20) g"),
}
ROW_CAP, MAX_BYTES, MAX_VALUE_CHARS = 10_000, 2 * 1024 * 1024, 10_000


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure(engine: str, sql: str, mode: str, url: str) -> dict:
    """Run one query in this (fresh) process; return its figures."""
    from livebi.agents.data import cap_result
    from livebi.warehouse.base import QueryResult
    from livebi.warehouse.registry import open_warehouse
    from livebi.warehouse.types import to_json_row

    async def after() -> QueryResult:
        wh = open_warehouse("bench", url, allow_privileged_role=True)
        try:
            await wh.execute("SELECT 1", timeout=30, row_cap=1)  # open the engine first
            start_peak = peak_mb()
            started = time.perf_counter()
            result = await wh.execute(sql, timeout=300, row_cap=ROW_CAP, max_bytes=MAX_BYTES, max_value_chars=MAX_VALUE_CHARS)
            return start_peak, time.perf_counter() - started, result
        finally:
            await wh.close()

    def before() -> tuple:
        rows: list = []
        if engine == "duckdb":
            import duckdb  # noqa: PLC0415 - only this mode needs it

            con = duckdb.connect(":memory:")
            con.execute("SELECT 1")
            start_peak, started = peak_mb(), time.perf_counter()
            cur = con.execute(sql)
            while len(rows) <= ROW_CAP:
                chunk = cur.fetchmany(min(2048, ROW_CAP + 1 - len(rows)))
                if not chunk:
                    break
                rows.extend(to_json_row(r) for r in chunk)
        elif engine == "sqlite":
            con = sqlite3.connect(":memory:")
            start_peak, started = peak_mb(), time.perf_counter()
            cur = con.execute(sql)
            while len(rows) <= ROW_CAP:
                chunk = cur.fetchmany(min(1024, ROW_CAP + 1 - len(rows)))
                if not chunk:
                    break
                rows.extend(to_json_row(r) for r in chunk)
        else:
            import asyncpg

            async def fetch() -> tuple:
                conn = await asyncpg.connect(url)
                try:
                    peak, t0 = peak_mb(), time.perf_counter()
                    async with conn.transaction(readonly=True):
                        stmt = await conn.prepare(sql)
                        async for record in stmt.cursor(prefetch=1000):
                            rows.append(to_json_row(record.values()))
                            if len(rows) > ROW_CAP:
                                break
                    return peak, t0
                finally:
                    await conn.close()

            start_peak, started = asyncio.run(fetch())
        result = QueryResult(columns=[], column_kinds=[], rows=rows[:ROW_CAP], row_count=min(len(rows), ROW_CAP),
                             truncated=len(rows) > ROW_CAP, elapsed_ms=0)
        return start_peak, time.perf_counter() - started, cap_result(result, max_bytes=MAX_BYTES, max_value_chars=MAX_VALUE_CHARS)

    start_peak, seconds, result = before() if mode == "before" else asyncio.run(after())
    return {
        "peak_growth_mb": round(peak_mb() - start_peak, 1),
        "seconds": round(seconds, 2),
        "rows": result.row_count,
        "json_kb": round(len(json.dumps(result.rows, ensure_ascii=False).encode()) / 1024, 1),
        "truncated": result.truncated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--postgres", default="", help="DSN of a PostgreSQL database to measure too")
    parser.add_argument("--measure", nargs=4, metavar=("ENGINE", "SQL", "MODE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.db"
        sqlite3.connect(empty).close()  # the connector opens files read-only: it must exist
        urls = {"duckdb": "duckdb:///:memory:", "sqlite": f"sqlite:///{empty}", "postgres": args.postgres}
        print(f"{'query':44} {'mode':7} {'peak RSS growth':>16} {'time':>7} {'rows':>6} {'JSON':>9}  cut")
        for label, (engine, sql) in QUERIES.items():
            if not urls[engine]:
                print(f"{label:44} (skipped: pass --postgres DSN)")
                continue
            for mode in ("before", "after"):
                proc = subprocess.run(
                    [sys.executable, __file__, "--measure", engine, sql, mode, urls[engine]],
                    capture_output=True, text=True, timeout=900,
                )
                if proc.returncode != 0:
                    print(f"{label:44} {mode:7} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
                    continue
                f = json.loads(proc.stdout.strip().splitlines()[-1])
                print(
                    f"{label:44} {mode:7} {f['peak_growth_mb']:>13.1f} MB {f['seconds']:>6.2f}s "
                    f"{f['rows']:>6} {f['json_kb']:>6.1f} kB  {f['truncated']}"
                )


if __name__ == "__main__":
    main()
