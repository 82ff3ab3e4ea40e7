"""Hostile SQL against real engines: validation must refuse it before anything runs.

Each engine gets a throwaway database with an exposed schema and a second, hidden schema holding
a same-named table with a secret. Every attack goes through the product path (``DataAgent``:
validate, then run); the test asserts it was refused with a clear code and that the secret never
came back. A few attacks are also run straight on the engine, bypassing validation, to prove they
are real (the PostgreSQL user is a superuser here): if validation let them through, they would
work.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import duckdb
import pytest
import yaml

from livebi.agents.data import DataAgent
from livebi.agents.nlp import LLMEngine, NLPAgent, NotUnderstood
from livebi.pipeline import AskFailed, AskRequest, Pipeline
from livebi.warehouse.base import WarehouseError
from livebi.warehouse.registry import open_warehouse
from livebi.warehouse.safety import UnsafeSQL, validate_select

from .fake_llm import ChatServer

REFUSED = ("forbidden_sql", "unknown_table", "invalid_sql")
AGENT = DataAgent(timeout_s=10, row_cap=1000)


async def attempt(wh, sql: str) -> str:
    """Validate and run ``sql`` as the pipeline would; return the refusal code (or fail)."""
    try:
        checked = await AGENT.validate(sql, wh)
    except UnsafeSQL as exc:
        assert exc.code in REFUSED, (sql, exc.code, exc.message)
        assert exc.message
        return exc.code
    result = await AGENT.run(checked, wh, lambda *a: None)
    pytest.fail(f"hostile SQL ran: {sql!r} -> {checked!r} -> {result.rows[:3]!r}")


async def rows(wh, sql: str) -> list[list]:
    result = await AGENT.run(await AGENT.validate(sql, wh), wh, lambda *a: None)
    return result.rows


def _with_hiding_places(call: str) -> list[str]:
    return [
        f"SELECT {call}",
        f"WITH x AS (SELECT {call} AS v) SELECT v FROM x",
        f"SELECT * FROM (SELECT {call} AS v) s",
        f"SELECT id FROM sales ORDER BY {call}",
        f"SELECT sum(amount) OVER (ORDER BY id ROWS BETWEEN {call} PRECEDING AND CURRENT ROW) FROM sales",
        f"SELECT * FROM sales s, LATERAL (SELECT {call} AS v) l",
        f"SELECT * FROM (VALUES ({call})) v(x)",
        f"SELECT id FROM sales WHERE id IN (SELECT {call})",
    ]


# --------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture
async def pg(pg_dsn: str):
    exposed, hidden, token = (f"lb_{secrets.token_hex(4)}", f"lb_{secrets.token_hex(4)}", secrets.token_hex(6))
    secret = f"SECRET-{token}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"""
        CREATE SCHEMA {exposed};
        CREATE SCHEMA {hidden};
        CREATE TABLE {exposed}.sales (id int PRIMARY KEY, amount numeric, note text);
        INSERT INTO {exposed}.sales VALUES (1, 10, 'visible'), (2, 20, 'visible');
        CREATE INDEX {exposed}_brin ON {exposed}.sales USING brin (amount);
        CREATE INDEX {exposed}_gin ON {exposed}.sales USING gin (to_tsvector('simple', note)) WITH (fastupdate = on);
        CREATE SEQUENCE {exposed}.seq;
        CREATE TABLE {hidden}.sales (id int, amount numeric, note text);
        INSERT INTO {hidden}.sales VALUES (1, 999, '{secret}');
    """)
    # A superuser on purpose: these attacks must be stopped by validation alone (the engine's
    # own lockdown refuses such a role in a real deployment; tests/integration/test_engine_limits.py).
    wh = open_warehouse("pg", pg_dsn, schemas=[exposed], allow_privileged_role=True)
    try:
        yield SimpleNamespace(wh=wh, admin=admin, exposed=exposed, hidden=hidden, secret=secret, dsn=pg_dsn)
    finally:
        await wh.close()
        await admin.execute(f"DROP SCHEMA {exposed} CASCADE; DROP SCHEMA {hidden} CASCADE")
        await admin.close()


def _pg_attacks(e: str, h: str) -> list[str]:
    steal = f"'SELECT note FROM {h}.sales'"
    calls = [
        f"query_to_xml({steal}, true, true, '')",
        f"query_to_xml_and_xmlschema({steal}, true, true, '')",
        f"table_to_xml('{h}.sales', true, true, '')",
        "cursor_to_xml('c', 1, true, true, '')",
        "database_to_xml(true, true, '')",
        f"schema_to_xml('{h}', true, true, '')",
        f"xpath('//note/text()', query_to_xml({steal}, true, true, ''))",
        "lo_from_bytea(0, 'x')",
        "lo_import('/etc/hostname')",
        "lo_export(1, '/tmp/livebi-lo')",
        "pg_read_file('/etc/hostname')",
        "pg_stat_file('/etc/hostname')",
        f"brin_summarize_new_values('{e}.{e}_brin')",
        f"gin_clean_pending_list('{e}.{e}_gin')",
        "pg_cancel_backend(pg_backend_pid())",
        "pg_terminate_backend(pg_backend_pid())",
        "pg_advisory_lock(42)",
        "set_config('search_path', 'pg_catalog', false)",
        "current_setting('data_directory')",
        f"nextval('{e}.seq')",
        f"setval('{e}.seq', 100)",
        "txid_current()",
        "pg_notify('c', 'x')",
        "dblink('dbname=test', 'select 1')",
        f"ts_stat('SELECT to_tsvector(note) FROM {h}.sales')",
        "(pg_stat_get_activity(NULL)).query",
        "current_query()",
        f"pg_catalog.query_to_xml({steal}, true, true, '')",
        f'"query_to_xml"({steal}, true, true, \'\')',
        f"Query_To_XML({steal}, true, true, '')",
    ]
    statements = [f"SELECT {c}" for c in calls]
    statements += _with_hiding_places(f"query_to_xml({steal}, true, true, '')")
    statements += [
        "SELECT * FROM pg_ls_dir('.') AS f",
        "SELECT * FROM dblink('dbname=test', 'select 1') AS t(a int)",
        f"SELECT * FROM {h}.sales",
        f"SELECT * FROM test.{h}.sales",
        f'SELECT * FROM "{h}"."sales"',
        f"SELECT s.note FROM sales s JOIN {h}.sales x ON x.id = s.id",
        f"SELECT note FROM {e}.sales UNION ALL SELECT note FROM {h}.sales",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT * FROM pg_stat_activity",
        "SELECT * FROM information_schema.tables",
        f"SELECT * FROM otherdb.{e}.sales",
    ]
    return statements


async def test_postgres_attacks_are_refused_and_nothing_leaks_or_changes(pg) -> None:
    # The attacks are real: straight on the engine (a superuser), the first reads the hidden schema.
    leaked = await pg.admin.fetchval(f"SELECT query_to_xml('SELECT note FROM {pg.hidden}.sales', true, true, '')::text")
    assert pg.secret in leaked
    objects_before = await pg.admin.fetchval("SELECT count(*) FROM pg_largeobject_metadata")
    for sql in _pg_attacks(pg.exposed, pg.hidden):
        await attempt(pg.wh, sql)
    assert await pg.admin.fetchval("SELECT count(*) FROM pg_largeobject_metadata") == objects_before
    assert await pg.admin.fetchval(f"SELECT last_value FROM {pg.exposed}.seq") == 1  # nextval/setval never ran
    assert await pg.admin.fetchval(f"SELECT is_called FROM {pg.exposed}.seq") is False


async def test_postgres_exposed_tables_resolve_and_run(pg) -> None:
    assert await rows(pg.wh, "SELECT sum(amount) FROM sales") == [[30.0]]
    assert await rows(pg.wh, f"SELECT sum(amount) FROM {pg.exposed}.sales") == [[30.0]]
    assert await rows(pg.wh, f"SELECT sum(amount) FROM test.{pg.exposed}.sales") == [[30.0]]
    month = await rows(pg.wh, "SELECT date_trunc('month', DATE '2024-03-05')::date, "
                              "percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM sales")
    assert month == [["2024-03-01", 15.0]]


async def test_postgres_same_named_tables_in_two_exposed_schemas_are_not_confused(pg) -> None:
    both = open_warehouse("pg2", pg.dsn, schemas=[pg.exposed, pg.hidden], allow_privileged_role=True)
    try:
        assert await rows(both, "SELECT max(note) FROM sales") == [["visible"]]  # first schema wins
        assert await rows(both, f"SELECT max(note) FROM {pg.hidden}.sales") == [[pg.secret]]
        with pytest.raises(UnsafeSQL) as info:  # columns are checked against the right table
            await AGENT.validate(f"SELECT missing FROM {pg.hidden}.sales", both)
        assert info.value.code == "unknown_column"
    finally:
        await both.close()


async def test_postgres_search_path_is_pinned_so_a_role_schema_cannot_shadow(pg) -> None:
    role = f"lb_role_{secrets.token_hex(4)}"
    await pg.admin.execute(f"""
        CREATE ROLE {role} LOGIN;
        CREATE SCHEMA {role} AUTHORIZATION {role};
        CREATE TABLE {role}.sales (id int, amount numeric, note text);
        INSERT INTO {role}.sales VALUES (1, -1, 'SHADOW');
        ALTER TABLE {role}.sales OWNER TO {role};
        GRANT USAGE ON SCHEMA {pg.exposed} TO {role};
        GRANT SELECT ON ALL TABLES IN SCHEMA {pg.exposed} TO {role};
    """)
    dsn = pg.dsn.replace("postgres@", f"{role}@", 1)
    wh = open_warehouse("as-role", dsn, schemas=[pg.exposed], allow_privileged_role=True)
    try:
        # PostgreSQL's default search_path is "$user", public: without the pin, "sales" is the role's
        assert await rows(wh, "SELECT max(note) FROM sales") == [["visible"]]
        await attempt(wh, f"SELECT note FROM {role}.sales")
    finally:
        await wh.close()
        await pg.admin.execute(f"DROP SCHEMA {role} CASCADE; DROP OWNED BY {role}; DROP ROLE {role}")


# --------------------------------------------------------------------------------------------
# DuckDB


@pytest.fixture
def duck_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("""
        CREATE TABLE sales (id INTEGER, amount INTEGER, note VARCHAR);
        INSERT INTO sales VALUES (1, 10, 'visible'), (2, 20, 'visible');
        CREATE SCHEMA other;
        CREATE TABLE other.sales (id INTEGER, amount INTEGER, note VARCHAR);
        INSERT INTO other.sales VALUES (1, 999, 'SECRET');
        CREATE TABLE other.extra (x INTEGER);
        INSERT INTO other.extra VALUES (7);
    """)
    con.close()
    return path


DUCKDB_ATTACKS = [
    "SELECT * FROM query('SELECT note FROM other.sales')",
    "SELECT * FROM query_table('other.sales')",
    "SELECT * FROM read_csv('/etc/hostname')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT getvariable('x')",
    "SELECT current_setting('threads')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM which_secret('s3://bucket/x', 's3')",
    "SELECT * FROM json_execute_serialized_sql('x')",
    "SELECT * FROM sql_auto_complete('SELECT')",
    "SELECT ('SELECT 1').query()",
    "SELECT note.upper() FROM sales",
    "SELECT * FROM other.sales",
    "SELECT * FROM OTHER.SALES",
    "SELECT * FROM shop.other.sales",
    "SELECT * FROM system.main.sales",
    "SELECT * FROM temp.main.sales",
    "SELECT * FROM memory.main.sales",
    "SELECT * FROM system.main.duckdb_settings",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM duckdb_settings",
    "SELECT s.note FROM sales s JOIN other.sales o USING (id)",
    "SELECT * FROM '/etc/hostname'",
    *_with_hiding_places("getvariable('x')"),
]


async def test_duckdb_attacks_are_refused(duck_path: Path) -> None:
    wh = open_warehouse("duck", f"duckdb:///{duck_path}")
    try:
        for sql in DUCKDB_ATTACKS:
            await attempt(wh, sql)
        assert await rows(wh, "SELECT sum(amount) FROM sales") == [[30]]
        assert await rows(wh, "SELECT sum(amount) FROM main.sales") == [[30]]
        assert await rows(wh, "SELECT sum(amount) FROM shop.main.sales") == [[30]]
    finally:
        await wh.close()


async def test_duckdb_second_schema_when_exposed_resolves_to_the_right_table(duck_path: Path) -> None:
    wh = open_warehouse("duck", f"duckdb:///{duck_path}", schemas=["main", "other"])
    try:
        assert await rows(wh, "SELECT max(note) FROM sales") == [["visible"]]
        assert await rows(wh, "SELECT max(note) FROM other.sales") == [["SECRET"]]
        # an unqualified name found in the second schema is qualified for the engine
        assert await AGENT.validate("SELECT x FROM extra", wh) == 'SELECT x FROM "shop"."other".extra'
        assert await rows(wh, "SELECT x FROM extra") == [[7]]
        assert [t.name for t in (await wh.schema()).tables] == ["sales", "extra"]
    finally:
        await wh.close()


# --------------------------------------------------------------------------------------------
# SQLite


@pytest.fixture
def lite_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE sales (id INTEGER PRIMARY KEY, amount INTEGER, note TEXT);
        INSERT INTO sales VALUES (1, 10, 'visible'), (2, 20, 'visible');
    """)
    con.close()
    return path


SQLITE_ATTACKS = [
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT readfile('/etc/hostname')",
    "SELECT writefile('/tmp/livebi-x', 'y')",
    "SELECT * FROM temp.sales",
    "SELECT * FROM main.sqlite_master",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM sqlite_temp_master",
    "SELECT * FROM aux.sales",
    "SELECT * FROM pragma_table_info('sales')",
    "SELECT * FROM pragma_database_list",
    "SELECT sqlite_version()",
    *_with_hiding_places("load_extension('/tmp/evil.so')"),
]


async def test_sqlite_attacks_are_refused(lite_path: Path) -> None:
    wh = open_warehouse("lite", f"sqlite:///{lite_path}")
    try:
        for sql in SQLITE_ATTACKS:
            await attempt(wh, sql)
        assert await rows(wh, "SELECT sum(amount) FROM main.sales") == [[30]]
    finally:
        await wh.close()
    with pytest.raises(ValueError):
        open_warehouse("lite", f"sqlite:///{lite_path}", schemas=["main", "aux"])


# --------------------------------------------------------------------------------------------
# the LLM path: a hostile model never gets its SQL run


LLM_HOSTILE = [
    "SELECT load_extension('/tmp/evil.so')",
    "```sql\nSELECT readfile('/etc/hostname') AS amount\n```",
    "SELECT * FROM temp.sales",
    "SELECT * FROM main.sqlite_master",
    "WITH x AS (SELECT fts3_tokenizer('simple') AS t) SELECT t FROM x",
]


@pytest.mark.parametrize("reply", LLM_HOSTILE)
async def test_hostile_llm_sql_on_sqlite_ends_in_the_parser(lite_path: Path, reply: str) -> None:
    result = await _ask_with_llm(f"sqlite:///{lite_path}", reply, "total amount of sales")
    assert result["engine"] == "parser", result
    assert not any(word in result["sql"].lower() for word in ("load_extension", "readfile", "temp.", "sqlite_master", "fts3"))
    assert "The LLM endpoint failed (" in result["assumptions"][0]
    assert any(why in result["assumptions"][0] for why in ("is not allowed", "is not available", "unknown table"))


async def test_hostile_llm_sql_on_postgres_never_runs(pg) -> None:
    for reply in (
        f"SELECT query_to_xml('SELECT note FROM {pg.hidden}.sales', true, true, '') AS amount",
        f"SELECT amount FROM {pg.hidden}.sales",
        f"SELECT pg_catalog.query_to_xml('SELECT note FROM {pg.hidden}.sales', true, true, '')",
        f"SELECT nextval('{pg.exposed}.seq')",
    ):
        result = await _ask_with_llm(pg.dsn, reply, "total amount of sales", schemas=[pg.exposed])
        assert result["engine"] == "parser" and "xml" not in result["sql"] and pg.hidden not in result["sql"], reply
        assert pg.secret not in repr(result)
        assert any(why in result["assumptions"][0] for why in ("is not allowed", "is not exposed")), result["assumptions"]
    assert await pg.admin.fetchval(f"SELECT is_called FROM {pg.exposed}.seq") is False


async def _ask_with_llm(url: str, reply: str, question: str, *, schemas: list[str] | None = None) -> dict:
    wh = open_warehouse("w", url, schemas=schemas, allow_privileged_role=True)
    try:
        with ChatServer(reply) as server:
            llm = LLMEngine(base_url=server.base_url, model="test-model", timeout_s=5)
            pipeline = Pipeline(warehouses={"w": wh}, nlp=NLPAgent(today=dt.date(2024, 6, 30), llm=llm, llm_mode="first"),
                                data=AGENT)
            try:
                return await pipeline.answer("q", AskRequest(question=question), lambda *a: None)
            except AskFailed as exc:  # a clear refusal is fine too, as long as nothing ran
                assert exc.code in REFUSED
                return {"engine": "refused", "rows": [], "assumptions": [exc.message]}
    finally:
        await wh.close()


# --------------------------------------------------------------------------------------------
# validation runs off the event loop


async def test_validation_of_a_large_statement_leaves_the_event_loop_free(duck_path: Path) -> None:
    wh = open_warehouse("duck", f"duckdb:///{duck_path}")
    try:
        await wh.schema()
        columns = ", ".join(f"coalesce(amount, {i}) AS c{i}" for i in range(1500))
        big = f"SELECT {columns} FROM sales WHERE note IN ({', '.join(repr(str(i)) for i in range(2000))})"
        assert len(big) < 100_000
        task = asyncio.create_task(AGENT.validate(big, wh))
        spins = 0
        while not task.done():
            await asyncio.sleep(0)
            spins += 1
        await task
        # On the loop, validation would finish within the task's first step (nothing in it
        # awaits); in a worker thread the loop keeps turning meanwhile.
        assert spins > 10, spins
    finally:
        await wh.close()


# --------------------------------------------------------------------------------------------
# the allow-list does not break the product: gold SQL and the parser's SQL all validate


QUESTIONS = Path(__file__).resolve().parents[2] / "benchmarks" / "questions"


async def _validate_benchmark(name: str, url: str, dialect: str, today: dt.date) -> None:
    data = yaml.safe_load((QUESTIONS / f"{name}.yaml").read_text())
    wh = open_warehouse(name, url)
    try:
        agent = NLPAgent(today=today)
        model = await agent.model_for(wh)
        schema = await wh.schema()
        failures = []
        for items in data["questions"].values():
            for item in items:
                candidates = [("gold", item["sql"])]
                try:
                    candidates.append(("parser", agent.parse(item["q"], model, dialect=dialect).sql))
                except NotUnderstood:
                    pass
                for source, sql in candidates:
                    try:
                        validate_select(sql, dialect=dialect, schema=schema)
                    except WarehouseError as exc:
                        failures.append(f"{source}: {exc.code} {exc.message}\n    {sql}")
        assert not failures, "\n".join(failures)
    finally:
        await wh.close()


async def test_demo_gold_and_parser_sql_pass_validation(demo_duckdb: Path) -> None:
    await _validate_benchmark("demo", f"duckdb:///{demo_duckdb}", "duckdb", dt.date(2025, 12, 31))


async def test_northwind_gold_and_parser_sql_pass_validation(northwind_path: Path) -> None:
    await _validate_benchmark("northwind", f"sqlite:///{northwind_path}", "sqlite", dt.date(2014, 5, 6))
