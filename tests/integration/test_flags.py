"""Feature flags degrade cleanly."""

from __future__ import annotations

from livebi.protocol import CloseCode

from .conftest import run_server


async def test_progress_streaming_off_sends_only_the_outcome(server_settings) -> None:
    server_settings.progress_streaming = False
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        reply = await client.op("ask", question="total revenue by region")
        final = await client.until_final(reply["data"]["channel"])
        assert final["type"] == "result"
        assert [p["type"] for p in client.on(reply["data"]["channel"])] == ["result"]
        await client.close()


async def test_batching_off_sends_one_frame_per_message(server_settings) -> None:
    server_settings.batching = False
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        reply = await client.op("ask", question="total revenue by region")
        await client.until_final(reply["data"]["channel"])
        messages = len(client.on(reply["data"]["channel"])) + len(client.replies)
        assert client.frames == messages
        await client.close()


async def test_websocket_off_closes_with_4003(server_settings) -> None:
    server_settings.websocket = False
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        code, _ = await client.wait_closed()
        assert code == CloseCode.feature_disabled


async def test_batching_on_coalesces_a_replay_into_one_frame(live_server) -> None:
    client = await live_server.connect("alice")
    reply = await client.op("ask", question="total revenue by region")
    channel = reply["data"]["channel"]
    await client.until_final(channel)
    first = client.on(channel)[0]
    await client.close()
    again = await live_server.connect("alice")
    sub = await again.op("subscribe", channel=channel, since={"epoch": first["epoch"], "seq": 0})
    assert sub["data"]["recovered"] is True
    await again._wait_for(lambda: any(p["type"] == "result" for p in again.on(channel)))
    replayed = len(again.on(channel))
    assert replayed >= 5
    # The reply and every replayed publication were waiting together: one message_batch.
    assert again.frames == 1
    await again.close()
