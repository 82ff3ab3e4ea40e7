"""The LLM engine's prompt (schema linking, sample values, foreign keys, examples), its refusal
of anything but one read-only SELECT, the repair round with the database's error message, and
the choice of the LLM on low-confidence parses, against the scripted chat-completions server
on loopback and a real SQLite file with many tables."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from livebi.agents.data import DataAgent
from livebi.agents.nlp import LLMEngine, NLPAgent
from livebi.pipeline import AskFailed, AskRequest, Pipeline
from livebi.protocol import ResultData
from livebi.warehouse.registry import open_warehouse

from .fake_llm import ChatServer

TODAY = dt.date(2024, 6, 30)
GOOD = ('SELECT c.region, SUM(o.revenue) AS revenue FROM orders o JOIN customers c '
        'ON o.customer_id = c.customer_id GROUP BY c.region')
EXPECTED = {("Europe", 149.5), ("Asia", 250.5)}
# passes validation (every table and column exists) but SQLite refuses it: "no such column: total"
WRONG_COLUMN = ('SELECT c.region, SUM(o.revenue) AS revenue FROM orders o JOIN customers c '
                'ON o.customer_id = c.customer_id GROUP BY c.region HAVING total > 0')
UNRELATED = ["hr_employees", "hr_departments", "payroll_runs", "support_tickets", "ticket_comments",
             "warehouse_bins", "stock_moves", "suppliers", "purchase_orders", "marketing_campaigns",
             "web_sessions", "page_views"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, customer_name TEXT, region TEXT);
        CREATE TABLE products (product_id INTEGER PRIMARY KEY, product_name TEXT, category TEXT);
        CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                             product_id INTEGER REFERENCES products(product_id), order_date TEXT, revenue NUMERIC);
        INSERT INTO customers VALUES (1, 'Acme', 'Europe'), (2, 'Globex', 'Asia'), (3, 'Initech', 'Europe');
        INSERT INTO products VALUES (1, 'Widget', 'Tools'), (2, 'Gadget', 'Toys');
        INSERT INTO orders VALUES (1, 1, 1, '2024-01-05', 100.0), (2, 2, 2, '2024-02-10', 250.5),
                                  (3, 3, 1, '2024-03-15', 40.0), (4, 1, 2, '2024-03-20', 9.5);
    """)
    for name in UNRELATED:  # a schema too big to send whole
        con.execute(f"CREATE TABLE {name} ({name}_id INTEGER PRIMARY KEY, title TEXT, status TEXT, "
                    "opened_on TEXT, owner_name TEXT, amount_due NUMERIC, notes TEXT)")
    con.commit()
    con.close()
    return path


async def ask(db: Path, server: ChatServer, question: str, *, mode: str = "first") -> dict:
    wh = open_warehouse("shop", f"sqlite:///{db}")
    llm = LLMEngine(base_url=server.base_url, model="test-model", timeout_s=5)
    pipeline = Pipeline(warehouses={"shop": wh}, nlp=NLPAgent(today=TODAY, llm=llm, llm_mode=mode),
                        data=DataAgent(timeout_s=10, row_cap=1000))
    try:
        return await pipeline.answer("q", AskRequest(question=question), lambda *a: None)
    finally:
        await wh.close()


def by_region(result: dict) -> set:
    return {(r[0], round(r[1], 2)) for r in result["rows"]}


def described(prompt: str) -> set[str]:
    return {name for name in ["customers", "products", "orders", *UNRELATED] if f'table "{name}"' in prompt}


async def test_the_prompt_describes_only_the_linked_tables_with_values_and_keys(db: Path) -> None:
    with ChatServer(GOOD) as server:
        result = await ask(db, server, "revenue by region")
    assert result["engine"] == "llm" and by_region(result) == EXPECTED
    prompt = server.prompt()
    assert described(prompt) == {"orders", "customers"}
    assert '"region" TEXT -- values: ' in prompt and "'Europe'" in prompt and "'Asia'" in prompt
    assert '"orders"."customer_id" = "customers"."customer_id"' in prompt  # the join, spelled out
    assert "Other tables" in prompt and '"hr_employees"' in prompt  # named, not described
    assert "Examples of questions on this database and their SQL" in prompt  # the parser's, for this schema


async def test_the_tables_joining_linked_tables_are_described_too(db: Path) -> None:
    with ChatServer(GOOD) as server:
        await ask(db, server, "number of customers per product category")
    prompt = server.prompt()
    assert described(prompt) == {"customers", "products", "orders"}  # orders joins the two
    assert '"orders"."product_id" = "products"."product_id"' in prompt


async def test_a_linked_column_outside_the_value_index_gets_sample_values(db: Path) -> None:
    with ChatServer(GOOD) as server:
        await ask(db, server, "revenue by order date")
    prompt = server.prompt()
    line = next(ln for ln in prompt.splitlines() if ln.strip().startswith('"order_date"'))
    assert "e.g. '2024-01-05'" in line  # how dates are written in this database


@pytest.mark.parametrize("reply", [
    "COPY orders TO '/tmp/livebi-copy.csv'",
    "```sql\nATTACH DATABASE '{attached}' AS evil\n```",
    "SELECT 1; SELECT 2",
    "```sql\nSELECT * FROM orders;\nDELETE FROM orders\n```",
    "SELECT * FROM orders; DROP TABLE customers",
    "```sql\nWITH x AS (UPDATE orders SET revenue = 0 RETURNING *) SELECT * FROM x\n```",
    "INSERT INTO orders SELECT * FROM orders",
    "UPDATE orders SET revenue = 0",
    "PRAGMA writable_schema = 1",
])
async def test_writes_and_several_statements_are_refused_and_never_run(db: Path, tmp_path: Path, reply: str) -> None:
    attached = tmp_path / "evil.db"
    with ChatServer(reply.replace("{attached}", str(attached))) as server:
        result = await ask(db, server, "revenue by region")
    assert len(server.requests) == 1  # refused at once: no repair round
    assert result["engine"] == "parser" and by_region(result) == EXPECTED
    assert result["assumptions"][0].startswith("The LLM endpoint failed (")
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), SUM(revenue) FROM orders").fetchone() == (4, 400.0)
    assert con.execute("SELECT COUNT(*) FROM customers").fetchone() == (3,)
    assert not attached.exists()


async def test_a_database_error_goes_back_to_the_llm_for_one_repair(db: Path) -> None:
    with ChatServer(f"```sql\n{WRONG_COLUMN}\n```", f"```sql\n{GOOD}\n```") as server:
        result = await ask(db, server, "revenue by region")
    assert len(server.requests) == 2
    repair = server.requests[1]["body"]["messages"]
    assert repair[-2]["role"] == "assistant" and "HAVING total > 0" in repair[-2]["content"]
    assert "no such column: total" in repair[-1]["content"]
    assert 'table "orders"' in repair[1]["content"]  # the same prompt as the first attempt
    assert result["engine"] == "llm" and by_region(result) == EXPECTED
    assert "HAVING" not in result["sql"]
    assert any("failed on the database" in a and "repaired" in a for a in result["assumptions"])


async def test_a_repair_that_writes_is_refused_and_the_parser_answers(db: Path) -> None:
    with ChatServer(WRONG_COLUMN, "DELETE FROM orders") as server:
        result = await ask(db, server, "revenue by region")
    assert len(server.requests) == 2
    assert result["engine"] == "parser" and by_region(result) == EXPECTED
    assert "failed on the database" in result["assumptions"][0]
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM orders").fetchone() == (4,)


async def test_a_repair_that_fails_again_is_the_last_attempt(db: Path) -> None:
    with ChatServer(WRONG_COLUMN) as server:  # the same broken query twice
        with pytest.raises(AskFailed) as info:
            await ask(db, server, "count of orders, then some", mode="first")
    assert len(server.requests) == 2  # one repair round, no more
    assert info.value.code == "query_failed" and "no such column: total" in info.value.message


async def test_a_confident_parse_never_asks_the_llm(db: Path) -> None:
    with ChatServer(GOOD) as server:
        result = await ask(db, server, "revenue by region", mode="fallback")
    assert server.requests == []
    assert result["engine"] == "parser" and result["confidence"] >= 0.9 and result["low_confidence"] is False
    ResultData.model_validate(result)  # the documented shape of a result publication


async def test_a_low_confidence_parse_goes_to_the_llm_and_says_why(db: Path) -> None:
    # "without" is understood as a negation (no word is ignored), but the query excludes nothing
    with ChatServer(GOOD) as server:
        result = await ask(db, server, "revenue by region without products", mode="fallback")
    assert len(server.requests) == 1
    assert result["engine"] == "llm" and by_region(result) == EXPECTED
    assert result["assumptions"][0].startswith("The offline parser was unsure (")
    assert result["low_confidence"] is True and result["confidence"] < 0.6
    assert result["confidence_reasons"][0] == "written by the LLM: the parser was unsure"
    assert ResultData.model_validate(result).low_confidence is True


async def test_when_the_llm_fails_the_low_confidence_parse_stands(db: Path) -> None:
    with ChatServer(500) as server:
        result = await ask(db, server, "revenue by region without products", mode="fallback")
    assert result["engine"] == "parser" and result["low_confidence"] is True
    assert result["assumptions"][0] == "The LLM endpoint failed (HTTP 500); answered by the offline parser"
