"""The metadata store keeps a bounded history: last N questions per user, long texts cut.
On SQLite (the default) and PostgreSQL (a throwaway database)."""

from __future__ import annotations

import pytest

from livebi.store import MetadataStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return request.getfixturevalue("pg_database")


async def test_history_keeps_the_last_n_questions_per_user(store_url: str) -> None:
    store = await MetadataStore.open(store_url, queries_per_user=5, max_sql_chars=100)
    try:
        alice = (await store.add_user("alice", "h"))["id"]
        bob = (await store.add_user("bob", "h"))["id"]
        await store.record_query(query_id="bob-0", user_id=bob, question="q", sql=None, warehouse="w")
        for i in range(12):
            await store.record_query(query_id=f"a-{i:02d}", user_id=alice, question=f"q{i}", sql="SELECT 1", warehouse="w")
            await store.finish_query(f"a-{i:02d}", status="error", error={"code": "query_failed", "message": "x" * 5000})
        history = await store.history(alice, limit=100)
        assert [q["query_id"] for q in history] == [f"a-{i:02d}" for i in range(11, 6, -1)]
        assert all(len(q["error"]["message"]) <= store.max_error_chars + 1 for q in history)
        assert [q["query_id"] for q in await store.history(bob)] == ["bob-0"], "other users keep theirs"
        assert await store.query_owner("a-00") is None
    finally:
        await store.close()


async def test_long_sql_is_cut_when_stored(store_url: str) -> None:
    store = await MetadataStore.open(store_url, queries_per_user=5, max_sql_chars=100)
    try:
        uid = (await store.add_user("alice", "h"))["id"]
        sql = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(2000))
        await store.record_query(query_id="q", user_id=uid, question=None, sql=sql, warehouse="w")
        await store.finish_query("q", status="done", sql=sql, row_count=1)
        (row,) = await store.history(uid)
        assert row["sql"] == sql[:100] + "…"
    finally:
        await store.close()


async def test_removing_a_user_removes_what_they_owned(store_url: str) -> None:
    """Foreign keys cascade on SQLite too (it ignores them unless told per connection)."""
    from sqlalchemy import func, select

    from livebi.store.schema import queries

    store = await MetadataStore.open(store_url)
    try:
        uid = (await store.add_user("alice", "h"))["id"]
        await store.record_query(query_id="q", user_id=uid, question="q", sql=None, warehouse="w")
        assert await store.remove_user("alice")
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(queries))).scalar() == 0
    finally:
        await store.close()
