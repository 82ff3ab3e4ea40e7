"""Pre-built frames written straight to the socket (transports/ws_direct.py), on each of
uvicorn's WebSocket implementations: publications arrive complete and in order, frames queued
together still leave as one message_batch, and the ASGI path takes over where direct writes
must not be used (compression negotiated, the setting off)."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import run_server


def server_conn(server, n: int = 1):
    conns = list(server.app.state.services.connections.connections.values())
    assert len(conns) == n
    return conns[0]


async def publish_and_check(server, client) -> None:
    services = server.app.state.services
    await client.op("subscribe", channel="system")
    for i in range(30):  # one at a time: each leaves on its own
        await services.publish("system", "notification", {"i": i})
        await asyncio.sleep(0.001)
    frames_before = client.frames
    for i in range(30, 60):  # in one go: queued in the same loop iteration
        await services.publish("system", "notification", {"i": i, "pad": "é" * 200})
    await client._wait_for(lambda: len([p for p in client.on("system") if p["type"] == "notification"]) == 60)
    got = [p["data"]["i"] for p in client.on("system") if p["type"] == "notification"]
    assert got == list(range(60))
    assert client.frames - frames_before < 30, "the burst was batched"
    seqs = [p["seq"] for p in client.on("system")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.mark.parametrize("ws", [None, "websockets-sansio", "websockets", "wsproto"])
async def test_direct_frames_on_each_uvicorn_implementation(server_settings, ws) -> None:
    """None: livebi's own protocol class (transports/ws_protocol.py), the default."""
    if ws == "wsproto":
        pytest.importorskip("wsproto")  # the bench extra (dev.sh installs it)
    async with run_server(server_settings, ws=ws) as server:
        client = await server.connect("alice", compression=None)
        await client.op("ping")
        assert server_conn(server).direct
        if ws is None:
            from livebi.transports.ws_protocol import LeanWebSocketProtocol

            proto = server_conn(server)._direct._proto  # uvicorn's protocol object for this socket
            assert isinstance(proto, LeanWebSocketProtocol)
            assert proto.request is None and proto.response is None, "the handshake objects were dropped"
        await publish_and_check(server, client)
        await client.close()


async def test_large_frames_use_the_long_length_forms(server_settings) -> None:
    async with run_server(server_settings) as server:
        client = await server.connect("alice", compression=None)
        await client.op("subscribe", channel="system")
        services = server.app.state.services
        for size in (100, 125, 126, 1000, 65_535, 70_000):
            await services.publish("system", "notification", {"pad": "x" * size})
            await asyncio.sleep(0.01)
        await client._wait_for(lambda: len([p for p in client.on("system") if p["type"] == "notification"]) == 6)
        assert [len(p["data"]["pad"]) for p in client.on("system") if p["type"] == "notification"] == [
            100, 125, 126, 1000, 65_535, 70_000]
        assert server_conn(server).direct
        await client.close()


async def test_compression_takes_the_asgi_path(server_settings) -> None:
    server_settings.ws_compression = True
    async with run_server(server_settings) as server:
        client = await server.connect("alice")  # offers permessage-deflate, the server accepts
        await client.op("ping")
        assert not server_conn(server).direct
        await publish_and_check(server, client)
        await client.close()


async def test_setting_off_takes_the_asgi_path(server_settings) -> None:
    server_settings.ws_direct_frames = False
    async with run_server(server_settings) as server:
        client = await server.connect("alice", compression=None)
        await client.op("ping")
        assert not server_conn(server).direct
        await publish_and_check(server, client)
        await client.close()
