"""Presence is a pure book of members per channel: feed it joins, state changes and leaves,
check the one publication per channel that a flush folds them into."""

from __future__ import annotations

import pytest

from livebi.realtime.presence import PresenceBook


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def book(clock: Clock, max_members: int = 100) -> PresenceBook:
    return PresenceBook(max_members=max_members, count_interval_s=5.0, clock=clock)


def names(members: list[dict]) -> list[str]:
    return [m["username"] for m in members]


def test_a_burst_of_joins_updates_and_leaves_folds_into_one_publication(clock: Clock) -> None:
    b = book(clock)
    for i in range(50):
        clock.now += 0.01
        assert b.join(f"c{i}", "dashboard:d", user_id=f"u{i}", username=f"user{i}")
    assert not b.join("c0", "dashboard:d", user_id="u0", username="user0"), "a resubscription is no new join"
    b.set_state("c1", "dashboard:d", {"editing": "w1"})
    b.leave("c2", "dashboard:d")  # joined and left inside the interval: nobody hears of it
    out = b.flush()
    assert len(out) == 1
    channel, data = out[0]
    assert channel == "dashboard:d" and data["event"] == "changes" and data["count"] == 49
    assert len(data["joined"]) == 49 and "user2" not in names(data["joined"])
    assert names(data["joined"])[:2] == ["user0", "user1"], "in order of arrival"
    assert data["joined"][1]["state"] == {"editing": "w1"}, "the latest state rides on the join"
    assert data["updated"] == [] and data["left"] == []
    assert b.flush() == [], "nothing changed since"


def test_changes_after_a_flush_are_updates_and_leaves(clock: Clock) -> None:
    b = book(clock)
    b.join("c1", "dashboard:d", user_id="u1", username="alice")
    b.join("c2", "dashboard:d", user_id="u2", username="bob")
    b.flush()
    b.set_state("c1", "dashboard:d", {"editing": "w1"})
    b.set_state("c1", "dashboard:d", {"editing": "w2"})
    b.set_state("c2", "dashboard:d", {})  # unchanged: not an update
    b.leave("c2", "dashboard:d")
    b.join("c3", "dashboard:e", user_id="u1", username="alice")
    out = dict(b.flush())
    d = out["dashboard:d"]
    assert (d["event"], d["count"], d["joined"], d["left"]) == ("changes", 1, [], ["c2"])
    assert [(m["conn_id"], m["state"]) for m in d["updated"]] == [("c1", {"editing": "w2"})]
    assert names(out["dashboard:e"]["joined"]) == ["alice"]
    assert b.channels_of("c1") == {"dashboard:d"} and b.channels_of("c3") == {"dashboard:e"}


def test_leave_all_on_disconnect(clock: Clock) -> None:
    b = book(clock)
    b.join("c1", "dashboard:a", user_id="u1", username="alice")
    b.join("c1", "dashboard:b", user_id="u1", username="alice")
    b.join("c2", "dashboard:a", user_id="u2", username="bob")
    b.flush()
    assert b.leave_all("c1") == ["dashboard:a", "dashboard:b"]
    out = dict(b.flush())
    assert out["dashboard:a"]["left"] == ["c1"] and out["dashboard:a"]["count"] == 1
    assert out["dashboard:b"]["left"] == ["c1"] and out["dashboard:b"]["count"] == 0
    assert names([m.public() for m in b.members("dashboard:a")]) == ["bob"]
    assert b.members("dashboard:b") == [] and b.leave_all("c1") == []


def test_a_crowd_switches_to_counts_and_back_with_a_snapshot(clock: Clock) -> None:
    b = book(clock, max_members=4)
    for i in range(5):
        b.join(f"c{i}", "dashboard:d", user_id=f"u{i}", username=f"user{i}")
    assert b.counts_only("dashboard:d")
    assert b.flush() == [("dashboard:d", {"event": "count", "count": 5})], "the switch goes out at once"
    for i in range(5, 9):
        b.join(f"c{i}", "dashboard:d", user_id=f"u{i}", username=f"user{i}")
        b.set_state(f"c{i}", "dashboard:d", {"editing": "w"})
    assert b.flush() == [] and b.dirty == {"dashboard:d"}, "counts wait for their interval"
    clock.now += 5
    assert b.flush() == [("dashboard:d", {"event": "count", "count": 9})]
    b.leave("c8", "dashboard:d")
    b.join("c8", "dashboard:d", user_id="u8", username="user8")
    clock.now += 5
    assert b.flush() == [], "the count did not change"
    for i in range(3, 9):  # down to 3: still above half the limit
        b.leave(f"c{i}", "dashboard:d")
    assert b.flush() == [("dashboard:d", {"event": "count", "count": 3})]
    b.leave("c2", "dashboard:d")
    ((_, data),) = b.flush()  # back to members: at once, whatever the count interval
    assert data["event"] == "members" and data["count"] == 2 and names(data["members"]) == ["user0", "user1"]
    assert not b.counts_only("dashboard:d")
    b.leave("c1", "dashboard:d")
    ((_, data),) = b.flush()
    assert data["event"] == "changes" and data["left"] == ["c1"], "members were announced by the snapshot"
