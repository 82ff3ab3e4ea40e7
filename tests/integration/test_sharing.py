"""Sharing a question's result (the ``share`` op) and reading stored results, on a real server
with real WebSocket clients: the recipient gets it live and can open it; a third user cannot
subscribe to it or fetch it; the asker finds it again after reconnecting."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from typing import Any, AsyncIterator

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from livebi.store.metadata import async_url
from livebi.store.schema import dashboard_members, dashboards

from . import conftest
from .conftest import LiveServer, WSClient, run_server

QUICK_SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"
SLOW_SQL = (
    "SELECT count(*) AS n FROM orders a JOIN orders b ON a.quantity + b.quantity > 0 "
    "JOIN orders c ON b.quantity + c.quantity > 0"
)


class People:
    """A server with alice, bob and carol: REST clients and ids."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=20)
        self.ids: dict[str, str] = {}

    async def setup(self) -> None:
        for name in ("alice", "bob", "carol"):
            self.ids[name] = (await self.get("/api/me", name)).json()["user"]["id"]

    async def get(self, path: str, username: str) -> httpx.Response:
        token = await self.server.token(username)
        return await self.http.get(path, headers={"Authorization": f"Bearer {token}"})

    async def listening(self, username: str) -> WSClient:
        """A connection of ``username`` subscribed to their own user channel."""
        client = await self.server.connect(username)
        assert (await client.op("subscribe", channel=f"user:{self.ids[username]}"))["ok"]
        return client


async def _answered(client: WSClient, sql: str = QUICK_SQL) -> dict[str, Any]:
    reply = await client.op("ask", sql=sql)
    assert reply["ok"], reply
    final = await client.until_final(reply["data"]["channel"])
    assert final["type"] == "result", final
    return final["data"]


@contextlib.asynccontextmanager
async def serving(settings, monkeypatch, **changes: Any) -> AsyncIterator[People]:
    """A server for alice, bob and carol with ``changes`` to ``settings``."""
    monkeypatch.setitem(conftest.USERS, "carol", "carol-pw")
    async with run_server(settings.model_copy(update={"op_rate_per_s": 0, **changes})) as server:
        people = People(server)
        await people.setup()
        try:
            yield people
        finally:
            await people.http.aclose()


@pytest.fixture
async def people(server_settings, monkeypatch) -> AsyncIterator[People]:
    async with serving(server_settings, monkeypatch) as p:
        yield p


async def test_recipient_gets_the_result_live_and_a_third_user_gets_nothing(people: People) -> None:
    alice = await people.server.connect("alice")
    bob = await people.listening("bob")
    carol = await people.listening("carol")
    try:
        result = await _answered(alice)
        query_id = result["query_id"]
        channel = f"query:{query_id}"
        before = await bob.op("subscribe", channel=channel)
        assert not before["ok"] and before["error"]["code"] == "forbidden", "not shared yet"

        reply = await alice.op("share", query_id=query_id, usernames=["bob"])
        assert reply["ok"], reply
        assert reply["data"]["recipients"] == [{"id": people.ids["bob"], "username": "bob"}]

        shared = await bob._wait_for(lambda: next(
            (p for p in bob.on(f"user:{people.ids['bob']}") if p["type"] == "shared_query_result"), None))
        data = shared["data"]
        assert data["query_id"] == query_id
        assert data["shared_by"] == {"id": people.ids["alice"], "username": "alice"}
        assert data["question"] is None and data["warehouse"] == "demo"
        assert data["shared_at"] == reply["data"]["shared_at"]
        assert data["result"] == result, "the recipient gets the result exactly as it was published"

        # The recipient may now open it: subscribe to the channel and fetch the stored result.
        assert (await bob.op("subscribe", channel=channel))["ok"]
        fetched = await people.get(f"/api/queries/{query_id}/result", "bob")
        assert fetched.status_code == 200 and fetched.json() == result

        # A third user can do neither, and cannot tell the question exists.
        refused = await carol.op("subscribe", channel=channel)
        assert not refused["ok"] and refused["error"]["code"] == "forbidden", refused
        stranger = await people.get(f"/api/queries/{query_id}/result", "carol")
        missing = await people.get("/api/queries/0123456789abcdef/result", "carol")
        assert stranger.status_code == missing.status_code == 404
        assert stranger.json()["detail"].replace(query_id, "X") == missing.json()["detail"].replace("0123456789abcdef", "X")
        assert not [p for p in carol.publications if p["type"] == "shared_query_result" or query_id in p["channel"]]
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_the_asker_fetches_the_stored_result_after_reconnecting(people: People) -> None:
    alice = await people.server.connect("alice")
    result = await _answered(alice)
    # Stored before it was published: fetching right after the publication finds it.
    assert (await people.get(f"/api/queries/{result['query_id']}/result", "alice")).json() == result
    await alice.close()

    history = (await people.get("/api/history", "alice")).json()["queries"]
    entry = next(q for q in history if q["query_id"] == result["query_id"])
    assert entry["status"] == "done" and entry["has_result"] is True
    fetched = await people.get(f"/api/queries/{result['query_id']}/result", "alice")
    assert fetched.status_code == 200 and fetched.json() == result
    assert fetched.headers["cache-control"] == "no-store"


async def test_questions_without_a_result_have_nothing_stored_or_to_share(people: People) -> None:
    alice = await people.server.connect("alice")
    try:
        failed = await alice.op("ask", sql="SELECT nope FROM customers")
        final = await alice.until_final(failed["data"]["channel"])
        assert final["type"] == "error"
        query_id = failed["data"]["query_id"]
        assert (await people.get(f"/api/queries/{query_id}/result", "alice")).status_code == 404
        history = (await people.get("/api/history", "alice")).json()["queries"]
        assert next(q for q in history if q["query_id"] == query_id)["has_result"] is False
        reply = await alice.op("share", query_id=query_id, usernames=["bob"])
        assert not reply["ok"] and reply["error"]["code"] == "invalid_op", reply

        running = await alice.op("ask", sql=SLOW_SQL)
        reply = await alice.op("share", query_id=running["data"]["query_id"], usernames=["bob"])
        assert not reply["ok"] and reply["error"]["code"] == "invalid_op"
        assert "wait for the result" in reply["error"]["message"]
        await alice.op("cancel", query_id=running["data"]["query_id"])
    finally:
        await alice.close()


async def test_share_refusals_share_nothing(people: People) -> None:
    alice = await people.server.connect("alice")
    bob = await people.listening("bob")
    try:
        query_id = (await _answered(alice))["query_id"]
        cases = [
            (bob, {"usernames": ["carol"]}, "forbidden"),  # only the asker may share
            (alice, {"usernames": ["bob", "zed", "yan"]}, "not_found"),  # unknown users: nobody gets it
            (alice, {"usernames": ["alice"]}, "invalid_op"),  # nobody but herself
            (alice, {"usernames": ["bob"], "dashboard_id": "d_000000000000"}, "invalid_op"),
            (alice, {}, "invalid_op"),
            (alice, {"usernames": []}, "invalid_op"),
        ]
        for client, fields, code in cases:
            reply = await client.op("share", query_id=query_id, **fields)
            assert not reply["ok"] and reply["error"]["code"] == code, (fields, reply)
        unknown = await alice.op("share", query_id=query_id, usernames=["bob", "zed", "yan"])
        assert unknown["error"]["details"] == {"usernames": ["yan", "zed"]}
        assert "'yan'" in unknown["error"]["message"] and "'zed'" in unknown["error"]["message"]
        nothing = await alice.op("share", query_id="0123456789abcdef", usernames=["bob"])
        assert nothing["error"]["code"] == "not_found"

        assert not (await bob.op("subscribe", channel=f"query:{query_id}"))["ok"]
        assert (await people.get(f"/api/queries/{query_id}/result", "bob")).status_code == 404
        assert not [p for p in bob.publications if p["type"] == "shared_query_result"]
    finally:
        await alice.close()
        await bob.close()


async def _dashboard(store_url: str, owner: str, members: dict[str, str]) -> str:
    """A dashboard row with members (user id -> role), written straight to the store."""
    dashboard_id = "d_" + secrets.token_hex(6)
    now = dt.datetime.now(dt.timezone.utc)
    engine = create_async_engine(async_url(store_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(dashboards).values(
                id=dashboard_id, owner_id=owner, title="t", public=False, version=0, snapshot={},
                created_at=now, updated_at=now))
            for user_id, role in members.items():
                await conn.execute(insert(dashboard_members).values(
                    dashboard_id=dashboard_id, user_id=user_id, role=role, added_at=now))
    finally:
        await engine.dispose()
    return dashboard_id


async def test_share_with_a_dashboards_people(people: People, server_settings) -> None:
    ids = people.ids
    store_url = server_settings.resolved_store_url()
    theirs = await _dashboard(store_url, ids["bob"], {ids["alice"]: "viewer", ids["carol"]: "editor"})
    not_hers = await _dashboard(store_url, ids["bob"], {ids["carol"]: "viewer"})
    alice = await people.server.connect("alice")
    bob = await people.listening("bob")
    carol = await people.listening("carol")
    try:
        query_id = (await _answered(alice))["query_id"]
        stranger = await alice.op("share", query_id=query_id, dashboard_id=not_hers)
        assert stranger["error"]["code"] == "forbidden", "only a member or the owner may share with a dashboard"
        missing = await alice.op("share", query_id=query_id, dashboard_id="d_000000000000")
        assert missing["error"]["code"] == "not_found"

        reply = await alice.op("share", query_id=query_id, dashboard_id=theirs)
        assert reply["ok"], reply
        assert [r["username"] for r in reply["data"]["recipients"]] == ["bob", "carol"], "everyone but the sharer"
        for client, name in ((bob, "bob"), (carol, "carol")):
            await client._wait_for(lambda c=client, n=name: [p for p in c.on(f"user:{ids[n]}") if p["type"] == "shared_query_result"])
            assert (await client.op("subscribe", channel=f"query:{query_id}"))["ok"]
            assert (await people.get(f"/api/queries/{query_id}/result", name)).status_code == 200
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_recipients_who_may_not_use_the_warehouse_are_refused(server_settings, monkeypatch) -> None:
    async with serving(server_settings, monkeypatch, warehouse_access={"demo": ["alice", "bob"]}) as p:
        alice = await p.server.connect("alice")
        carol = await p.listening("carol")
        try:
            query_id = (await _answered(alice))["query_id"]
            reply = await alice.op("share", query_id=query_id, usernames=["bob", "carol"])
            assert not reply["ok"] and reply["error"]["code"] == "forbidden", reply
            assert reply["error"]["details"] == {"usernames": ["carol"]}
            assert "carol" in reply["error"]["message"] and "'demo'" in reply["error"]["message"]
            # Nothing was shared, not even with bob, who may use the warehouse.
            assert (await p.get(f"/api/queries/{query_id}/result", "bob")).status_code == 404
            assert (await p.get(f"/api/queries/{query_id}/result", "carol")).status_code == 404
            assert not [x for x in carol.publications if x["type"] == "shared_query_result"]
            assert (await alice.op("share", query_id=query_id, usernames=["bob"]))["ok"]
        finally:
            await alice.close()
            await carol.close()
