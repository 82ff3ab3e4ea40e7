"""Nonsense, empty, very long and hostile questions through the whole pipeline.

Whatever the question, the answer is a clear error (with a protocol code and the stage) or a
result whose SQL is one read-only SELECT; nothing crashes, nothing writes. Checked on the demo
warehouse (DuckDB) and on Northwind (SQLite), whose row counts must be unchanged afterwards.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from livebi.agents.data import DataAgent
from livebi.agents.nlp import NLPAgent
from livebi.pipeline import AskFailed, AskRequest, Pipeline
from livebi.protocol import ErrorCode
from livebi.warehouse.registry import open_warehouse

HOSTILE = [
    "",
    "   \n\t  ",
    "?",
    "!!!???...",
    "\x00\x01\x02",
    "🙂🙂🙂",
    "purple monkey dishwasher",
    "asdkjh qwe zxcmnb",
    "the the the the",
    "a" * 5000,
    "revenue " * 80,  # 640 characters: over the limit
    ("total revenue by region and by month and " * 11)[:495],  # long but allowed
    "; drop table orders",
    "revenue by region; DROP TABLE customers; --",
    "Robert'); DROP TABLE Students;--",
    "' OR 1=1 --",
    "\" OR \"\"=\"",
    "customers named 'x'; DELETE FROM customers; --'",
    "delete all customers",
    "update orders set revenue = 0",
    "insert into orders values (1)",
    "drop table orders",
    "SELECT * FROM orders",
    "select * from customers; drop table customers",
    "' UNION SELECT password FROM users --",
    "attach database '/tmp/evil.db' as evil",
    "COPY orders TO '/tmp/out.csv'",
    "read_csv('/etc/passwd')",
    "pragma table_info(orders)",
    "show me sqlite_master",
    "revenue in 'Europe''; drop table orders; --'",
    "how many customers; vacuum",
    "orders where 1=1",
    "top -5 customers",
    "top 99999999999999999999 customers",
    "revenue over 1e309",
    "revenue between 2030 and 2020",
    "revenue in Q9 2024",
    "revenue in 13/45/2024",
    "revenue last 100000 years",
    "customers from <script>alert(1)</script>",
    "%s %d {0} ${HOME} $(rm -rf /)",
    "by by by by",
    "top top top",
    "how many how many",
    "sum of sum of sum",
    "ßüñ∂ƒ ∑ revenue ∞",
]
ERROR_CODES = {c.value for c in ErrorCode}


def safe_select(sql: str, dialect: str) -> bool:
    statements = sqlglot.parse(sql, read=dialect)
    return len(statements) == 1 and isinstance(statements[0], exp.Select) and not any(
        isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Drop, exp.Create, exp.Command))
        for node in statements[0].walk())


async def answer_all(url: str, dialect: str, today: dt.date) -> list[tuple[str, dict | AskFailed]]:
    wh = open_warehouse("w", url)
    pipeline = Pipeline(warehouses={"w": wh}, nlp=NLPAgent(today=today), data=DataAgent(timeout_s=30, row_cap=500))
    out: list[tuple[str, dict | AskFailed]] = []
    try:
        for question in HOSTILE:
            try:
                out.append((question, await pipeline.answer("q", AskRequest(question=question), lambda *a: None)))
            except AskFailed as failure:
                out.append((question, failure))
    finally:
        await wh.close()
    return out


def check(outcomes, dialect: str) -> None:
    for question, outcome in outcomes:
        if isinstance(outcome, AskFailed):
            assert outcome.code in ERROR_CODES and outcome.code != "internal", (question, outcome.code, outcome.message)
            assert outcome.message and outcome.stage.value in {"nlp_processing", "data_processing"}
            if outcome.code in {"not_understood", "empty_question", "question_too_long"}:
                assert outcome.suggestions, question  # example questions or "did you mean"
        else:
            assert safe_select(outcome["sql"], dialect), (question, outcome["sql"])
            assert outcome["engine"] == "parser"
    refused = {q for q, o in outcomes if isinstance(o, AskFailed) and "only reads data" in o.message}
    assert refused >= {"; drop table orders", "delete all customers", "update orders set revenue = 0",
                       "drop table orders", "revenue by region; DROP TABLE customers; --",
                       "select * from customers; drop table customers", "how many customers; vacuum"}
    by_code = {code: sum(isinstance(o, AskFailed) and o.code == code for _, o in outcomes)
               for code in ("empty_question", "question_too_long")}
    assert by_code == {"empty_question": 2, "question_too_long": 2}


def counts(con, tables) -> dict[str, int]:
    return {t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


async def test_hostile_questions_on_the_demo(demo_duckdb: Path, tmp_path: Path) -> None:
    import duckdb

    copy = tmp_path / "demo.duckdb"
    shutil.copy(demo_duckdb, copy)
    tables = ["customers", "products", "orders", "budget", "cash_flow"]
    with duckdb.connect(str(copy), read_only=True) as con:
        before = counts(con, tables)
    check(await answer_all(f"duckdb:///{copy}", "duckdb", dt.date(2025, 12, 31)), "duckdb")
    with duckdb.connect(str(copy), read_only=True) as con:
        assert counts(con, tables) == before
    assert not Path("/tmp/evil.db").exists() and not Path("/tmp/out.csv").exists()


async def test_hostile_questions_on_northwind(northwind_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "northwind.sqlite"
    shutil.copy(northwind_path, copy)
    tables = ["Order", "OrderDetail", "Customer", "Product", "Employee"]
    with sqlite3.connect(copy) as con:
        before = counts(con, tables)
    check(await answer_all(f"sqlite:///{copy}", "sqlite", dt.date(2014, 5, 6)), "sqlite")
    with sqlite3.connect(copy) as con:
        assert counts(con, tables) == before


@pytest.mark.parametrize("question", ["revenue by region; DROP TABLE customers; --", "' OR 1=1 --"])
async def test_sql_in_a_question_is_never_pasted_into_sql(demo_duckdb: Path, question: str) -> None:
    wh = open_warehouse("w", f"duckdb:///{demo_duckdb}")
    agent = NLPAgent(today=dt.date(2025, 12, 31))
    try:
        model = await agent.model_for(wh)
        try:
            parsed = agent.parse(question, model, dialect="duckdb")
        except Exception as exc:  # noqa: BLE001 - only NotUnderstood may escape
            assert type(exc).__name__ == "NotUnderstood"
            return
        assert "DROP" not in parsed.sql.upper() and "1=1" not in parsed.sql.replace(" ", "")
    finally:
        await wh.close()
