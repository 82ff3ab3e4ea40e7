"""Concurrent question-history writes on SQLite are committed together (store/group_commit.py):
fewer transactions than writes, every write durable when its caller resumes, and one failing
write failing only its own caller."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text

from livebi.store import MetadataStore


async def test_concurrent_askers_writes_share_commits(tmp_path) -> None:
    path = tmp_path / "meta.db"
    store = await MetadataStore.open(f"sqlite:///{path}")
    try:
        users = [(await store.add_user(f"u{i}", "h"))["id"] for i in range(20)]

        async def ask(i: int) -> None:
            await store.record_query(query_id=f"q{i}", user_id=users[i], question="q", sql=None, warehouse="w")
            # Committed when the call returns: another connection (another process) sees it.
            with sqlite3.connect(path) as other:
                assert other.execute("SELECT status FROM livebi_queries WHERE query_id = ?", (f"q{i}",)).fetchone() == ("running",)
            await store.finish_query(f"q{i}", status="done", elapsed_ms=1.0, result={"rows": [[i]]})

        await asyncio.gather(*(ask(i) for i in range(20)))
        group = store._group
        assert group.writes == 40
        assert group.commits < group.writes, "concurrent writes were not grouped"
        for i in range(20):
            assert (await store.history(users[i]))[0]["status"] == "done"
            assert await store.results.result(f"q{i}") == {"rows": [[i]]}
    finally:
        await store.close()


async def test_a_failing_write_fails_only_its_caller(tmp_path) -> None:
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        alice = (await store.add_user("alice", "h"))["id"]

        def broken(conn) -> None:
            conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

        outcomes = await asyncio.gather(
            store.record_query(query_id="a1", user_id=alice, question="q", sql=None, warehouse="w"),
            store._write(broken),
            store.record_query(query_id="a2", user_id=alice, question="q", sql=None, warehouse="w"),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], Exception) and "no_such_table" in str(outcomes[1])
        assert sorted(q["query_id"] for q in await store.history(alice)) == ["a1", "a2"]
    finally:
        await store.close()


async def test_an_unknown_user_is_refused_as_before(tmp_path) -> None:
    """A write that violates a constraint raises to its caller, grouped or not."""
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        with pytest.raises(Exception, match="FOREIGN KEY"):
            await store.record_query(query_id="x", user_id="nobody", question="q", sql=None, warehouse="w")
    finally:
        await store.close()
