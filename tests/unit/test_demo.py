"""The generated demo warehouse: deterministic, the right size, consistent keys, a real story."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from livebi.demo.generate import ensure_demo, generate_demo

AGGREGATES = """
SELECT (SELECT count(*) FROM orders), (SELECT sum(revenue) FROM orders), (SELECT sum(cost) FROM orders),
       (SELECT sum(quantity) FROM orders), (SELECT string_agg(DISTINCT channel, ',' ORDER BY channel) FROM orders),
       (SELECT sum(hash(customer_name, city, signup_date)) FROM customers),
       (SELECT sum(hash(product_name, unit_price)) FROM products),
       (SELECT sum(budget_amount) + sum(actual_amount) FROM budget),
       (SELECT sum(amount) FROM cash_flow), (SELECT count(*) FROM cash_flow)
"""


def query(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "c.duckdb"
    generate_demo(a, rows=3000)
    generate_demo(b, rows=3000)
    generate_demo(c, rows=3000, seed=7)
    assert query(a, AGGREGATES) == query(b, AGGREGATES)
    assert query(a, "SELECT * FROM orders ORDER BY order_id LIMIT 50") == query(
        b, "SELECT * FROM orders ORDER BY order_id LIMIT 50"
    )
    assert query(a, AGGREGATES) != query(c, AGGREGATES)


def test_tables_and_sizes(demo_duckdb: Path) -> None:
    tables = {r[0] for r in query(demo_duckdb, "SELECT table_name FROM duckdb_tables()")}
    assert tables == {"customers", "products", "orders", "budget", "cash_flow"}
    counts = query(
        demo_duckdb,
        "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM customers), (SELECT count(*) FROM products), "
        "(SELECT count(*) FROM budget), (SELECT count(*) FROM cash_flow)",
    )[0]
    assert counts[0] == 20_000
    assert counts[1] == 200  # rows / 100, at least 200
    assert counts[2] == 200
    assert counts[3] == 60 * 5 * 5  # months x departments x regions
    assert counts[4] > 60 * 5


def test_keys_are_declared_and_hold(demo_duckdb: Path) -> None:
    constraints = set(
        query(
            demo_duckdb,
            "SELECT table_name, constraint_type, referenced_table FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')",
        )
    )
    assert ("orders", "FOREIGN KEY", "customers") in constraints
    assert ("orders", "FOREIGN KEY", "products") in constraints
    assert {("customers", "PRIMARY KEY", None), ("products", "PRIMARY KEY", None)} <= constraints
    orphans = query(
        demo_duckdb,
        "SELECT count(*) FROM orders o LEFT JOIN customers c USING (customer_id) "
        "LEFT JOIN products p USING (product_id) WHERE c.customer_id IS NULL OR p.product_id IS NULL",
    )
    assert orphans == [(0,)]
    # customers only order after they signed up
    assert query(
        demo_duckdb,
        "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE o.order_date < c.signup_date",
    ) == [(0,)]


def test_values_are_in_their_domains(demo_duckdb: Path) -> None:
    row = query(
        demo_duckdb,
        """
        SELECT min(order_date), max(order_date),
               count(*) FILTER (WHERE abs(revenue - round(quantity * unit_price * (1 - discount), 2)) > 0.011),
               min(quantity), bool_and(discount BETWEEN 0 AND 0.5),
               list_sort(list(DISTINCT status)), list_sort(list(DISTINCT channel))
        FROM orders
        """,
    )[0]
    assert str(row[0]) >= "2021-01-01" and str(row[1]) <= "2025-12-31"
    assert row[2] == 0  # revenue = quantity * unit_price * (1 - discount)
    assert row[3] >= 1 and row[4]
    assert row[5] == ["cancelled", "completed", "returned"]
    assert row[6] == ["Direct Sales", "Online", "Partner", "Retail"]
    regions = {r[0] for r in query(demo_duckdb, "SELECT DISTINCT region FROM customers")}
    assert regions == {"North America", "Europe", "Asia Pacific", "Latin America", "Middle East & Africa"}
    # a country always lies in the same region
    assert query(demo_duckdb, "SELECT count(*) FROM (SELECT country FROM customers GROUP BY 1 HAVING count(DISTINCT region) > 1)") == [(0,)]
    segments = {r[0] for r in query(demo_duckdb, "SELECT DISTINCT segment FROM customers")}
    assert segments == {"Consumer", "Corporate", "Small Business", "Enterprise"}
    categories = {r[0] for r in query(demo_duckdb, "SELECT DISTINCT category FROM products")}
    assert {"Electronics", "Furniture", "Office Supplies", "Software", "Services"} == categories
    assert query(demo_duckdb, "SELECT count(DISTINCT product_name) = count(*), bool_and(unit_cost < unit_price) FROM products") == [(True, True)]
    months = query(demo_duckdb, "SELECT count(DISTINCT month), bool_and(day(month) = 1) FROM budget")
    assert months == [(60, True)]
    assert {r[0] for r in query(demo_duckdb, "SELECT DISTINCT category FROM cash_flow")} == {"Operating", "Investing", "Financing"}


def test_the_data_tells_a_story(demo_duckdb: Path) -> None:
    by_year = dict(query(demo_duckdb, "SELECT year(order_date), sum(revenue) FROM orders GROUP BY 1"))
    assert all(by_year[y + 1] > by_year[y] for y in range(2021, 2025))  # growth
    by_quarter = dict(query(demo_duckdb, "SELECT quarter(order_date), count(*) FROM orders GROUP BY 1"))
    assert by_quarter[4] == max(by_quarter.values())  # Q4 peak
    by_region = query(
        demo_duckdb,
        "SELECT region, count(*) FROM orders JOIN customers USING (customer_id) GROUP BY 1 ORDER BY 2 DESC",
    )
    assert by_region[0][0] == "North America" and by_region[0][1] > 3 * by_region[-1][1]  # uneven
    status = dict(query(demo_duckdb, "SELECT status, count(*) FROM orders GROUP BY 1"))
    assert status["completed"] > 0.85 * sum(status.values())


def test_generation_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "demo.duckdb"
    generate_demo(path, rows=500)
    generate_demo(path, rows=700)  # replaces the existing file
    assert query(path, "SELECT count(*) FROM orders") == [(700,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.duckdb"]  # no temp files left


def test_ensure_demo_generates_only_when_needed(tmp_path: Path) -> None:
    path = ensure_demo(tmp_path, rows=400)
    assert path == tmp_path / "demo.duckdb"
    meta = json.loads((tmp_path / "demo.duckdb.json").read_text())
    assert meta["rows"] == 400
    stamp = path.stat().st_mtime_ns
    assert ensure_demo(tmp_path, rows=400) == path
    assert path.stat().st_mtime_ns == stamp  # reused
    ensure_demo(tmp_path, rows=600)  # other row count: regenerated
    assert query(path, "SELECT count(*) FROM orders") == [(600,)]


def test_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_demo(tmp_path / "x.duckdb", rows=0)
