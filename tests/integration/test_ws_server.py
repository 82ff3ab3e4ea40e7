"""``/ws`` served by the ``websockets`` library's own server (``ws_server = "websockets"``,
transports/ws_server.py): advertised to browsers, allowed by the page's CSP, running the same
session code with direct frame writes, closed with 1012 on a graceful shutdown. The protocol
and limit tests (test_ws_bad_input, test_auth_hardening, test_ws_ask, test_presence_scaling,
test_delivery's slow consumer) run against it with ``LIVEBI_WS_SERVER=websockets``."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from livebi.protocol import CloseCode
from livebi.transports.ws_server import DirectWriter

from .conftest import free_port, run_server
from .test_ws_direct import publish_and_check, server_conn


@pytest.fixture
def ws_settings(server_settings):
    server_settings.ws_server = "websockets"
    server_settings.ws_port = free_port()
    return server_settings


async def test_advertised_allowed_and_served_with_direct_frames(ws_settings) -> None:
    port = ws_settings.ws_port
    async with run_server(ws_settings) as server:
        assert server.ws_url == f"ws://127.0.0.1:{port}/ws"
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/api/config")).json()["websocket_port"] == port
            csp = (await http.get("/")).headers["content-security-policy"]
        assert f"connect-src 'self' ws://*:{port} wss://*:{port};" in csp
        client = await server.connect("alice", compression=None)
        await client.op("ping")
        assert isinstance(server_conn(server)._direct, DirectWriter)
        await publish_and_check(server, client)
        # /ws on the HTTP port stays served (a proxy forwarding one port keeps working).
        asgi = await websockets.connect(f"ws://127.0.0.1:{ws_settings.port}/ws?ticket=" + await server.ticket("bob"))
        await asgi.send('{"op":"ping","id":7}')
        assert '"id":7' in (await asyncio.wait_for(asgi.recv(), 5)).replace(" ", "")
        await asgi.close()
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{port}/other")
        assert refused.value.response.status_code == 404
        await client.close()


async def test_compression_takes_the_awaiting_path(ws_settings) -> None:
    ws_settings.ws_compression = True
    async with run_server(ws_settings) as server:
        client = await server.connect("alice")  # the websockets client offers permessage-deflate
        await client.op("ping")
        assert not server_conn(server).direct
        await publish_and_check(server, client)
        await client.close()


async def test_graceful_shutdown_closes_with_1012(ws_settings) -> None:
    async with run_server(ws_settings) as server:
        ws = await websockets.connect(server.ws_url + "?ticket=" + await server.ticket("alice"))
        unauthenticated = await websockets.connect(server.ws_url)
    for sock in (ws, unauthenticated):
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(sock.recv(), 5)
        assert sock.close_code == CloseCode.service_restart


async def test_default_is_asgi_only(server_settings) -> None:
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/api/config")).json()["websocket_port"] is None
            assert "connect-src 'self';" in (await http.get("/")).headers["content-security-policy"]
