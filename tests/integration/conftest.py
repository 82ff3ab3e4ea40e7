"""A real livebi server on loopback (uvicorn in the test's event loop) and a small WS client."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
import websockets

from livebi.server import build_server
from livebi.auth import hash_password
from livebi.config import Settings
from livebi.store import MetadataStore

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    ws_url: str
    app: Any
    tokens: dict[str, str] = field(default_factory=dict)
    #: the uvicorn server (its ``server_state`` holds the protocol objects)
    server: Any = None

    async def token(self, username: str) -> str:
        if username not in self.tokens:
            async with httpx.AsyncClient(base_url=self.base_url) as http:
                r = await http.post("/api/login", json={"username": username, "password": USERS[username]})
                r.raise_for_status()
                self.tokens[username] = r.json()["token"]
        return self.tokens[username]

    async def ticket(self, username: str) -> str:
        """A fresh single-use ticket for /ws?ticket= or /sse?ticket= (tokens stay out of URLs)."""
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            r = await http.post("/api/ticket", headers={"Authorization": f"Bearer {await self.token(username)}"})
            r.raise_for_status()
            return r.json()["ticket"]

    async def connect(self, username: str | None = "alice", **kw: Any) -> "WSClient":
        url = self.ws_url
        if username:
            url += "?ticket=" + await self.ticket(username)
        ws = await websockets.connect(url, max_size=None, **kw)
        return WSClient(ws)


class WSClient:
    """Minimal protocol client for tests: ops with replies, publications in arrival order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._next_id = 0
        self.replies: dict[int | None, dict] = {}
        self.null_replies: list[dict] = []
        self.publications: list[dict] = []
        self.frames = 0
        self._event = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed: tuple[int | None, str] | None = None

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames += 1
                msg = json.loads(raw)
                items = msg["messages"] if msg.get("type") == "message_batch" else [msg]
                for item in items:
                    if "ok" in item:
                        if item.get("id") is None:
                            self.null_replies.append(item)
                        self.replies[item.get("id")] = item
                    else:
                        self.publications.append(item)
                self._event.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = (self.ws.close_code, self.ws.close_reason)
            self._event.set()

    async def _wait_for(self, predicate, timeout: float = 20.0):
        async def loop():
            while True:
                value = predicate()
                if value:
                    return value
                if self.closed is not None:
                    value = predicate()
                    if value:
                        return value
                    raise ConnectionError(f"closed {self.closed}")
                self._event.clear()
                await self._event.wait()

        return await asyncio.wait_for(loop(), timeout)

    async def send_raw(self, raw: str | bytes) -> None:
        await self.ws.send(raw)

    async def op(self, op: str, timeout: float = 20.0, **fields: Any) -> dict:
        self._next_id += 1
        op_id = self._next_id
        await self.ws.send(json.dumps({"id": op_id, "op": op, **fields}))
        return await self._wait_for(lambda: self.replies.get(op_id), timeout)

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        await asyncio.wait_for(self._reader, timeout)
        return self.closed

    def on(self, channel: str) -> list[dict]:
        return [p for p in self.publications if p["channel"] == channel]

    async def until_final(self, channel: str, timeout: float = 30.0) -> dict:
        """Wait for the result or error publication of a query channel."""
        return await self._wait_for(
            lambda: next((p for p in self.on(channel) if p["type"] in ("result", "error")), None), timeout
        )

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def _add_users(store_url: str) -> None:
    store = await MetadataStore.open(store_url)
    try:
        for name, pw in USERS.items():
            if await store.get_user(username=name) is None:
                await store.add_user(name, hash_password(pw))
    finally:
        await store.close()


@pytest.fixture
def server_settings(tmp_path: Path, demo_duckdb: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        warehouses={"demo": f"duckdb:///{demo_duckdb}"},
        store_url=f"sqlite:///{tmp_path / 'meta.db'}",
        secret_key="test-secret",
        port=free_port(),
    )


@pytest.fixture
async def live_server(server_settings: Settings) -> AsyncIterator[LiveServer]:
    async with run_server(server_settings) as server:
        yield server


import contextlib  # noqa: E402


@contextlib.asynccontextmanager
async def run_server(settings: Settings, *, ws: str | None = None) -> AsyncIterator[LiveServer]:
    """``ws``: one of uvicorn's WebSocket implementations instead of its default."""
    await _add_users(settings.resolved_store_url())
    if settings.ws_server == "websockets" and not settings.ws_port:
        settings.ws_port = free_port()  # LIVEBI_WS_SERVER=websockets runs these tests against it
    server = build_server(settings, log_level="warning")
    if ws is not None:
        server.config.ws = ws
    app = server.config.app
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.025)
    else:
        raise RuntimeError("server did not start")
    try:
        ws_port = settings.websockets_port() or settings.port
        yield LiveServer(f"http://127.0.0.1:{settings.port}", f"ws://127.0.0.1:{ws_port}/ws", app, server=server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
