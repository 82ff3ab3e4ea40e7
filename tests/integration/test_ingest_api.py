"""POST /api/tables/{table}/rows on a real server: auth, CSRF, errors, limits, the change signal,
and the demo's live simulator running inside the server."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest

from livebi.config import Settings
from livebi.demo.generate import DEMO_TODAY

from .conftest import LiveServer, run_server
from .test_ingest import order

ROWS = "/api/tables/orders/rows"


@pytest.fixture
def writable_settings(server_settings: Settings, demo_duckdb: Path, tmp_path: Path) -> Settings:
    path = tmp_path / "live.duckdb"
    shutil.copy(demo_duckdb, path)
    return server_settings.model_copy(update={
        "warehouses": {"demo": f"duckdb:///{path}"},
        "ingest_access": {"demo": ["alice"]},
        "ingest_max_rows": 100,
        "ingest_max_body_bytes": 64 * 1024,
    })


@pytest.fixture
async def server(writable_settings: Settings) -> AsyncIterator[LiveServer]:
    async with run_server(writable_settings) as live:
        yield live


async def post(server: LiveServer, user: str | None, body: Any = None, *, path: str = ROWS, **kw: Any) -> httpx.Response:
    headers = {**kw.pop("headers", {}), **({"Authorization": f"Bearer {await server.token(user)}"} if user else {})}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
        if body is not None:
            kw["json"] = body
        return await http.post(path, headers=headers, **kw)


async def count(server: LiveServer, where: str = "TRUE") -> int:
    client = await server.connect("alice")
    try:
        reply = await client.op("ask", sql=f"SELECT count(*) AS n FROM orders WHERE {where}")
        final = await client.until_final(reply["data"]["channel"])
        assert final["type"] == "result", final
        return final["data"]["rows"][0][0]
    finally:
        await client.close()


async def test_rows_posted_are_visible_to_questions_and_signalled(server: LiveServer) -> None:
    services = server.app.state.services
    before = await count(server)
    response = await post(server, "alice", {"rows": [order(800_001), order(800_002)]})
    assert response.status_code == 200, response.text
    assert response.json() == {"warehouse": "demo", "table": "orders", "inserted": 2}
    assert await count(server) == before + 2
    response = await post(server, "alice", {"rows": [order(800_003)]}, path=ROWS + "?warehouse=demo")
    assert response.status_code == 200, response.text
    assert list(services.live.last_changes) == [("demo", {"orders"}), ("demo", {"orders"})]


async def test_errors_are_clear_and_write_nothing(server: LiveServer) -> None:
    before = await count(server)
    cases = [
        ("alice", {"rows": [order(800_010), order(800_011, quantity="many")]}, ROWS, 400, "invalid_rows"),
        ("alice", {"rows": []}, ROWS, 400, "invalid_body"),
        ("alice", {"rows": [order(800_012)], "table": "x"}, ROWS, 400, "invalid_body"),
        ("alice", [order(800_013)], ROWS, 400, "invalid_body"),
        ("alice", {"rows": [order(800_014 + i) for i in range(101)]}, ROWS, 413, "too_large"),
        ("alice", {"rows": [order(800_200)]}, "/api/tables/nope/rows", 404, "unknown_table"),
        ("alice", {"rows": [order(800_201)]}, ROWS + "?warehouse=nope", 404, "unknown_warehouse"),
        ("alice", {"rows": [order(1)]}, ROWS, 409, "rows_rejected"),
        ("bob", {"rows": [order(800_202)]}, ROWS, 403, "forbidden"),
    ]
    for user, body, path, status, code in cases:
        response = await post(server, user, body, path=path)
        assert (response.status_code, response.json().get("code")) == (status, code), (path, body if len(str(body)) < 200 else "…", response.text)
        assert response.json()["detail"], response.text
    bad = await post(server, "alice", {"rows": [order(800_010), order(800_011, quantity="many")]})
    assert bad.json()["details"] == [{"row": 1, "column": "quantity", "message": "expected an integer, got a string"}]
    assert bad.json()["problems"] == 1
    not_json = await post(server, "alice", content=b"{rows: nope", headers={"Content-Type": "application/json"})
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_body")
    assert (await post(server, None, {"rows": [order(800_203)]})).status_code == 401
    assert await count(server) == before
    assert list(server.app.state.services.live.last_changes) == []


async def test_a_huge_body_is_refused_before_it_is_read(server: LiveServer) -> None:
    huge = b'{"rows": [' + b'{"order_id": 1},' * 10_000 + b'{"order_id": 2}]}'
    response = await post(server, "alice", content=huge, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (413, "too_large")

    async def chunks():  # no Content-Length: the stream is cut at the limit
        for _ in range(100):
            yield b" " * 4096

    response = await post(server, "alice", content=chunks(), headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (413, "too_large")
    # bob may not insert at all: refused without reading his body
    response = await post(server, "bob", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 403


async def test_cookie_sessions_need_the_csrf_header(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as browser:
        login = await browser.post("/api/login", json={"username": "alice", "password": "alice-pw"})
        assert login.status_code == 200
        without = await browser.post(ROWS, json={"rows": [order(800_300)]})
        assert without.status_code == 403 and "X-CSRF-Token" in without.text
        with_header = await browser.post(ROWS, json={"rows": [order(800_300)]},
                                         headers={"X-CSRF-Token": browser.cookies["livebi_csrf"]})
        assert with_header.status_code == 200, with_header.text
    assert await count(server, "order_id = 800300") == 1


async def test_concurrent_posts(server: LiveServer) -> None:
    before = await count(server)
    responses = await asyncio.gather(*(
        post(server, "alice", {"rows": [order(820_000 + batch * 100 + i) for i in range(20)]}) for batch in range(10)
    ))
    assert [r.status_code for r in responses] == [200] * 10
    assert await count(server) == before + 200
    assert len(server.app.state.services.live.last_changes) == 10


async def test_the_demo_simulator_runs_with_the_server_and_stops_with_it(writable_settings: Settings) -> None:
    settings = writable_settings.model_copy(update={"demo_live_rate": 20.0, "today": DEMO_TODAY,
                                                    "ingest_access": {"demo": ["demo"]}})
    live_today = f"order_date = DATE '{DEMO_TODAY}' AND created_at IS NOT NULL"
    async with run_server(settings) as server:
        for _ in range(100):
            arrived = await count(server, live_today)
            if arrived >= 10:
                break
            await asyncio.sleep(0.1)
        assert arrived >= 10
        assert server.app.state.services.live.last_changes[-1] == ("demo", {"orders"})
        simulator = server.app.state.services._simulator
    assert not simulator.running
    from livebi.warehouse.registry import open_warehouse

    wh = open_warehouse("demo", settings.warehouses["demo"])
    try:
        result = await wh.execute(f"SELECT count(*) FROM orders WHERE {live_today}", timeout=10, row_cap=1)
    finally:
        await wh.close()
    assert result.rows[0][0] == simulator.inserted > 0, "every order the simulator counted is in the file, and no more"
