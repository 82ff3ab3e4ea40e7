"""The garbage-collector tuning (livebi.gc_tuning) freezes long-lived objects, and a cycle among
frozen objects is never collected while frozen. So a closed connection must be freed by
reference counting alone: this checks it with real WebSocket clients on a real server."""

from __future__ import annotations

import asyncio
import gc

import websockets

from livebi.realtime.connection import Connection
from livebi.realtime.outbox import Outbox
from livebi.session import Session

from .conftest import WSClient, run_server
from .test_presence_scaling import connect_one_trip, public_dashboard


def alive(kinds: tuple[type, ...]) -> list[object]:
    return [o for o in gc.get_objects() if isinstance(o, kinds)]


async def test_closed_connections_are_freed_without_the_cyclic_collector(server_settings) -> None:
    server_settings.max_connections_per_user = 100
    async with run_server(server_settings) as server:
        services = server.app.state.services
        assert services.gc is not None and gc.get_freeze_count() > 0, "start-up froze what it built"
        assert gc.get_threshold()[0] == server_settings.gc_threshold0
        channel = f"dashboard:{await public_dashboard(server)}"
        clients = []
        for _ in range(20):
            client, reply = await connect_one_trip(server, ["system", channel])
            assert reply["ok"]
            clients.append(client)
        assert (await clients[0].op("ping"))["ok"]
        gc.collect()
        gc.freeze()  # what the periodic freeze does to connections that have lived a while
        kinds = (Connection, Session, Outbox)
        for client in clients:
            await client.close()
        for _ in range(200):
            if not services.connections.connections:
                break
            await asyncio.sleep(0.05)
        assert not services.connections.connections
        await asyncio.sleep(0.2)
        gc.disable()  # look before any collection could hide a cycle
        try:
            gc.unfreeze()
            leftover = alive(kinds)
            assert leftover == [], f"{len(leftover)} objects of closed connections wait for the cyclic collector"
        finally:
            gc.enable()
    assert gc.get_freeze_count() == 0 and gc.get_threshold()[0] == 700, "stop gave everything back"


async def test_the_http_protocol_that_hands_over_a_websocket_is_freed_without_the_cyclic_collector(server_settings) -> None:
    """uvicorn's httptools protocol and its parser reference each other; the upgrade to a
    WebSocket must not leave one such cycle per connection for the (rare, freezing) collector."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    async with run_server(server_settings) as server:
        token = await server.token("alice")  # HTTP requests of its own: before counting
        await asyncio.sleep(0.3)
        gc.collect()
        gc.disable()
        try:
            before = len(alive((HttpToolsProtocol,)))
            clients = []
            for _ in range(5):
                client = WSClient(await websockets.connect(server.ws_url))
                assert (await client.op("auth", token=token, subscribe=["system"]))["ok"]
                clients.append(client)
            await asyncio.sleep(0.1)
            left = len(alive((HttpToolsProtocol,))) - before
            assert left <= 0, f"{left} upgraded HTTP protocol objects wait for the cyclic collector"
        finally:
            gc.enable()
        for client in clients:
            await client.close()
