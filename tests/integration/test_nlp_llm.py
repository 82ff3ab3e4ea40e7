"""The LLM engine against a scripted chat-completions server on loopback (no real network).

Every reply the server can give is covered: good SQL, SQL in a code fence, invalid SQL then a
repaired one, a write statement, garbage, an HTTP 500 and a timeout. Questions go through the
real pipeline on a real SQLite file, so what is checked is what a user would get.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from livebi.agents.data import DataAgent
from livebi.agents.nlp import LLMEngine, NLPAgent
from livebi.pipeline import AskFailed, AskRequest, Pipeline
from livebi.warehouse.registry import open_warehouse

from .fake_llm import ChatServer, Raw, Sleep

TODAY = dt.date(2024, 6, 30)
GOOD = 'SELECT c.region, SUM(o.revenue) AS revenue FROM orders o JOIN customers c ON o.customer_id = c.customer_id GROUP BY c.region'
EXPECTED = {("Europe", 149.5), ("Asia", 250.5)}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, customer_name TEXT, region TEXT);
        CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                             order_date TEXT, revenue NUMERIC);
        INSERT INTO customers VALUES (1, 'Acme', 'Europe'), (2, 'Globex', 'Asia'), (3, 'Initech', 'Europe');
        INSERT INTO orders VALUES (1, 1, '2024-01-05', 100.0), (2, 2, '2024-02-10', 250.5),
                                  (3, 3, '2024-03-15', 40.0), (4, 1, '2024-03-20', 9.5);
    """)
    con.commit()
    con.close()
    return path


async def ask(db: Path, server: ChatServer, question: str, *, mode: str = "first", timeout: float = 5.0,
              api_key: str = "") -> tuple[dict, list[tuple[str, str]]]:
    wh = open_warehouse("shop", f"sqlite:///{db}")
    llm = LLMEngine(base_url=server.base_url, model="test-model", api_key=api_key, timeout_s=timeout)
    pipeline = Pipeline(warehouses={"shop": wh}, nlp=NLPAgent(today=TODAY, llm=llm, llm_mode=mode),
                        data=DataAgent(timeout_s=10, row_cap=1000))
    stages: list[tuple[str, str]] = []
    try:
        result = await pipeline.answer("q", AskRequest(question=question), lambda st, sub, *_: stages.append((st, sub)))
    finally:
        await wh.close()
    return result, stages


def by_region(result: dict) -> set:
    return {(r[0], round(r[1], 2)) for r in result["rows"]}


async def test_good_sql_is_validated_run_and_credited_to_the_llm(db: Path) -> None:
    with ChatServer(GOOD) as server:
        result, stages = await ask(db, server, "turnover per region", api_key="sk-test")
    assert result["engine"] == "llm" and by_region(result) == EXPECTED
    assert result["assumptions"] == []
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "test-model"
    assert request["headers"].get("Authorization") == "Bearer sk-test"
    prompt = server.prompt()
    # the prompt carries the semantic model: tables, types, keys, values, dialect and today
    for needle in ('table "orders"', '"customer_id" INTEGER -- -> "customers"."customer_id"', "'Europe'",
                   "sqlite", "2024-06-30", "turnover per region"):
        assert needle in prompt, needle
    subs = [sub for stage, sub in stages if stage == "nlp_processing"]
    assert subs.index("intent_extraction") < subs.index("schema_linking") < subs.index("llm_request") \
        < subs.index("sql_generation")
    assert [st for st, _ in stages].index("data_processing") > max(i for i, (st, _) in enumerate(stages)
                                                                   if st == "nlp_processing")


async def test_sql_in_a_code_fence_with_prose_around_it(db: Path) -> None:
    reply = f"Here you go:\n\n```sql\n{GOOD};\n```\n\nThis sums revenue per customer region. Hope it helps!"
    with ChatServer(reply) as server:
        result, _ = await ask(db, server, "revenue by region")
    assert result["engine"] == "llm" and by_region(result) == EXPECTED
    assert result["explanation"].startswith("Here you go: This sums revenue per customer region.")


async def test_invalid_sql_gets_one_repair_round(db: Path) -> None:
    bad = "SELECT c.regoin, SUM(o.revenue) FROM orders o JOIN customers c ON o.customer_id = c.customer_id GROUP BY 1"
    with ChatServer(f"```sql\n{bad}\n```", f"```sql\n{GOOD}\n```") as server:
        result, _ = await ask(db, server, "revenue by region")
    assert len(server.requests) == 2
    repair = server.requests[1]["body"]["messages"]
    assert repair[-2]["role"] == "assistant" and bad in repair[-2]["content"]
    assert "unknown column" in repair[-1]["content"] and "region" in repair[-1]["content"]  # did you mean
    assert result["engine"] == "llm" and by_region(result) == EXPECTED
    assert any("repaired" in a for a in result["assumptions"])


async def test_still_invalid_after_the_repair_falls_back_to_the_parser(db: Path) -> None:
    with ChatServer("SELECT nope FROM nowhere") as server:
        result, _ = await ask(db, server, "revenue by region")
    assert len(server.requests) == 2  # one repair round, no more
    assert result["engine"] == "parser" and by_region(result) == EXPECTED
    assert result["assumptions"][0].startswith("The LLM endpoint failed (still invalid after a repair: unknown table")
    assert result["assumptions"][0].endswith("answered by the offline parser")


@pytest.mark.parametrize("reply", [
    "DROP TABLE orders",
    "```sql\nDELETE FROM orders WHERE 1=1\n```",
    "SELECT 1; DROP TABLE customers",
    "```sql\nWITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone\n```",
    "NO_SQL",
])
async def test_a_write_statement_is_refused_at_once_and_the_parser_answers(db: Path, reply: str) -> None:
    with ChatServer(reply) as server:
        result, _ = await ask(db, server, "revenue by region")
    assert len(server.requests) == 1  # no repair round for a write: the model is not trusted twice
    assert result["engine"] == "parser" and result["sql"].upper().startswith("SELECT")
    assert "The LLM endpoint failed (" in result["assumptions"][0]
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM orders").fetchone() == (4,)
    assert con.execute("SELECT COUNT(*) FROM customers").fetchone() == (3,)


@pytest.mark.parametrize("script, reason", [
    (["I like turtles"], "still invalid after a repair: no SQL in the reply"),
    ([500], "HTTP 500"),
    ([Raw("this is not json")], "malformed reply"),
    ([Raw('{"choices": []}')], "malformed reply"),
    ([Sleep(3.0)], "timeout"),
])
async def test_endpoint_failures_fall_back_to_the_parser_and_say_why(db: Path, script: list, reason: str) -> None:
    with ChatServer(*script) as server:
        # Only the timeout case needs a short timeout; the others get slack for a loaded machine.
        result, _ = await ask(db, server, "revenue by region", timeout=0.5 if reason == "timeout" else 5.0)
    assert result["engine"] == "parser" and by_region(result) == EXPECTED
    assert result["assumptions"][0] == f"The LLM endpoint failed ({reason}); answered by the offline parser"


async def test_unreachable_endpoint_falls_back(db: Path) -> None:
    with ChatServer(GOOD) as server:
        url = server.base_url
    wh = open_warehouse("shop", f"sqlite:///{db}")
    nlp = NLPAgent(today=TODAY, llm=LLMEngine(base_url=url, model="m", timeout_s=2), llm_mode="first")
    pipeline = Pipeline(warehouses={"shop": wh}, nlp=nlp, data=DataAgent(timeout_s=10, row_cap=100))
    try:
        result = await pipeline.answer("q", AskRequest(question="revenue by region"), lambda *a: None)
    finally:
        await wh.close()
    assert result["engine"] == "parser" and "unreachable" in result["assumptions"][0]


async def test_fallback_mode_asks_the_llm_only_when_the_parser_cannot(db: Path) -> None:
    with ChatServer(GOOD) as server:
        result, _ = await ask(db, server, "revenue by region", mode="fallback")
        assert result["engine"] == "parser" and server.requests == []
        result, _ = await ask(db, server, "purple monkey dishwasher", mode="fallback")
    assert result["engine"] == "llm" and by_region(result) == EXPECTED
    assert result["assumptions"][0] == "The offline parser could not read this question; answered by the LLM"


async def test_fallback_mode_prefers_the_llm_when_the_parser_ignored_words(db: Path) -> None:
    with ChatServer(GOOD) as server:
        result, _ = await ask(db, server, "revenue by region for loyal customers", mode="fallback")
    assert result["engine"] == "llm" and '"loyal"' in result["assumptions"][0]


async def test_when_both_engines_fail_the_error_says_so(db: Path) -> None:
    with ChatServer(500) as server:
        with pytest.raises(AskFailed) as info:
            await ask(db, server, "purple monkey dishwasher", mode="fallback")
    assert info.value.code == "not_understood" and "HTTP 500" in info.value.message
    assert info.value.suggestions  # example questions for this schema


async def test_empty_overlong_and_write_questions_never_reach_the_llm(db: Path) -> None:
    with ChatServer(GOOD) as server:
        for question, code in (("   ", "empty_question"), ("revenue " * 200, "question_too_long"),
                               ("delete all orders", "not_understood"), ("x; DROP TABLE orders", "not_understood")):
            with pytest.raises(AskFailed) as info:
                await ask(db, server, question)
            assert info.value.code == code
    assert server.requests == []
