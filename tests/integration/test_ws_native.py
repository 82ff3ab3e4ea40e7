"""``/ws`` served straight from livebi's WebSocket protocol (transports/ws_protocol.py), without
an ASGI scope or Starlette's wrapper (setting ``ws_native_upgrade``, on by default; issue 11:
a burst of connects is CPU-bound). The session code is the same as on the ASGI path; these
tests check the native path is the one taken, that it behaves as the ASGI one at the edges (the
handshake's reply, refusals, closing, paths it does not own), and that turning it off gives
the ASGI path back."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from livebi.transports.ws_protocol import LeanWebSocketProtocol

from .conftest import run_server


def protocols(server) -> list:
    return [p for p in server.server.server_state.connections if isinstance(p, LeanWebSocketProtocol)]


@pytest.mark.parametrize("native", [True, False])
async def test_ws_on_the_native_path_and_off_it(server_settings, native) -> None:
    server_settings.ws_native_upgrade = native
    async with run_server(server_settings) as server:
        client = await server.connect("alice", compression=None)
        await client.op("subscribe", channel="system")
        (proto,) = protocols(server)
        assert proto.native is native
        assert (getattr(proto, "scope", None) is None) is native, "no ASGI scope on the native path"
        services = server.app.state.services
        for i in range(20):
            await services.publish("system", "notification", {"i": i})
        await client._wait_for(lambda: len([p for p in client.on("system") if p["type"] == "notification"]) == 20)
        conn = next(iter(services.connections.connections.values()))
        assert conn.direct, "pre-built frames on both paths"
        # Closing from our side (revocation, shutdown) reaches the client with the code.
        await conn.close(4001, "revoked")
        code, reason = await client.wait_closed()
        assert (code, reason) == (4001, "revoked")
        await asyncio.sleep(0.1)
        assert protocols(server) == [], "the socket is gone on the server too"


async def test_native_path_refuses_as_the_asgi_path_does(server_settings) -> None:
    async with run_server(server_settings) as server:
        token = await server.token("alice")
        # A token in the URL: an error reply naming tickets, then 4001.
        async with websockets.connect(server.ws_url + "?token=" + token) as ws:
            reply = await asyncio.wait_for(ws.recv(), 10)
            assert "ticket" in reply
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 4001
        # A first frame that is not an auth op: 4001.
        async with websockets.connect(server.ws_url) as ws:
            await ws.send('{"op":"ping","id":1}')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 4001
        # A ticket works, and the 101 carries the server's default headers as on the ASGI path.
        ticket = await server.ticket("alice")
        async with websockets.connect(server.ws_url + "?ticket=" + ticket) as ws:
            assert ws.response.status_code == 101
            assert "date" in {k.lower() for k in ws.response.headers}
            await ws.send('{"op":"ping","id":7}')
            assert '"id":7' in await asyncio.wait_for(ws.recv(), 10)


async def test_other_paths_and_plain_http_are_not_taken_by_the_native_path(server_settings) -> None:
    async with run_server(server_settings) as server:
        # Another WebSocket path goes through the app (no such route: refused), never the session.
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(server.ws_url.replace("/ws", "/ws2")):
                pass
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/health")).status_code == 200
            assert (await http.get("/ws")).status_code in (404, 405)


async def test_the_native_accept_log_line_masks_the_ticket(server_settings, caplog) -> None:
    """The access line for an accepted WebSocket names its path; a ticket in it is a credential."""
    import logging

    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not propagate to the root
    async with run_server(server_settings) as server:
        caplog.set_level(logging.INFO, logger="uvicorn.error")  # after uvicorn set its own level
        uvicorn_log.addHandler(caplog.handler)
        try:
            ticket = await server.ticket("alice")
            async with websockets.connect(server.ws_url + "?ticket=" + ticket) as ws:
                await ws.send('{"op":"ping","id":1}')
                await asyncio.wait_for(ws.recv(), 10)
        finally:
            uvicorn_log.removeHandler(caplog.handler)
    accepted = [r.getMessage() for r in caplog.records if "[accepted]" in r.getMessage()]
    assert accepted, "the accept is logged at INFO as on the ASGI path"
    assert all(ticket not in line for line in accepted) and any("ticket=***" in line for line in accepted)
