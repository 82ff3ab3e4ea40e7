"""validate_select: one read-only query over known tables and columns, nothing else."""

from __future__ import annotations

import pytest

from livebi.warehouse.base import Column, Schema, Table
from livebi.warehouse.safety import UnsafeSQL, validate_select
from livebi.warehouse.types import kind_of


def _table(name: str, *columns: tuple[str, str]) -> Table:
    return Table(name, tuple(Column(c, t, kind_of(t)) for c, t in columns))


SCHEMA = Schema(
    (
        _table(
            "orders",
            ("order_id", "INTEGER"),
            ("order_date", "DATE"),
            ("customer_id", "INTEGER"),
            ("product_id", "INTEGER"),
            ("revenue", "DECIMAL(14,2)"),
            ("status", "VARCHAR"),
        ),
        _table(
            "customers",
            ("customer_id", "INTEGER"),
            ("customer_name", "VARCHAR"),
            ("region", "VARCHAR"),
            ("address", "STRUCT(city VARCHAR)"),
        ),
        _table("products", ("product_id", "INTEGER"), ("category", "VARCHAR")),
        _table("Order Details", ("Id", "INTEGER"), ("OrderId", "INTEGER")),
        _table("Order", ("Id", "INTEGER"), ("OrderDate", "VARCHAR")),
    )
)


def check(sql: str, dialect: str = "duckdb") -> str:
    return validate_select(sql, dialect=dialect, schema=SCHEMA)


def rejected(sql: str, dialect: str = "duckdb") -> UnsafeSQL:
    with pytest.raises(UnsafeSQL) as info:
        check(sql, dialect)
    return info.value


# --------------------------------------------------------------------------------------------
# valid queries pass and come back regenerated

VALID = [
    "select * from orders",
    "SELECT o.revenue, c.region FROM orders o JOIN customers c ON o.customer_id = c.customer_id",
    "with t as (select customer_id, sum(revenue) rev from orders group by 1) "
    "select c.customer_name, t.rev from t join customers c using (customer_id) order by rev desc",
    "select region, total from (select region, sum(revenue) total from orders "
    "join customers using (customer_id) group by region) s where total > 5",
    "select * from orders where customer_id in (select customer_id from customers where region = 'Europe')",
    "select c.customer_name, (select max(o.revenue) from orders o where o.customer_id = c.customer_id) from customers c",
    "select * from orders o where exists (select 1 from customers c where c.customer_id = o.customer_id)",
    "select date_trunc('month', order_date) as m, sum(revenue) as r from orders group by m order by m",
    "select count(*) as n from orders having n > 1",
    'select ORDER_ID, "revenue" from ORDERS',
    'select "Id" from "Order Details"',
    'select o."Id", o.OrderDate from "Order" o',
    "select c.address.city from customers c",
    "select order_id as x from orders union all select customer_id from customers order by x",
    "select customer_id from customers except select customer_id from orders",
    "select x from (select * from orders) s(x, y)",
    "select s.revenue from (select * from orders) s",
    "select c.* from customers c",
    "select * from range(10) r(x)",
    "with recursive r(n) as (select 1 union all select n + 1 from r where n < 10) select n from r",
    "with a as (select 1 as x), b as (select x from a) select b.x from b",
    "select count(*) filter (where status = 'completed') from orders",
    "select sum(revenue) over (partition by customer_id order by order_date) from orders",
    "select * from orders qualify row_number() over (partition by customer_id order by revenue desc) = 1",
    "select c.region, sum(o.revenue) from orders o join customers c using (customer_id) group by all",
    "select list_transform([1, 2], x -> x + 1) from orders",
    "select * exclude (status) from orders",
    "select rowid from orders",
    "select 1",
    "select order_id from orders;",
    "select * from orders -- trailing comment",
]


@pytest.mark.parametrize("sql", VALID)
def test_valid_duckdb_queries_pass(sql: str) -> None:
    out = check(sql)
    assert out.upper().lstrip().startswith(("SELECT", "WITH"))


@pytest.mark.parametrize(
    "sql",
    [
        "select to_char(order_date, 'YYYY') as y, sum(revenue)::numeric(12,2) from orders group by 1",
        "select distinct on (customer_id) * from orders order by customer_id, revenue desc",
        "select * from generate_series(1, 3) g",
        "select * from public.orders",
        "select order_date::date from orders",
    ],
)
def test_valid_postgres_queries_pass(sql: str) -> None:
    assert check(sql, "postgres")


@pytest.mark.parametrize(
    "sql",
    [
        "select strftime('%Y', order_date) as y, count(*) from orders group by y",
        'select o.Id, count(*) from "Order" o join "Order Details" d on d.OrderId = o.Id group by o.Id',
        "select * from orders limit 10 offset 5",
    ],
)
def test_valid_sqlite_queries_pass(sql: str) -> None:
    assert check(sql, "sqlite")


def test_output_is_regenerated_in_the_dialect_without_comments() -> None:
    out = check("select order_id /* hi */ from orders -- */ drop table orders")
    assert out == "SELECT order_id FROM orders"
    assert check("select revenue from orders", "postgres") == "SELECT revenue FROM orders"


# --------------------------------------------------------------------------------------------
# hostile input is rejected with the right code

FORBIDDEN = [
    "insert into orders values (1)",
    "update orders set revenue = 0",
    "delete from orders",
    "drop table orders",
    "create table x as select 1",
    "alter table orders add column x int",
    "merge into orders using customers on true when matched then delete",
    "with d as (delete from orders returning *) select * from d",
    "with d as (insert into orders select * from orders returning *) select * from d",
    "select * into stolen from orders",
    "select * from orders for update",
    "pragma table_info('orders')",
    "attach 'other.db' as other",
    "copy orders to 'out.csv'",
    "set threads = 1",
    "call pragma_version()",
    "install httpfs",
    "load httpfs",
    "vacuum",
    "describe orders",
    "show tables",
    "select * from read_csv('/etc/passwd')",
    "select * from read_csv_auto('/etc/passwd')",
    "select * from read_parquet('s3://bucket/x.parquet')",
    "select * from read_text('/etc/passwd')",
    "select * from orders where order_id in (select * from read_parquet('x'))",
    "select (select count(*) from glob('/*')) from orders",
    "select * from glob('*')",
    "select * from sqlite_scan('x.db', 't')",
    "select * from postgres_scan('dbname=x', 'public', 't')",
    "select * from query_table('orders')",
    "select * from duckdb_secrets()",
    "select * from '/etc/passwd.csv'",
    "select * from 'data.parquet'",
    "select * from 'https://example.com/x.csv'",
    'select * from orders, "/etc/x.csv"',
    "select getenv('HOME')",
    "select nextval('seq')",
]


@pytest.mark.parametrize("sql", FORBIDDEN)
def test_writes_side_effects_and_file_access_are_forbidden(sql: str) -> None:
    assert rejected(sql).code == "forbidden_sql"


@pytest.mark.parametrize(
    "sql",
    [
        "select pg_read_file('/etc/passwd')",
        "select pg_read_binary_file('x')",
        "select * from pg_ls_dir('.')",
        "select * from dblink('x', 'select 1') as t(a int)",
        "select lo_import('/etc/passwd')",
        "select set_config('default_transaction_read_only', 'off', false)",
        "select pg_terminate_backend(1)",
        "select * from orders for share",
    ],
)
def test_postgres_escape_hatches_are_forbidden(sql: str) -> None:
    assert rejected(sql, "postgres").code == "forbidden_sql"


@pytest.mark.parametrize(
    "sql",
    ["select load_extension('evil.so')", "select readfile('/etc/passwd')", "select * from pragma_table_info('orders')"],
)
def test_sqlite_escape_hatches_are_forbidden(sql: str) -> None:
    assert rejected(sql, "sqlite").code == "forbidden_sql"


@pytest.mark.parametrize(
    "sql",
    [
        "select 1; drop table orders",
        "select * from orders; drop table orders;",
        "select * from orders; -- harmless?\n delete from orders",
        "select 1; select 2",
    ],
)
def test_more_than_one_statement_is_refused(sql: str) -> None:
    assert rejected(sql).code == "multiple_statements"


@pytest.mark.parametrize("sql", ["", "   ", "selec * from orders", "select * from orders where", "select (1"])
def test_unparseable_sql_is_invalid(sql: str) -> None:
    assert rejected(sql).code == "invalid_sql"


@pytest.mark.parametrize(
    "sql",
    ["select * from information_schema.tables", "select * from pg_catalog.pg_user", "select * from sqlite_master"],
)
def test_engine_catalogues_are_not_tables(sql: str) -> None:
    assert rejected(sql).code == "unknown_table"


# --------------------------------------------------------------------------------------------
# unknown names come with suggestions


def test_unknown_table_suggests_close_names() -> None:
    error = rejected("select * from ordrs")
    assert error.code == "unknown_table"
    assert "ordrs" in error.message
    assert error.suggestions[0] == "orders"


def test_unknown_table_in_a_join() -> None:
    error = rejected("select * from orders o join customerz c on o.customer_id = c.customer_id")
    assert error.code == "unknown_table" and error.suggestions == ["customers"]


def test_unknown_column_suggests_close_names() -> None:
    error = rejected("select revenu from orders")
    assert error.code == "unknown_column"
    assert "revenu" in error.message and "did you mean" in error.message
    assert error.suggestions == ["revenue"]


def test_unknown_qualified_column_uses_the_aliased_table() -> None:
    error = rejected("select c.custmer_name from orders o join customers c using (customer_id)")
    assert error.code == "unknown_column"
    assert error.suggestions[0] == "customer_name"


def test_unknown_alias_is_an_unknown_table() -> None:
    assert rejected("select x.revenue from orders o").code == "unknown_table"
    assert rejected("select z.* from customers c").code == "unknown_table"


def test_columns_of_ctes_and_subqueries_are_checked() -> None:
    error = rejected("with t as (select customer_id from orders) select revenue from t")
    assert error.code == "unknown_column"
    error = rejected("select s.reveneu from (select revenue from orders) s")
    assert error.code == "unknown_column" and error.suggestions == ["revenue"]


def test_a_column_is_not_its_own_alias() -> None:
    # "revenu" names the output column too, but it does not exist in orders
    assert rejected("select revenu from orders").code == "unknown_column"
    assert rejected("select revenu as revenu from orders").code == "unknown_column"


def test_names_are_case_insensitive() -> None:
    assert check("SELECT Revenue FROM Orders AS O WHERE O.Status = 'completed'")


def test_schema_index_is_reused_per_schema_object() -> None:
    from livebi.warehouse import safety

    check("select 1 from orders")
    first = safety._index_for(SCHEMA, "duckdb")
    check("select 2 from orders")
    assert safety._index_for(SCHEMA, "duckdb") is first


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT query_to_xml('select pg_read_file(''/etc/hostname'')', true, true, '')",
        "SELECT database_to_xml(true, true, '')",
        "SELECT table_to_xml('orders', true, true, '')",
        "SELECT ts_stat('select to_tsvector(region) from customers')",
        "SELECT (pg_stat_get_activity(NULL)).query",
        "SELECT pg_logical_emit_message(false, 'x', 'y')",
        "SELECT pg_stat_reset()",
        "SELECT current_setting('data_directory')",
        "SELECT fts3_tokenizer('simple')",
    ],
)
def test_functions_that_run_text_as_sql_or_read_other_sessions_are_refused(sql: str) -> None:
    for dialect in ("postgres", "duckdb", "sqlite"):
        with pytest.raises(UnsafeSQL) as info:
            validate_select(sql, dialect=dialect, schema=SCHEMA)
        assert info.value.code in ("forbidden_sql", "invalid_sql"), (dialect, sql)
