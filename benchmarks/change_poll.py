"""Benchmark: what one change-detection poll costs on a 10M-row table, per engine.

Generates one ``orders`` table of ``--rows`` rows (default 10 million) plus a small
``customers`` table in DuckDB and SQLite files in a temporary directory and in a throwaway
PostgreSQL database, watches both tables with the product's detectors
(:func:`livebi.warehouse.changes.change_detector_for`) and times ``poll_once()`` (medians of
``--repeat`` polls, end to end: the hop to the worker thread or connection included):

- **unchanged**: nothing was written since the previous poll (the steady state);
- **insert**: one row inserted into ``orders`` by another connection before each poll;
- **update**: one row of ``orders`` updated in place (same row count) before each poll (DuckDB
  does not see it, SQLite reports every watched table, PostgreSQL counts it);
- **write elsewhere**: one row inserted into a table nobody watches before each poll;
- **first poll**: the baselines of tables that start being watched (the database already open).

For PostgreSQL the poll reads catalogue counters whatever the table's size; the benchmark also
times a trigger's NOTIFY from the writer's commit to ``on_change`` (``livebi live
install-triggers``). Queries per poll come from the detector's own counter.

    .venv/bin/python benchmarks/change_poll.py                  # 10M rows, ~2 minutes
    .venv/bin/python benchmarks/change_poll.py --rows 1000000 --repeat 9 --only duckdb,sqlite

Everything it creates (the temporary directory, the PostgreSQL database) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from livebi.warehouse.changes import ChangeDetector, change_detector_for  # noqa: E402

Write = Callable[[int], Awaitable[None]]


async def time_polls(detector: ChangeDetector, repeat: int, write: Write | None) -> dict[str, float]:
    """Median wall time of ``repeat`` polls (each after ``write(i)``, when given)."""
    times, queries, reported = [], [], 0
    for i in range(repeat):
        if write is not None:
            await write(i)
        before = detector.queries
        started = time.perf_counter()
        changed = await detector.poll_once()
        times.append((time.perf_counter() - started) * 1000)
        queries.append(detector.queries - before)
        reported += bool(changed)
    return {"median_ms": statistics.median(times), "queries": statistics.median(queries), "reported": reported, "polls": repeat}


async def first_poll(detector: ChangeDetector) -> dict[str, float]:
    detector.watch({"orders", "customers"})
    started = time.perf_counter()
    await detector.poll_once()
    return {"median_ms": (time.perf_counter() - started) * 1000, "queries": detector.queries, "reported": 0, "polls": 1}


async def scenarios(detector: ChangeDetector, repeat: int, writes: dict[str, Write]) -> dict[str, dict]:
    await detector.warehouse.schema()  # open the database first: the first poll is baselines only
    out = {"first poll": await first_poll(detector)}
    await detector.poll_once()  # settle (a file touched by opening the database)
    out["unchanged"] = await time_polls(detector, repeat, None)
    for name, write in writes.items():
        out[name] = await time_polls(detector, repeat, write)
    return out


async def nobody(tables: set[str]) -> None:
    return None


def embedded_writes(execute: Callable[[str], None], rows: int, date: str) -> dict[str, Write]:
    """The writes before each poll, for an engine whose driver blocks (run in a thread)."""

    def write(sql: str) -> Write:
        async def run(i: int) -> None:
            await asyncio.to_thread(execute, sql.format(i=i))

        return run

    return {
        "insert": write(f"INSERT INTO orders VALUES ({rows} + {{i}}, 1, 1, {date}, 'region1', 'new')"),
        "update": write("UPDATE orders SET status = 'shipped-{i}' WHERE id = {i} * 7919"),
        "write elsewhere": write("INSERT INTO log VALUES ('{i}')"),
    }


# -- DuckDB -----------------------------------------------------------------------------------


async def bench_duckdb(tmp: Path, rows: int, repeat: int) -> dict[str, dict]:
    import duckdb

    from livebi.warehouse.duckdb import DuckDBWarehouse

    path = tmp / "bench.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        f"""
        CREATE TABLE orders AS SELECT range AS id, range % 1000 AS customer_id,
               (range % 997) * 1.5 AS amount, DATE '2024-01-01' + (range % 365)::INT AS order_date,
               'region' || (range % 5) AS region, 'new' AS status
        FROM range({rows});
        CREATE TABLE customers AS SELECT range AS id, 'customer ' || range AS name FROM range(1000);
        CREATE TABLE log (line VARCHAR);
        CHECKPOINT;
        """
    )
    con.close()
    # writable, as a warehouse with ingest enabled is (a read-only one never changes: DuckDB
    # locks the file against other writers, and its polls stop at the file gate)
    wh = DuckDBWarehouse("bench", f"duckdb:///{path}", read_only=False)
    detector = change_detector_for(wh, nobody, poll_interval_s=60)

    def execute(sql: str) -> None:
        cur = wh.connection().cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()

    try:
        return await scenarios(detector, repeat, embedded_writes(execute, rows, "DATE '2024-06-01'"))
    finally:
        await detector.stop()
        await wh.close()


# -- SQLite -----------------------------------------------------------------------------------


async def bench_sqlite(tmp: Path, rows: int, repeat: int) -> dict[str, dict]:
    from livebi.warehouse.sqlite import SQLiteWarehouse

    path = tmp / "bench.sqlite"

    def generate() -> None:
        con = sqlite3.connect(path)
        con.executescript(
            f"""
            PRAGMA journal_mode = WAL;
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, amount REAL, order_date TEXT,
                                 region TEXT, status TEXT);
            WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < {rows - 1})
            INSERT INTO orders SELECT x, x % 1000, (x % 997) * 1.5, '2024-01-01', 'region' || (x % 5), 'new' FROM n;
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
            WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 999)
            INSERT INTO customers SELECT x, 'customer ' || x FROM n;
            CREATE TABLE log (line TEXT);
            """
        )
        con.close()

    await asyncio.to_thread(generate)
    wh = SQLiteWarehouse("bench", f"sqlite:///{path}")
    detector = change_detector_for(wh, nobody, poll_interval_s=60)
    writer = sqlite3.connect(path, check_same_thread=False)

    def execute(sql: str) -> None:
        writer.execute(sql)
        writer.commit()

    try:
        return await scenarios(detector, repeat, embedded_writes(execute, rows, "'2024-06-01'"))
    finally:
        writer.close()
        await detector.stop()
        await wh.close()


# -- PostgreSQL -------------------------------------------------------------------------------


async def bench_postgres(dsn: str, rows: int, repeat: int) -> dict[str, dict]:
    import asyncpg

    from livebi.warehouse.changes_postgres import install_triggers
    from livebi.warehouse.postgres import PostgresWarehouse

    name = f"livebi_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    url = dsn.rsplit("/", 1)[0] + "/" + name
    try:
        db = await asyncpg.connect(url)
        try:
            await db.execute(
                f"""
                CREATE TABLE orders AS SELECT g AS id, g % 1000 AS customer_id, (g % 997) * 1.5 AS amount,
                       DATE '2024-01-01' + (g % 365) AS order_date, 'region' || (g % 5) AS region, 'new'::text AS status
                FROM generate_series(1, {rows}) g;
                CREATE TABLE customers AS SELECT g AS id, 'customer ' || g AS name FROM generate_series(1, 1000) g;
                CREATE TABLE log (line text);
                """
            )
            # the benchmark's superuser in its own throwaway database (a server refuses it)
            wh = PostgresWarehouse("bench", url, allow_privileged_role=True, pool_size=2)
            detector = change_detector_for(wh, nobody, poll_interval_s=60, listen=False)

            def write(sql: str) -> Write:
                # A writer that disconnects flushes its statistics as it exits; wait until they
                # show, so the timed poll sees the change (a lingering idle writer's counters
                # show up to ~10 s later).
                async def run(i: int) -> None:
                    before = await writes_seen(db)
                    writer = await asyncpg.connect(url)
                    try:
                        await writer.execute(sql.format(i=i))
                    finally:
                        await writer.close()
                    async with asyncio.timeout(15):
                        while await writes_seen(db) == before:
                            await asyncio.sleep(0.01)

                return run

            try:
                out = await scenarios(detector, repeat, {
                    "insert": write(f"INSERT INTO orders VALUES ({rows} + 1 + {{i}}, 1, 1, DATE '2024-06-01', 'region1', 'new')"),
                    "update": write("UPDATE orders SET status = 'shipped-{i}' WHERE id = 1 + {i} * 7919"),
                })
                await detector.stop()
                out["trigger NOTIFY -> on_change"] = await notify_latency(wh, url, db, repeat, install_triggers)
            finally:
                await detector.stop()
                await wh.close()
        finally:
            await db.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    return out


async def writes_seen(db: Any) -> int:
    await db.execute("SELECT pg_stat_clear_snapshot()")
    return await db.fetchval(
        "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 'orders'"
    )


async def notify_latency(wh: Any, url: str, db: Any, repeat: int, install_triggers: Any) -> dict[str, float]:
    """Commit of a one-row INSERT by a writer -> ``on_change`` called, with the triggers."""
    await install_triggers(url, tables=["orders"])
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def on_change(tables: set[str]) -> None:
        arrived.put_nowait(time.perf_counter())

    detector = change_detector_for(wh, on_change, poll_interval_s=60, listen=True)
    await detector.start()
    try:
        detector.watch({"orders"})
        async with asyncio.timeout(10):
            while detector.method != "listen":
                await detector.poll_once()
                await asyncio.sleep(0.05)
        times = []
        for i in range(repeat):
            started = time.perf_counter()
            await db.execute("INSERT INTO orders (id, status) VALUES ($1, 'notify')", -1 - i)
            times.append((await asyncio.wait_for(arrived.get(), 10) - started) * 1000)
        return {"median_ms": statistics.median(times), "queries": 0, "reported": repeat, "polls": repeat}
    finally:
        await detector.stop()


# -- report -----------------------------------------------------------------------------------


def print_table(results: dict[str, dict[str, dict]], rows: int) -> None:
    print(f"\nOne change-detection poll, {rows:,}-row orders table + 1,000-row customers table, both watched")
    print(f"{'engine':<10} {'case':<30} {'median ms':>10} {'queries':>8} {'reported':>9}")
    for engine, cases in results.items():
        for case, figures in cases.items():
            reported = f"{figures['reported']}/{figures['polls']}"
            print(f"{engine:<10} {case:<30} {figures['median_ms']:>10.3f} {figures['queries']:>8g} {reported:>9}")
    print("\nreported: polls that reported a change. queries: statements per poll (the DuckDB file gate is none).")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the orders table")
    parser.add_argument("--repeat", type=int, default=15, help="polls per case (medians)")
    parser.add_argument("--only", default="duckdb,sqlite,postgres", help="engines, comma-separated")
    parser.add_argument("--pg", default=os.environ.get("LIVEBI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL superuser URL (a throwaway database is created and dropped)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    engines = [e.strip() for e in args.only.split(",") if e.strip()]
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="livebi-change-poll-") as tmp:
        for engine in engines:
            started = time.perf_counter()
            print(f"{engine}: generating {args.rows:,} rows and polling…", file=sys.stderr, flush=True)
            if engine == "duckdb":
                results[engine] = await bench_duckdb(Path(tmp), args.rows, args.repeat)
            elif engine == "sqlite":
                results[engine] = await bench_sqlite(Path(tmp), args.rows, args.repeat)
            elif engine == "postgres":
                try:
                    results[engine] = await bench_postgres(args.pg, args.rows, args.repeat)
                except OSError as exc:
                    print(f"postgres: skipped, cannot connect ({exc})", file=sys.stderr)
                    continue
            else:
                parser.error(f"unknown engine {engine!r}")
            print(f"{engine}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print_table(results, args.rows)
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "repeat": args.repeat, "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
