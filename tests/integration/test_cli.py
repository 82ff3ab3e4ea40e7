"""``livebi ask`` answers without a server on DuckDB, SQLite and PostgreSQL; ``livebi user``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

QUESTIONS = ["how many customers", "total revenue by region", "purple monkey dishwasher"]


def livebi(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "livebi.cli", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def answers(proc: subprocess.CompletedProcess) -> list[dict]:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def check_answers(out: list[dict], expected_customers: int, expected_regions: dict[str, float]) -> None:
    assert [o["question"] for o in out] == QUESTIONS
    count, by_region, nonsense = out
    assert count["rows"] == [[expected_customers]], count
    assert set(count) >= {"question", "sql", "columns", "rows", "row_count", "chart", "timings_ms"}
    got = {r[0]: r[1] for r in by_region["rows"]}
    assert got.keys() == expected_regions.keys()
    for k, v in expected_regions.items():
        assert got[k] == pytest.approx(v)
    assert by_region["chart"]["type"] in ("bar", "column", "pie")
    err = nonsense["error"]
    assert err["stage"] == "nlp_processing" and err["code"] == "not_understood" and err["suggestions"]


SMALL_SCHEMA = [
    "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, customer_name TEXT, region TEXT)",
    "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id), "
    "order_date DATE, revenue NUMERIC(12,2))",
]
CUSTOMERS = [(1, "Acme", "Europe"), (2, "Globex", "Asia"), (3, "Initech", "Europe")]
ORDERS = [(1, 1, "2024-01-05", 100.0), (2, 2, "2024-02-10", 250.5), (3, 3, "2024-03-15", 40.0), (4, 1, "2024-03-20", 9.5)]
SMALL_EXPECTED = {"Europe": 149.5, "Asia": 250.5}


def test_ask_json_on_duckdb_demo(demo_duckdb: Path) -> None:
    import duckdb

    proc = livebi("ask", *QUESTIONS, "--warehouse", f"duckdb:///{demo_duckdb}", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(demo_duckdb), read_only=True)
    customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
    regions = dict(con.execute(
        "SELECT c.region, sum(o.revenue)::DOUBLE FROM orders o JOIN customers c USING (customer_id) GROUP BY 1"
    ).fetchall())
    con.close()
    check_answers(answers(proc), customers, regions)


def test_ask_json_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "small.sqlite"
    con = sqlite3.connect(db)
    for ddl in SMALL_SCHEMA:
        con.execute(ddl)
    con.executemany("INSERT INTO customers VALUES (?,?,?)", CUSTOMERS)
    con.executemany("INSERT INTO orders VALUES (?,?,?,?)", ORDERS)
    con.commit()
    con.close()
    proc = livebi("ask", *QUESTIONS, "--warehouse", f"sqlite:///{db}", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    check_answers(answers(proc), 3, SMALL_EXPECTED)


async def test_ask_json_on_postgres(pg_readonly) -> None:
    admin, schema = pg_readonly.admin, pg_readonly.schema
    await admin.execute(f"SET search_path TO {schema}")
    for ddl in SMALL_SCHEMA:
        await admin.execute(ddl)
    await admin.executemany("INSERT INTO customers VALUES ($1,$2,$3)", CUSTOMERS)
    await admin.executemany(
        "INSERT INTO orders VALUES ($1,$2,$3::text::date,$4)", [(a, b, c, d) for a, b, c, d in ORDERS]
    )
    proc = livebi("ask", *QUESTIONS, "--warehouse", pg_readonly.dsn, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    check_answers(answers(proc), 3, SMALL_EXPECTED)


def test_ask_table_format_and_sql_mode(demo_duckdb: Path) -> None:
    proc = livebi("ask", "--warehouse", f"duckdb:///{demo_duckdb}", "--sql", "SELECT segment, count(*) AS n FROM customers GROUP BY 1")
    assert proc.returncode == 0, proc.stderr
    assert "segment" in proc.stdout and "4 rows" in proc.stdout
    bad = livebi("ask", "--warehouse", f"duckdb:///{demo_duckdb}", "--sql", "--format", "json", "DROP TABLE orders")
    assert bad.returncode == 1
    assert answers(bad)[0]["error"]["code"] in ("forbidden_sql", "invalid_sql")


def test_user_add_list_remove_and_login(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'meta.db'}"
    assert livebi("user", "add", "carol", "--password", "pw1", "--store", store).returncode == 0
    assert "password updated" in livebi("user", "add", "carol", "--password", "pw2", "--store", store).stdout
    listed = livebi("user", "list", "--store", store)
    assert listed.stdout.startswith("carol\t")
    assert livebi("user", "remove", "carol", "--store", store).returncode == 0
    assert livebi("user", "remove", "carol", "--store", store).returncode == 1
