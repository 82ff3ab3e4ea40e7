"""Ingest latency (not part of the test suite): how long one insert takes, by engine and size.

    .venv/bin/python benchmarks/ingest.py                    # DuckDB demo (1M orders) and SQLite
    .venv/bin/python benchmarks/ingest.py --rows 200000 --repeat 50

For each engine, :meth:`IngestService.insert` (validation in a worker thread, one transaction,
the change signal) is timed for batches of 1, 100 and 10 000 orders into the demo's ``orders``
table: median and p95 over ``--repeat`` inserts (fewer for the big batch), and rows per second.
The DuckDB warehouse is the generated demo opened read-write; the SQLite one is a copy of its
``orders`` (and the two tables it references) in a file, written through ingest's own connection.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from livebi.demo.generate import DEMO_TODAY, generate_demo
from livebi.demo.live import OrderSimulator
from livebi.live.ingest import IngestService
from livebi.warehouse.registry import open_warehouse


def _sqlite_copy(duck_path: Path, path: Path) -> None:
    con = duckdb.connect(str(duck_path), read_only=True)
    try:
        tables = {name: con.execute(f"SELECT * FROM {name}").fetchall() for name in ("customers", "products", "orders")}
    finally:
        con.close()
    lite = sqlite3.connect(path)
    lite.executescript(
        """
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, customer_name TEXT NOT NULL, segment TEXT NOT NULL,
            country TEXT NOT NULL, region TEXT NOT NULL, city TEXT NOT NULL, signup_date DATE NOT NULL);
        CREATE TABLE products (product_id INTEGER PRIMARY KEY, product_name TEXT NOT NULL, category TEXT NOT NULL,
            subcategory TEXT NOT NULL, unit_price NUMERIC(12,2) NOT NULL, unit_cost NUMERIC(12,2) NOT NULL);
        CREATE TABLE orders (order_id INTEGER PRIMARY KEY, order_date DATE NOT NULL,
            customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
            product_id INTEGER NOT NULL REFERENCES products (product_id), quantity INTEGER NOT NULL,
            unit_price NUMERIC(12,2) NOT NULL, discount REAL NOT NULL, revenue NUMERIC(14,2) NOT NULL,
            cost NUMERIC(14,2) NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL, created_at TIMESTAMP);
        """
    )
    for name, rows in tables.items():
        marks = ", ".join("?" for _ in rows[0])
        lite.executemany(f"INSERT INTO {name} VALUES ({marks})",
                         [tuple(float(v) if hasattr(v, "as_tuple") else (v.isoformat() if isinstance(v, dt.date) else v)
                                for v in row) for row in rows])
    lite.commit()
    lite.close()


async def _measure(name: str, url: str, repeat: int) -> None:
    read_only = not url.startswith("duckdb")
    wh = open_warehouse(name, url, read_only=read_only)
    changes: list[set[str]] = []

    async def on_change(_warehouse: str, tables: set[str]) -> None:
        changes.append(tables)

    service = IngestService({name: wh}, {name: []}, on_change)
    simulator = OrderSimulator(service, name, rate=1, today=DEMO_TODAY, seed=1)
    try:
        assert await simulator._load()
        print(f"\n== {name} ({wh.dialect})")
        for size, times in ((1, repeat), (100, repeat), (10_000, max(3, repeat // 10))):
            seconds = []
            for _ in range(times):
                rows = simulator.orders(size)
                started = time.perf_counter()
                await service.insert(None, name, "orders", rows)
                seconds.append(time.perf_counter() - started)
            seconds.sort()
            p50, p95 = statistics.median(seconds), seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))]
            print(f"   {size:>6} rows/insert: p50 {p50 * 1000:8.1f} ms, p95 {p95 * 1000:8.1f} ms, "
                  f"{size / p50:>10,.0f} rows/s ({times} inserts)")
        print(f"   change signals: {len(changes)} (one per insert)")
    finally:
        await service.close()
        await wh.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders in the generated demo warehouse")
    parser.add_argument("--repeat", type=int, default=30, help="inserts per batch size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="livebi-ingest-") as tmp:
        duck = Path(tmp) / "demo.duckdb"
        started = time.perf_counter()
        generate_demo(duck, rows=args.rows)
        lite = Path(tmp) / "demo.sqlite"
        _sqlite_copy(duck, lite)
        print(f"generated the demo ({args.rows:,} orders) and its SQLite copy in {time.perf_counter() - started:.1f} s")
        await _measure("duckdb", f"duckdb:///{duck}", args.repeat)
        await _measure("sqlite", f"sqlite:///{lite}", args.repeat)


if __name__ == "__main__":
    asyncio.run(main())
