"""The small containers of livebi's uvicorn WebSocket protocol (transports/ws_protocol.py) keep
asyncio.Queue's and asyncio.Event's behaviour for what uvicorn does with them."""

from __future__ import annotations

import asyncio

import pytest

from livebi.transports.ws_protocol import Flag, Inbox, LeanWebSocketProtocol, protocol_class


async def test_inbox_is_first_in_first_out_and_wakes_its_reader() -> None:
    inbox = Inbox()
    assert inbox.empty() and inbox.qsize() == 0
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert inbox.qsize() == 2 and not inbox.empty()
    assert await inbox.get() == 1
    assert await inbox.get() == 2
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait(3)
    assert await asyncio.wait_for(reader, 1) == 3


async def test_inbox_reader_cancelled_keeps_the_items_and_other_readers() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not second.done(), "the other reader still waits"
    inbox.put_nowait("a")
    assert await asyncio.wait_for(second, 1) == "a"
    lone = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    lone.cancel()
    await asyncio.gather(lone, return_exceptions=True)
    inbox.put_nowait("b")
    assert await asyncio.wait_for(inbox.get(), 1) == "b"


async def test_flag_waits_until_set() -> None:
    flag = Flag(True)
    assert flag.is_set() and await flag.wait() is True
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    waiters[0].cancel()
    await asyncio.sleep(0)
    assert not waiters[1].done(), "one waiter cancelled does not wake or cancel the others"
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters[1:]), 1) == [True, True]
    flag.clear()
    flag.set()
    assert await asyncio.wait_for(flag.wait(), 1) is True


def test_the_server_uses_the_lean_protocol() -> None:
    from livebi.config import Settings
    from livebi.server import build_server

    assert protocol_class() is LeanWebSocketProtocol
    server = build_server(Settings(secret_key="x"), log_level="warning")
    assert server.config.ws is LeanWebSocketProtocol
