"""Dashboards end to end: REST and the edit op on a real server, real WebSocket clients."""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

import httpx

from . import conftest
from .conftest import LiveServer, WSClient, run_server


class Api:
    """REST calls as one user."""

    def __init__(self, server: LiveServer, username: str) -> None:
        self.server = server
        self.username = username

    async def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.server.token(self.username)}"}
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=30) as http:
            return await http.request(method, path, headers=headers, **kw)


async def create(server: LiveServer, owner: str, title: str = "Sales") -> dict:
    r = await Api(server, owner)("POST", "/api/dashboards", json={"title": title})
    assert r.status_code == 201, r.text
    return r.json()


def updates(client: WSClient, dashboard_id: str) -> list[dict]:
    return [p["data"] for p in client.on(f"dashboard:{dashboard_id}") if p["type"] == "dashboard_update"]


def apply_update(state: dict, update: dict) -> None:
    """A client's own replay of a dashboard_update (written independently of the server's model)."""
    kind, data = update["update_type"], update["data"]
    widgets = state["widgets"]
    if kind == "add_widget":
        widgets.append(copy.deepcopy(data))
    elif kind == "remove_widget":
        state["widgets"] = [w for w in widgets if w["id"] != data["widget_id"]]
    elif kind in ("move_widget", "resize_widget", "update_widget"):
        widget = next(w for w in widgets if w["id"] == data["widget_id"])
        widget.update({k: copy.deepcopy(v) for k, v in data.items() if k != "widget_id"})
    elif kind == "update_dashboard":
        state.update(data)
    if kind not in ("members", "sharing", "deleted"):
        state["version"] = update["version"]
        state["updated_at"] = update["timestamp"]


async def test_create_subscribe_edit_publish_and_reload(live_server: LiveServer) -> None:
    alice_api = Api(live_server, "alice")
    d = await create(live_server, "alice")
    assert d["version"] == 0 and d["role"] == "owner" and d["widgets"] == [] and d["public"] is False
    assert d["owner"]["username"] == "alice" and d["id"].startswith("d_")

    alice = await live_server.connect("alice")
    watcher = await live_server.connect("alice")
    try:
        assert (await watcher.op("subscribe", channel=f"dashboard:{d['id']}"))["ok"]
        reply = await alice.op("edit", dashboard_id=d["id"], ops=[
            {"type": "add_widget", "widget": {"title": "Revenue", "sql": "SELECT 1", "w": 4}},
            {"type": "update_dashboard", "fields": {"description": "Q3"}},
        ])
        assert reply["ok"], reply
        data = reply["data"]
        assert data["dashboard_id"] == d["id"] and data["version"] == 2
        assert [a["version"] for a in data["applied"]] == [1, 2]
        widget = data["applied"][0]["data"]
        assert widget["title"] == "Revenue" and widget["id"].startswith("w_") and widget["w"] == 4
        assert data["applied"][1] == {"version": 2, "update_type": "update_dashboard", "data": {"description": "Q3"}}

        got = await watcher._wait_for(lambda: len(updates(watcher, d["id"])) >= 2 and updates(watcher, d["id"]))
        me = (await alice_api("GET", "/api/me")).json()["user"]
        assert [(u["version"], u["update_type"], u["user_id"], u["dashboard_id"]) for u in got] == [
            (1, "add_widget", me["id"], d["id"]), (2, "update_dashboard", me["id"], d["id"])]
        assert got[0]["data"] == widget and got[0]["timestamp"]

        # An op on a removed widget: a clear not_found naming it, nothing applied.
        assert (await alice.op("edit", dashboard_id=d["id"], ops=[
            {"type": "remove_widget", "widget_id": widget["id"]}]))["ok"]
        reply = await alice.op("edit", dashboard_id=d["id"], ops=[
            {"type": "update_dashboard", "fields": {"title": "never"}},
            {"type": "move_widget", "widget_id": widget["id"], "x": 1, "y": 1}])
        assert reply["error"]["code"] == "not_found" and f"widget {widget['id']} was removed" in reply["error"]["message"]
        assert reply["error"]["details"]["op_index"] == 1
        # Invalid ops are refused at parse time with details.
        reply = await alice.op("edit", dashboard_id=d["id"], ops=[{"type": "resize_widget", "widget_id": widget["id"], "w": 99, "h": 1}])
        assert reply["error"]["code"] == "invalid_op" and "ops.0.resize_widget.w" in reply["error"]["message"]
        assert (await alice.op("edit", dashboard_id="d_ffffffffffff", ops=[
            {"type": "update_dashboard", "fields": {"title": "x"}}]))["error"]["code"] == "not_found"

        snap = (await alice_api("GET", f"/api/dashboards/{d['id']}")).json()
        assert snap["version"] == 3 and snap["title"] == "Sales" and snap["widgets"] == []
        assert snap["description"] == "Q3" and snap["role"] == "owner"
        listed = (await alice_api("GET", "/api/dashboards")).json()["dashboards"]
        assert [(x["id"], x["version"], x["widget_count"], x["role"]) for x in listed] == [(d["id"], 3, 0, "owner")]
    finally:
        await alice.close()
        await watcher.close()


async def test_members_roles_take_effect_at_once_and_lost_access_unsubscribes(live_server: LiveServer) -> None:
    alice_api, bob_api = Api(live_server, "alice"), Api(live_server, "bob")
    d = await create(live_server, "alice")
    bob = await live_server.connect("bob")
    try:
        channel = f"dashboard:{d['id']}"
        edit = [{"type": "update_dashboard", "fields": {"title": "by bob"}}]
        assert (await bob.op("subscribe", channel=channel))["error"]["code"] == "forbidden"
        assert (await bob.op("edit", dashboard_id=d["id"], ops=edit))["error"]["code"] == "forbidden"

        r = await alice_api("PUT", f"/api/dashboards/{d['id']}/members/bob", json={"role": "viewer"})
        assert r.status_code == 200, r.text
        assert [(m["user"]["username"], m["role"]) for m in r.json()["members"]] == [("alice", "owner"), ("bob", "viewer")]
        assert (await bob.op("subscribe", channel=channel))["ok"]
        reply = await bob.op("edit", dashboard_id=d["id"], ops=edit)
        assert reply["error"]["code"] == "forbidden" and "viewer" in reply["error"]["message"]

        assert (await alice_api("PUT", f"/api/dashboards/{d['id']}/members/bob", json={"role": "editor"})).status_code == 200
        assert (await bob.op("edit", dashboard_id=d["id"], ops=edit))["ok"]
        assert (await bob_api("GET", f"/api/dashboards/{d['id']}")).json()["role"] == "editor"

        r = await alice_api("DELETE", f"/api/dashboards/{d['id']}/members/bob")
        assert r.status_code == 200 and [m["user"]["username"] for m in r.json()["members"]] == ["alice"]
        assert (await bob.op("edit", dashboard_id=d["id"], ops=edit))["error"]["code"] == "forbidden"
        # bob saw the members update that removed him, then was unsubscribed: no more updates.
        seen = await bob._wait_for(lambda: [u for u in updates(bob, d["id"]) if u["update_type"] == "members"])
        assert [m["user"]["username"] for m in seen[-1]["data"]["members"]] == ["alice"]
        before = len(bob.on(channel))
        assert (await (await live_server.connect("alice")).op("edit", dashboard_id=d["id"], ops=edit))["ok"]
        await asyncio.sleep(0.3)
        assert len(bob.on(channel)) == before, "a removed member still receives the dashboard's updates"
        presence = await bob.op("presence", channel=channel)
        assert presence["error"]["code"] == "not_subscribed"

        # Public: everyone is a viewer; back to private drops them again.
        assert (await alice_api("PUT", f"/api/dashboards/{d['id']}/sharing", json={"public": True})).json() == {"public": True}
        assert (await bob.op("subscribe", channel=channel))["ok"]
        assert (await bob_api("GET", f"/api/dashboards/{d['id']}")).json()["role"] == "viewer"
        assert (await bob.op("edit", dashboard_id=d["id"], ops=edit))["error"]["code"] == "forbidden"
        assert (await alice_api("PUT", f"/api/dashboards/{d['id']}/sharing", json={"public": False})).status_code == 200
        sharing = await bob._wait_for(lambda: [u for u in updates(bob, d["id"]) if u["update_type"] == "sharing"][-1:])
        assert sharing[0]["data"] == {"public": False}
        assert (await bob.op("presence", channel=channel))["error"]["code"] == "not_subscribed"
        assert (await bob_api("GET", f"/api/dashboards/{d['id']}")).status_code == 403

        # Bad member changes.
        assert (await alice_api("PUT", f"/api/dashboards/{d['id']}/members/nobody", json={"role": "viewer"})).status_code == 404
        assert (await alice_api("PUT", f"/api/dashboards/{d['id']}/members/alice", json={"role": "viewer"})).status_code == 400
        assert (await alice_api("PUT", f"/api/dashboards/{d['id']}/members/bob", json={"role": "owner"})).status_code == 422

        # Delete: subscribers get `deleted`, then nothing; the dashboard is gone.
        assert (await alice_api("PUT", f"/api/dashboards/{d['id']}/members/bob", json={"role": "viewer"})).status_code == 200
        assert (await bob.op("subscribe", channel=channel))["ok"]
        assert (await alice_api("DELETE", f"/api/dashboards/{d['id']}")).status_code == 204
        await bob._wait_for(lambda: [u for u in updates(bob, d["id"]) if u["update_type"] == "deleted"])
        assert (await alice_api("GET", f"/api/dashboards/{d['id']}")).status_code == 404
        assert (await bob.op("subscribe", channel=channel))["error"]["code"] == "not_found"
    finally:
        await bob.close()


async def test_dashboard_limit_per_user(server_settings) -> None:
    server_settings.max_dashboards_per_user = 2
    async with run_server(server_settings) as server:
        for _ in range(2):
            await create(server, "alice")
        r = await Api(server, "alice")("POST", "/api/dashboards", json={"title": "third"})
        assert r.status_code == 400 and "2 dashboards" in r.json()["detail"]
        assert (await Api(server, "alice")("POST", "/api/dashboards", json={"title": ""})).status_code == 422


# -- 20 concurrent editors --------------------------------------------------------------------------

EDITORS = ["alice", "bob", "carol", "dave", "erin"]


def random_ops(rng: random.Random, known: list[str]) -> list[dict]:
    """1-3 ops, mostly on widgets everyone fights over; some on widgets that are gone."""
    ops = []
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(known) if known else "w_00000000"
        kind = rng.choices(["add", "remove", "move", "resize", "update", "dashboard"], [3, 1, 3, 3, 3, 1])[0]
        if kind == "add":
            ops.append({"type": "add_widget", "widget": {"title": f"w{rng.randint(0, 99)}", "x": rng.randint(0, 11)}})
        elif kind == "remove":
            ops.append({"type": "remove_widget", "widget_id": target})
        elif kind == "move":
            ops.append({"type": "move_widget", "widget_id": target, "x": rng.randint(0, 11), "y": rng.randint(0, 40)})
        elif kind == "resize":
            ops.append({"type": "resize_widget", "widget_id": target, "w": rng.randint(1, 12), "h": rng.randint(1, 24)})
        elif kind == "update":
            ops.append({"type": "update_widget", "widget_id": target,
                        "fields": rng.choice([{"title": f"t{rng.randint(0, 9)}"}, {"sql": "SELECT 1"},
                                              {"chart": {"type": "bar", "settings": {"n": rng.randint(0, 9)}}}])})
        else:
            ops.append({"type": "update_dashboard", "fields": {"title": f"D{rng.randint(0, 9)}"}})
    return ops


async def test_twenty_concurrent_editors_converge_on_the_stored_snapshot(server_settings, monkeypatch) -> None:
    for name in EDITORS[2:]:
        monkeypatch.setitem(conftest.USERS, name, f"{name}-pw")
    server_settings.op_rate_per_s = 0
    async with run_server(server_settings) as server:
        d = await create(server, "alice")
        owner = Api(server, "alice")
        for name in EDITORS[1:]:
            assert (await owner("PUT", f"/api/dashboards/{d['id']}/members/{name}", json={"role": "editor"})).status_code == 200
        # Seed a few widgets so the conflicts start at once.
        clients = [await server.connect(EDITORS[i % len(EDITORS)]) for i in range(20)]
        seed = await clients[0].op("edit", dashboard_id=d["id"], ops=[
            {"type": "add_widget", "widget": {"title": f"seed{i}"}} for i in range(4)])
        assert seed["ok"], seed
        known = [a["data"]["id"] for a in seed["data"]["applied"]]
        # Each client subscribes, then fetches its starting snapshot (no update can be missed:
        # the subscription is in place before the snapshot is read).
        starts = []
        for i, client in enumerate(clients):
            assert (await client.op("subscribe", channel=f"dashboard:{d['id']}"))["ok"]
            r = await Api(server, EDITORS[i % len(EDITORS)])("GET", f"/api/dashboards/{d['id']}")
            starts.append(r.json())
        outcomes: dict[str, int] = {}

        async def editor(index: int, client: WSClient) -> None:
            rng = random.Random(index)
            for _ in range(15):
                reply = await client.op("edit", dashboard_id=d["id"], ops=random_ops(rng, known))
                outcome = "ok" if reply["ok"] else reply["error"]["code"]
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if reply["ok"]:
                    known.extend(a["data"]["id"] for a in reply["data"]["applied"] if a["update_type"] == "add_widget")

        await asyncio.gather(*(editor(i, c) for i, c in enumerate(clients)))
        assert set(outcomes) <= {"ok", "not_found", "invalid_op"}, outcomes
        assert outcomes.get("ok", 0) > 100 and outcomes.get("not_found", 0) > 0, outcomes

        stored = (await owner("GET", f"/api/dashboards/{d['id']}")).json()
        final_version = stored["version"]
        for index, (client, start) in enumerate(zip(clients, starts)):
            got = await client._wait_for(
                lambda: (u := updates(client, d["id"])) and max(x["version"] for x in u) >= final_version and u)
            edits = sorted((u for u in got if u["update_type"] not in ("members", "sharing", "deleted")),
                           key=lambda u: u["version"])
            state = {k: v for k, v in start.items() if k != "role"}
            relevant = [u for u in edits if u["version"] > start["version"]]
            versions = [u["version"] for u in relevant]
            assert versions == list(range(start["version"] + 1, final_version + 1)), f"client {index}: gap or duplicate"
            for u in relevant:
                apply_update(state, u)
            assert state == {k: v for k, v in stored.items() if k != "role"}, f"client {index} diverged"
        for client in clients:
            await client.close()
