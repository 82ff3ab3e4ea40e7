"""The dashboard repository on real SQLite and PostgreSQL stores (migrated to head)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from livebi.auth import hash_password
from livebi.dashboards.model import apply_edit, new_dashboard
from livebi.store import MetadataStore
from livebi.store.dashboards import DashboardStore, VersionConflict


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
async def store(store_url: str):
    meta = await MetadataStore.open(store_url)
    try:
        yield meta
    finally:
        await meta.close()


async def users(meta: MetadataStore, *names: str) -> dict[str, dict]:
    out = {}
    for name in names:
        row = await meta.add_user(name, hash_password("pw"))
        out[name] = {"id": row["id"], "username": name}
    return out


def snapshot_for(owner: dict, dashboard_id: str = "d_000000000001", title: str = "Sales") -> dict:
    return new_dashboard(dashboard_id=dashboard_id, title=title, description="", owner=owner, now="t0")


async def test_create_get_list_members_public_delete(store: MetadataStore) -> None:
    u = await users(store, "alice", "bob", "carol")
    repo = DashboardStore(store.engine)
    assert await repo.create(snapshot_for(u["alice"]))
    assert await repo.create(snapshot_for(u["bob"], "d_000000000002", "Bob's"))
    row = await repo.get("d_000000000001", user_id=u["bob"]["id"])
    assert row["owner_id"] == u["alice"]["id"] and row["member_role"] is None
    assert row["snapshot"]["title"] == "Sales" and row["snapshot"]["version"] == 0
    assert await repo.get("d_ffffffffffff") is None

    listed = lambda rows: sorted(r["snapshot"]["id"] for r in rows)  # noqa: E731
    assert listed(await repo.list_for(u["alice"]["id"])) == ["d_000000000001"]
    assert listed(await repo.list_for(u["carol"]["id"])) == []

    await repo.set_member("d_000000000001", u["carol"]["id"], "viewer")
    await repo.set_member("d_000000000001", u["carol"]["id"], "editor")  # a change, not a second row
    await repo.set_member("d_000000000001", u["bob"]["id"], "viewer")
    assert await repo.members("d_000000000001") == [
        {"user": u["carol"], "role": "editor"}, {"user": u["bob"], "role": "viewer"}]
    assert (await repo.get("d_000000000001", user_id=u["carol"]["id"]))["member_role"] == "editor"
    assert listed(await repo.list_for(u["carol"]["id"])) == ["d_000000000001"]
    assert await repo.member_ids("d_000000000001") == [u["alice"]["id"], *sorted([u["bob"]["id"], u["carol"]["id"]])]
    assert await repo.remove_member("d_000000000001", u["bob"]["id"])
    assert not await repo.remove_member("d_000000000001", u["bob"]["id"])

    assert await repo.set_public("d_000000000002", True)
    assert (await repo.get("d_000000000002"))["snapshot"]["public"] is True
    assert listed(await repo.list_for(u["carol"]["id"])) == ["d_000000000001", "d_000000000002"]

    assert await repo.delete("d_000000000001")
    assert await repo.get("d_000000000001") is None
    assert await repo.members("d_000000000001") == []
    assert await repo.ops("d_000000000001") == []
    assert not await repo.delete("d_000000000001")


async def test_owner_limit(store: MetadataStore) -> None:
    u = await users(store, "alice")
    repo = DashboardStore(store.engine)
    assert await repo.create(snapshot_for(u["alice"], "d_000000000001"), limit_per_owner=2)
    assert await repo.create(snapshot_for(u["alice"], "d_000000000002"), limit_per_owner=2)
    assert not await repo.create(snapshot_for(u["alice"], "d_000000000003"), limit_per_owner=2)


async def test_apply_edit_writes_log_and_snapshot_together_guarded_by_version(store: MetadataStore) -> None:
    u = await users(store, "alice")
    repo = DashboardStore(store.engine)
    snap = snapshot_for(u["alice"])
    await repo.create(snap)
    ids = (f"w_{i:08x}" for i in itertools.count())
    result = apply_edit(snap, [{"type": "add_widget", "widget": {"title": "A"}},
                               {"type": "update_dashboard", "fields": {"title": "Renamed"}}],
                        now="t1", new_widget_id=lambda: next(ids))
    records = [u.record() for u in result.updates]
    await repo.apply_edit(snap["id"], expected_version=0, snapshot=result.snapshot, user_id=u["alice"]["id"], updates=records)
    row = await repo.get(snap["id"])
    assert row["snapshot"] == result.snapshot
    log = await repo.ops(snap["id"])
    assert [(r["version"], r["op"]["update_type"]) for r in log] == [(1, "add_widget"), (2, "update_dashboard")]
    assert (await repo.ops(snap["id"], after=1))[0]["version"] == 2

    # A writer that loaded version 0 lost the race: nothing of its edit is written.
    stale = apply_edit(snap, [{"type": "update_dashboard", "fields": {"title": "Stale"}}], now="t2",
                       new_widget_id=lambda: next(ids))
    with pytest.raises(VersionConflict):
        await repo.apply_edit(snap["id"], expected_version=0, snapshot=stale.snapshot, user_id=u["alice"]["id"],
                              updates=[x.record() for x in stale.updates])
    assert (await repo.get(snap["id"]))["snapshot"]["title"] == "Renamed"
    assert len(await repo.ops(snap["id"])) == 2
    # ...and a deleted dashboard conflicts too.
    await repo.delete(snap["id"])
    with pytest.raises(VersionConflict):
        await repo.apply_edit(snap["id"], expected_version=2, snapshot=result.snapshot, user_id=u["alice"]["id"], updates=[])


async def test_racing_writers_exactly_one_wins_each_version(store: MetadataStore) -> None:
    """Writers without the service's lock (as on two processes): the guard lets one through."""
    u = await users(store, "alice")
    repo = DashboardStore(store.engine)
    snap = snapshot_for(u["alice"])
    await repo.create(snap)

    async def writer(n: int) -> bool:
        result = apply_edit(snap, [{"type": "update_dashboard", "fields": {"title": f"T{n}"}}], now="t",
                            new_widget_id=lambda: "w_00000000")
        try:
            await repo.apply_edit(snap["id"], expected_version=0, snapshot=result.snapshot, user_id=u["alice"]["id"],
                                  updates=[x.record() for x in result.updates])
        except VersionConflict:
            return False
        return True

    wins = await asyncio.gather(*(writer(n) for n in range(8)))
    assert sum(wins) == 1
    log = await repo.ops(snap["id"])
    assert len(log) == 1
    assert (await repo.get(snap["id"]))["snapshot"]["title"] == f"T{wins.index(True)}"


async def test_op_log_keeps_only_the_newest_ops(store: MetadataStore) -> None:
    """An editor cannot grow the log without bound: past ``ops_kept`` the oldest rows go."""
    u = await users(store, "alice")
    repo = DashboardStore(store.engine, ops_kept=5)
    snap = snapshot_for(u["alice"])
    await repo.create(snap)
    ids = (f"w_{i:08x}" for i in itertools.count())
    for i in range(6):
        result = apply_edit(snap, [{"type": "update_dashboard", "fields": {"title": f"T{i}"}},
                                   {"type": "update_dashboard", "fields": {"description": f"D{i}"}}],
                            now=f"t{i}", new_widget_id=lambda: next(ids))
        await repo.apply_edit(snap["id"], expected_version=snap["version"], snapshot=result.snapshot,
                              user_id=u["alice"]["id"], updates=[x.record() for x in result.updates])
        snap = result.snapshot
    assert snap["version"] == 12
    assert [r["version"] for r in await repo.ops(snap["id"])] == [8, 9, 10, 11, 12]
    assert (await repo.get(snap["id"]))["snapshot"]["title"] == "T5"


async def test_three_nodes_editing_one_dashboard_lose_no_edit(pg_database: str) -> None:
    """Three processes' dashboard services on one PostgreSQL store, each with many editors at
    once on the same dashboard: every edit is applied exactly once, versions have no gap and no
    duplicate, and each node published its own edits in version order."""
    from livebi.auth import User
    from livebi.dashboards.service import DashboardService

    metas = [await MetadataStore.open(pg_database) for _ in range(3)]
    try:
        owner = await metas[0].add_user("olive", hash_password("pw-olive"))
        user = User(owner["id"], "olive")
        published: list[list[int]] = [[], [], []]

        def node(i: int) -> DashboardService:
            async def publish(channel: str, type: str, data: dict) -> None:
                published[i].append(data["version"])

            async def drop(channel: str, keep) -> int:
                return 0

            return DashboardService(DashboardStore(metas[i].engine), publish=publish, drop_subscribers=drop)

        nodes = [node(i) for i in range(3)]
        created = await nodes[0].create(user, title="Busy")
        per_node = 12

        async def add(i: int, n: int) -> dict:
            return await nodes[i].edit(created["id"], user, [
                {"type": "add_widget", "widget": {"title": f"n{i}-{n}", "sql": "SELECT 1"}}])

        replies = await asyncio.gather(*(add(i, n) for i in range(3) for n in range(per_node)))
        versions = sorted(r["version"] for r in replies)
        assert versions == list(range(1, 3 * per_node + 1))
        final = await nodes[1].get(created["id"], user)
        assert final["version"] == 3 * per_node
        assert sorted(w["title"] for w in final["widgets"]) == sorted(f"n{i}-{n}" for i in range(3) for n in range(per_node))
        for mine in published:
            assert mine == sorted(mine) and len(mine) == per_node
    finally:
        for meta in metas:
            await meta.engine.dispose()
