"""The metadata store's schema comes from Alembic migrations run on start: a store of the
previous release (0.1.0, before migrations) upgrades in place with its users and history, a new
store ends up exactly as the code declares it, several nodes may start at once. On SQLite and on
PostgreSQL (a throwaway database)."""

from __future__ import annotations

import asyncio
import datetime as dt
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from livebi.auth import hash_password, verify_password
from livebi.store import MetadataStore, async_url
from livebi.store.migrate import current_revision, head_revision
from livebi.store.schema import metadata

# The schema of livebi 0.1.0, frozen here exactly as that release declared it.
OLD = MetaData()
Table(
    "livebi_users", OLD,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Table(
    "livebi_queries", OLD,
    Column("query_id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("livebi_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("question", Text),
    Column("sql", Text),
    Column("warehouse", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("engine", String(16)),
    Column("row_count", Integer),
    Column("error", JSON),
    Column("elapsed_ms", Float),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("finished_at", DateTime(timezone=True)),
)
NOW = dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return request.getfixturevalue("pg_database")


async def _make_old_store(url: str) -> None:
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await conn.run_sync(OLD.create_all)
        await conn.execute(OLD.tables["livebi_users"].insert(), [
            {"id": "u1", "username": "alice", "password_hash": hash_password("alice-pw"), "created_at": NOW},
        ])
        await conn.execute(OLD.tables["livebi_queries"].insert(), [
            {"query_id": "q1", "user_id": "u1", "question": "total revenue", "sql": "SELECT 1", "warehouse": "demo",
             "status": "done", "engine": "parser", "row_count": 1, "error": None, "elapsed_ms": 12.5,
             "created_at": NOW, "finished_at": NOW},
        ])
    await engine.dispose()


async def _schema_diff(url: str) -> list:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata))
    finally:
        await engine.dispose()


async def _revision(url: str) -> tuple[str | None, set[str]]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: (current_revision(c), set(inspect(c).get_table_names())))
    finally:
        await engine.dispose()


async def test_a_store_of_the_previous_release_upgrades_in_place(store_url: str) -> None:
    await _make_old_store(store_url)
    assert (await _revision(store_url))[0] is None
    store = await MetadataStore.open(store_url)
    try:
        user = await store.get_user(username="alice")
        assert user is not None and user["id"] == "u1" and verify_password(user["password_hash"], "alice-pw")
        (row,) = await store.history("u1")
        assert (row["query_id"], row["question"], row["status"], row["row_count"]) == ("q1", "total revenue", "done", 1)
        await store.record_query(query_id="q2", user_id="u1", question="more", sql=None, warehouse="demo")
        assert await store.token_version("u1") in (0, None)
    finally:
        await store.close()
    revision, tables = await _revision(store_url)
    assert revision == head_revision()
    assert {"livebi_dashboards", "livebi_dashboard_ops", "livebi_query_shares", "livebi_query_results"} <= tables
    assert await _schema_diff(store_url) == []


async def test_a_new_store_matches_the_declared_schema_and_reopens(store_url: str) -> None:
    for _ in range(2):  # the second open finds nothing to do
        store = await MetadataStore.open(store_url)
        await store.close()
    assert (await _revision(store_url))[0] == head_revision()
    assert await _schema_diff(store_url) == [], "migrations and store/schema.py drifted apart"


async def test_several_nodes_starting_at_once_migrate_once(pg_database: str) -> None:
    """PostgreSQL is the store several nodes share; its advisory lock makes them take turns."""
    stores = await asyncio.gather(*(MetadataStore.open(pg_database) for _ in range(4)))
    for store in stores:
        await store.close()
    assert (await _revision(pg_database))[0] == head_revision()
