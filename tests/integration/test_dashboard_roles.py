"""Every dashboard op and endpoint × {anonymous, stranger, viewer, editor, owner, public viewer}.

Each cell runs on a fresh dashboard of alice's (owner) where bob is an editor and carol a viewer;
dave is a stranger, and on a public dashboard he is the "public viewer". A refusal must be the
documented one (401 / 403, ``unauthenticated`` / ``forbidden``) and must change nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from . import conftest
from .conftest import LiveServer, run_server

PRINCIPALS = ("anonymous", "stranger", "viewer", "editor", "owner", "public_viewer")
USER_OF = {"stranger": "dave", "viewer": "carol", "editor": "bob", "owner": "alice", "public_viewer": "dave"}
EDIT = [{"type": "update_dashboard", "fields": {"title": "changed"}}]

# action -> expected outcome per principal (HTTP status for REST, "ok" or an error code for ops)
MATRIX: dict[str, dict[str, Any]] = {
    "GET /api/dashboards/{id}":                {"anonymous": 401, "stranger": 403, "viewer": 200, "editor": 200, "owner": 200, "public_viewer": 200},
    "GET /api/dashboards/{id}/members":        {"anonymous": 401, "stranger": 403, "viewer": 200, "editor": 200, "owner": 200, "public_viewer": 200},
    "PUT /api/dashboards/{id}/members/erin":   {"anonymous": 401, "stranger": 403, "viewer": 403, "editor": 403, "owner": 200, "public_viewer": 403},
    "DELETE /api/dashboards/{id}/members/carol": {"anonymous": 401, "stranger": 403, "viewer": 403, "editor": 403, "owner": 200, "public_viewer": 403},
    "PUT /api/dashboards/{id}/sharing":        {"anonymous": 401, "stranger": 403, "viewer": 403, "editor": 403, "owner": 200, "public_viewer": 403},
    "DELETE /api/dashboards/{id}":             {"anonymous": 401, "stranger": 403, "viewer": 403, "editor": 403, "owner": 204, "public_viewer": 403},
    "op subscribe dashboard:{id}":             {"anonymous": "unauthenticated", "stranger": "forbidden", "viewer": "ok", "editor": "ok", "owner": "ok", "public_viewer": "ok"},
    "op presence dashboard:{id}":              {"anonymous": "unauthenticated", "stranger": "forbidden", "viewer": "ok", "editor": "ok", "owner": "ok", "public_viewer": "ok"},
    "op edit":                                 {"anonymous": "unauthenticated", "stranger": "forbidden", "viewer": "forbidden", "editor": "ok", "owner": "ok", "public_viewer": "forbidden"},
}
BODIES = {"PUT /api/dashboards/{id}/members/erin": {"role": "viewer"}, "PUT /api/dashboards/{id}/sharing": {"public": True}}


class World:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=30)

    async def rest(self, method: str, path: str, username: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.server.token(username)}"} if username else {}
        return await self.http.request(method, path, headers=headers, **kw)

    async def fresh(self, *, public: bool) -> str:
        r = await self.rest("POST", "/api/dashboards", "alice", json={"title": "cell"})
        dashboard_id = r.json()["id"]
        for name, role in (("bob", "editor"), ("carol", "viewer")):
            assert (await self.rest("PUT", f"/api/dashboards/{dashboard_id}/members/{name}", "alice", json={"role": role})).status_code == 200
        if public:
            assert (await self.rest("PUT", f"/api/dashboards/{dashboard_id}/sharing", "alice", json={"public": True})).status_code == 200
        return dashboard_id

    async def state(self, dashboard_id: str) -> tuple[int, Any, Any] | None:
        """What a refused call must not have changed: (version, members, public); None if gone."""
        r = await self.rest("GET", f"/api/dashboards/{dashboard_id}/members", "alice")
        if r.status_code == 404:
            return None
        snap = (await self.rest("GET", f"/api/dashboards/{dashboard_id}", "alice")).json()
        return snap["version"], r.json()["members"], snap["public"]


async def _anonymous_op(world: World, frame: dict) -> str:
    async with websockets.connect(world.server.ws_url) as ws:
        await ws.send(json.dumps({"id": 1, **frame}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        reply = reply["messages"][0] if reply.get("type") == "message_batch" else reply
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4001
    return reply["error"]["code"]


async def run_cell(world: World, action: str, principal: str, dashboard_id: str) -> tuple[Any, str]:
    """Perform ``action`` as ``principal``; returns (outcome, error message or '')."""
    username = USER_OF.get(principal)
    channel = f"dashboard:{dashboard_id}"
    if action.startswith("op "):
        _, name, *_ = action.split()
        frames = {"subscribe": {"op": "subscribe", "channel": channel},
                  "presence": {"op": "subscribe", "channel": channel},  # then presence, below
                  "edit": {"op": "edit", "dashboard_id": dashboard_id, "ops": EDIT}}
        if username is None:
            return await _anonymous_op(world, frames[name]), ""
        client = await world.server.connect(username)
        try:
            reply = await client.op(**frames[name])
            if reply["ok"] and name == "presence":
                reply = await client.op("presence", channel=channel, state={"editing": None, "color": "#336699"})
                if reply["ok"]:
                    assert username in {m["username"] for m in reply["data"]["members"]}
        finally:
            await client.close()
        return ("ok", "") if reply["ok"] else (reply["error"]["code"], reply["error"]["message"])
    method, path = action.split()
    response = await world.rest(method, path.replace("{id}", dashboard_id), username, json=BODIES.get(action))
    detail = response.json().get("detail", "") if response.status_code >= 400 else ""
    return response.status_code, str(detail)


@pytest.fixture
async def world(server_settings, monkeypatch):
    for name in ("carol", "dave", "erin"):
        monkeypatch.setitem(conftest.USERS, name, f"{name}-pw")
    server_settings.op_rate_per_s = 0
    async with run_server(server_settings) as server:
        w = World(server)
        try:
            yield w
        finally:
            await w.http.aclose()


async def test_role_matrix(world: World) -> None:
    failures = []
    for action, expected in MATRIX.items():
        for principal in PRINCIPALS:
            dashboard_id = await world.fresh(public=principal == "public_viewer")
            before = await world.state(dashboard_id)
            outcome, message = await run_cell(world, action, principal, dashboard_id)
            want = expected[principal]
            if outcome != want:
                failures.append(f"{action} as {principal}: got {outcome} ({message}), want {want}")
                continue
            if want in (401, 403, "forbidden", "unauthenticated"):
                assert message or principal == "anonymous", f"{action} as {principal}: a refusal without a reason"
                after = await world.state(dashboard_id)
                assert after == before, f"{action} as {principal} was refused but changed {before} -> {after}"
    assert not failures, "\n".join(failures)


async def test_list_shows_each_user_their_dashboards_with_their_role(world: World) -> None:
    private = await world.fresh(public=False)
    public = await world.fresh(public=True)
    for username, want in (("alice", {private: "owner", public: "owner"}), ("bob", {private: "editor", public: "editor"}),
                           ("carol", {private: "viewer", public: "viewer"}), ("dave", {public: "viewer"})):
        listed = (await world.rest("GET", "/api/dashboards", username)).json()["dashboards"]
        assert {d["id"]: d["role"] for d in listed} == want, username
    assert (await world.rest("GET", "/api/dashboards", None)).status_code == 401
    assert (await world.rest("GET", "/api/dashboards/d_ffffffffffff", "alice")).status_code == 404
