"""Fair admission to a warehouse: the pure rule fed data, then the asyncio wrapper."""

from __future__ import annotations

import asyncio

import pytest

from livebi.warehouse.admission import AdmissionState, FairQueue


def test_admits_up_to_slots_and_per_user() -> None:
    state = AdmissionState(slots=3, per_user=2)
    assert state.request("a", 1) and state.request("a", 2)
    assert not state.request("a", 3), "a third query of one user waits even with a free slot"
    assert state.request("b", 4), "another user takes the free slot at once"
    assert not state.request("c", 5), "all slots busy"
    assert state.running == 3 and state.waiting == 2


def test_waiting_users_are_served_round_robin() -> None:
    state = AdmissionState(slots=1, per_user=1)
    assert state.request("heavy", "h0")
    for i in range(1, 6):
        assert not state.request("heavy", f"h{i}")
    assert not state.request("victim", "v1")
    # The victim asked last, but has not been served lately: it is next in line.
    assert state.position("victim", "v1") == 0
    assert state.position("heavy", "h1") == 1
    assert state.release("heavy") == [("victim", "v1")]
    assert state.release("victim") == [("heavy", "h1")]
    assert state.release("heavy") == [("heavy", "h2")]


def test_users_take_turns_least_recently_served_first() -> None:
    state = AdmissionState(slots=1, per_user=1)
    assert state.request("a", "a0")
    for user in ("a", "b", "c"):
        for i in range(1, 3):
            state.request(user, f"{user}{i}")
    order = []
    user = "a"
    for _ in range(6):
        ((user, ticket),) = state.release(user)
        order.append(ticket)
    assert order == ["b1", "c1", "a1", "b2", "c2", "a2"]
    assert state.release(user) == [] and state.running == 0


def test_two_attackers_cannot_hold_every_slot() -> None:
    state = AdmissionState(slots=8, per_user=2)
    for attacker in ("x", "y"):
        for i in range(4):
            state.request(attacker, f"{attacker}{i}")
    assert state.running == 4 and state.waiting == 4
    assert state.request("victim", "v"), "the victim runs at once"


def test_release_admits_only_eligible_users() -> None:
    state = AdmissionState(slots=2, per_user=1)
    assert state.request("a", 1) and state.request("b", 2)
    assert not state.request("a", 3)
    assert not state.request("c", 4)
    # b finishes: a is still at its limit, so c is admitted although a queued first.
    assert state.release("b") == [("c", 4)]
    assert state.release("a") == [("a", 3)]


def test_withdraw_and_position() -> None:
    state = AdmissionState(slots=1, per_user=1)
    state.request("a", 1)
    state.request("a", 2)
    state.request("b", 3)
    state.request("a", 4)
    # a was served most recently, so b (never served) goes first
    assert state.position("b", 3) == 0
    assert state.position("a", 2) == 1
    assert state.position("a", 4) == 2
    assert state.withdraw("a", 2)
    assert not state.withdraw("a", 2)
    assert state.position("a", 4) == 1
    assert state.position("a", 1) is None  # running, not waiting
    with pytest.raises(ValueError):
        state.release("nobody")


async def test_fair_queue_reports_position_and_serves_in_turn() -> None:
    queue = FairQueue(slots=1, per_user=1, report_interval=0.01)
    order: list[str] = []
    reports: list[int] = []
    gate = asyncio.Event()

    async def query(user: str, name: str, hold: bool = False, on_wait=None) -> None:
        async with queue.slot(user, on_wait):
            order.append(name)
            if hold:
                await gate.wait()

    first = asyncio.create_task(query("heavy", "h0", hold=True))
    await asyncio.sleep(0)
    heavy = [asyncio.create_task(query("heavy", f"h{i}")) for i in range(1, 4)]
    await asyncio.sleep(0)
    victim = asyncio.create_task(query("victim", "v", on_wait=reports.append))
    await asyncio.sleep(0.05)
    assert reports and reports[-1] == 0
    gate.set()
    await asyncio.gather(first, *heavy, victim)
    assert order[:3] == ["h0", "v", "h1"]
    assert queue.state.running == 0 and queue.state.waiting == 0


async def test_cancel_while_waiting_leaves_the_queue() -> None:
    queue = FairQueue(slots=1, per_user=1)
    gate = asyncio.Event()

    async def holder() -> None:
        async with queue.slot("a"):
            await gate.wait()

    async def waiter() -> None:
        async with queue.slot("b"):
            pass

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    assert queue.state.waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue.state.waiting == 0
    gate.set()
    await held
    assert queue.state.running == 0
    async with queue.slot("c"):
        assert queue.state.running == 1


async def test_cancel_in_the_instant_of_admission_gives_the_slot_back() -> None:
    queue = FairQueue(slots=1, per_user=1)
    release = asyncio.Event()

    async def holder() -> None:
        async with queue.slot("a"):
            await release.wait()

    async def waiter() -> None:
        async with queue.slot("b"):
            await asyncio.sleep(10)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    release.set()
    await held  # b is admitted (its future resolved) but has not resumed yet
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue.state.running == 0 and queue.state.waiting == 0
