"""Acknowledged edits survive ``kill -9`` of a real server process (SQLite and PostgreSQL stores).

The server is ``livebi serve`` in a subprocess. Editors send edits back to back; the process is
killed with SIGKILL mid-stream; a new process on the same store must hold every edit that was
acknowledged, in the snapshot and in the op log, and the op log replayed from version 0 must
give the snapshot.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from livebi.store import MetadataStore
from livebi.store.dashboards import DashboardStore

from .conftest import USERS, LiveServer, free_port
from .test_dashboards import apply_update

LIVEBI = str(Path(sys.executable).parent / "livebi")


class Process:
    """``livebi serve`` on a port of its own, with LIVEBI_* settings from the environment."""

    def __init__(self, tmp_path: Path, demo: Path, store_url: str) -> None:
        self.tmp_path = tmp_path
        self.demo = demo
        self.env = {**os.environ, "LIVEBI_DATA_DIR": str(tmp_path), "LIVEBI_SECRET_KEY": "durability",
                    "LIVEBI_STORE_URL": store_url, "LIVEBI_OP_RATE_PER_S": "0"}
        self.proc: subprocess.Popen | None = None

    def add_users(self) -> None:
        for name, password in USERS.items():
            subprocess.run([LIVEBI, "user", "add", name, "--password", password], env=self.env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def start(self) -> LiveServer:
        port = free_port()
        self.log = open(self.tmp_path / f"server-{port}.log", "w")
        self.proc = subprocess.Popen(
            [LIVEBI, "serve", "--warehouse", f"demo=duckdb:///{self.demo}", "--port", str(port), "--log-level", "warning"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(base + "/livez")).status_code == 200:
                        return LiveServer(base, f"ws://127.0.0.1:{port}/ws", None)
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {(self.tmp_path / self.log.name).read_text()[-2000:]}")
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return request.getfixturevalue("pg_database")


async def test_acknowledged_edits_survive_sigkill(tmp_path: Path, demo_duckdb: Path, store_url: str) -> None:
    process = Process(tmp_path, demo_duckdb, store_url)
    process.add_users()
    server = await process.start()
    try:
        headers = {"Authorization": f"Bearer {await server.token('alice')}"}
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            created = await http.post("/api/dashboards", json={"title": "durable"}, headers=headers)
            dashboard_id = created.json()["id"]
            assert (await http.put(f"/api/dashboards/{dashboard_id}/members/bob", json={"role": "editor"},
                                   headers=headers)).status_code == 200
        clients = [await server.connect(name) for name in ("alice", "bob", "alice", "bob")]
        acked: list[dict] = []

        async def editor(index: int, client) -> None:
            n = 0
            while True:
                n += 1
                ops = [{"type": "add_widget", "widget": {"title": f"c{index}-{n}"}},
                       {"type": "update_dashboard", "fields": {"description": f"c{index}-{n}"}}]
                try:
                    reply = await client.op("edit", dashboard_id=dashboard_id, ops=ops, timeout=10)
                except (ConnectionError, websockets.ConnectionClosed, asyncio.TimeoutError):
                    return  # the server is gone (before or while sending): never acknowledged
                assert reply["ok"], reply
                acked.append(reply["data"])

        tasks = [asyncio.create_task(editor(i, c)) for i, c in enumerate(clients)]
        while len(acked) < 40:
            await asyncio.sleep(0.02)
        process.kill()  # mid-stream: edits are in flight
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        for client in clients:
            await client.close()
    finally:
        if process.proc.poll() is None:
            process.kill()

    assert len(acked) >= 40
    server = await process.start()  # the same store, a new process
    try:
        headers = {"Authorization": f"Bearer {await server.token('alice')}"}
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            snapshot = (await http.get(f"/api/dashboards/{dashboard_id}", headers=headers)).json()
    finally:
        process.kill()

    meta = await MetadataStore.open(store_url)
    try:
        log = await DashboardStore(meta.engine).ops(dashboard_id)
    finally:
        await meta.close()
    by_version = {row["version"]: row["op"] for row in log}
    assert sorted(by_version) == list(range(1, snapshot["version"] + 1)), "the op log has a gap"
    for reply in acked:
        for applied in reply["applied"]:
            assert by_version.get(applied["version"]) == {"update_type": applied["update_type"], "data": applied["data"]}, \
                f"acknowledged version {applied['version']} is not in the op log as acknowledged"
    assert snapshot["version"] >= max(r["version"] for r in acked)
    widget_ids = {w["id"] for w in snapshot["widgets"]}
    for reply in acked:
        assert reply["applied"][0]["data"]["id"] in widget_ids, "an acknowledged widget is missing from the snapshot"
    # The op log replayed from the empty dashboard gives the snapshot.
    state = {"title": "durable", "description": "", "widgets": [], "version": 0}
    for version in sorted(by_version):
        apply_update(state, {**by_version[version], "version": version, "timestamp": None})
    assert state["widgets"] == snapshot["widgets"] and state["description"] == snapshot["description"]
