"""The hub is a pure state machine: feed it calls, check what it says to send to whom."""

import json
import itertools

import pytest

from livebi.realtime.hub import Hub


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(clock: Clock) -> Hub:
    epochs = (f"e{i}" for i in itertools.count())
    return Hub(history_size=5, history_ttl=60, clock=clock, new_epoch=lambda: next(epochs))


def seqs(missed):
    assert all(json.loads(frame)["seq"] == seq for seq, frame in missed)
    return [seq for seq, _ in missed]


def test_publish_assigns_increasing_seq_per_channel_and_targets_subscribers(hub: Hub) -> None:
    hub.subscribe("c1", "query:a")
    hub.subscribe("c2", "query:a")
    hub.subscribe("c3", "query:b")
    d1 = hub.publish("query:a", "progress", {"p": 1})
    d2 = hub.publish("query:a", "progress", {"p": 2})
    d3 = hub.publish("query:b", "result", {})
    assert (d1.seq, d2.seq, d3.seq) == (1, 2, 1)
    assert sorted(d1.targets) == ["c1", "c2"]
    assert d3.targets == ("c3",)
    msg = json.loads(d2.frame)
    assert msg == {"channel": "query:a", "epoch": "e0", "seq": 2, "type": "progress", "ts": 1000.0, "data": {"p": 2}}


def test_frame_is_serialized_once_and_shared(hub: Hub) -> None:
    for i in range(3):
        hub.subscribe(f"c{i}", "system")
    d = hub.publish("system", "notification", {"x": "é"})
    assert isinstance(d.frame, str) and len(d.targets) == 3


def test_recovery_replays_missed_in_order(hub: Hub) -> None:
    hub.subscribe("c1", "ch")
    for i in range(4):
        hub.publish("ch", "t", {"i": i})
    hub.disconnect("c1")
    hub.publish("ch", "t", {"i": 4})
    res = hub.subscribe("c1", "ch", since=("e0", 2))
    assert res.recovered is True
    assert seqs(res.missed) == [3, 4, 5]
    assert res.seq == 5


def test_recovery_up_to_date_is_recovered_with_nothing_missed(hub: Hub) -> None:
    hub.publish("ch", "t", {})
    res = hub.subscribe("c1", "ch", since=("e0", 1))
    assert res.recovered is True and res.missed == ()


def test_recovery_fails_when_history_trimmed_by_count(hub: Hub) -> None:
    for i in range(10):
        hub.publish("ch", "t", {"i": i})
    res = hub.subscribe("c1", "ch", since=("e0", 2))  # history holds 6..10
    assert res.recovered is False and res.missed == ()
    res = hub.subscribe("c1", "ch", since=("e0", 5))  # 6..10 still there
    assert res.recovered is True and seqs(res.missed) == [6, 7, 8, 9, 10]


def test_recovery_fails_when_history_expired(hub: Hub, clock: Clock) -> None:
    hub.publish("ch", "t", {})
    hub.publish("ch", "t", {})
    clock.now += 61
    res = hub.subscribe("c1", "ch", since=("e0", 1))
    assert res.recovered is False


def test_recovery_fails_on_other_epoch_or_future_seq(hub: Hub) -> None:
    hub.publish("ch", "t", {})
    assert hub.subscribe("c1", "ch", since=("old", 1)).recovered is False
    assert hub.subscribe("c1", "ch", since=("e0", 7)).recovered is False


def test_forgotten_channel_gets_new_epoch(hub: Hub, clock: Clock) -> None:
    hub.publish("ch", "t", {})
    clock.now += 61
    assert hub.prune() == 1
    epoch, seq = hub.position("ch")
    assert epoch == "e1" and seq == 0


def test_prune_keeps_channels_with_subscribers(hub: Hub, clock: Clock) -> None:
    hub.subscribe("c1", "ch")
    clock.now += 1000
    assert hub.prune() == 0


def test_unsubscribe_and_disconnect(hub: Hub) -> None:
    hub.subscribe("c1", "a")
    hub.subscribe("c1", "b")
    assert hub.unsubscribe("c1", "a") is True
    assert hub.unsubscribe("c1", "a") is False
    assert hub.disconnect("c1") == ["b"]
    assert hub.publish("b", "t", {}).targets == ()
    assert hub.channels_of("c1") == frozenset()


def frame_size(hub: Hub, channel: str) -> int:
    return sum(len(f) for f in hub.history_frames(channel))


def test_history_is_bounded_in_bytes_per_channel(clock: Clock) -> None:
    hub = Hub(history_size=1000, history_ttl=600, history_bytes_per_channel=2000, clock=clock)
    for i in range(50):
        hub.publish("ch", "t", {"blob": "x" * 100, "i": i})
    assert frame_size(hub, "ch") <= 2000
    frames = [json.loads(f)["seq"] for f in hub.history_frames("ch")]
    assert frames == list(range(frames[0], 51)), "the newest are kept, oldest dropped, in order"
    epoch = hub.position("ch")[0]
    assert hub.subscribe("c", "ch", since=(epoch, 1)).recovered is False
    assert hub.subscribe("c", "ch", since=(epoch, frames[0] - 1)).recovered is True
    # One publication bigger than the whole budget is delivered but cannot be kept.
    delivery = hub.publish("ch", "t", {"blob": "y" * 5000})
    assert "c" in delivery.targets
    assert frame_size(hub, "ch") <= 2000
    assert hub.history_bytes == frame_size(hub, "ch")


def test_history_is_bounded_in_bytes_overall_oldest_first(clock: Clock) -> None:
    hub = Hub(history_size=1000, history_ttl=600, history_bytes_total=10_000, clock=clock)
    for i in range(100):
        hub.publish(f"query:{i % 7}", "t", {"blob": "x" * 200, "i": i})
    total = sum(frame_size(hub, f"query:{c}") for c in range(7))
    assert total == hub.history_bytes <= 10_000
    # The survivors are the most recent publications across all channels.
    kept = sorted(json.loads(f)["data"]["i"] for c in range(7) for f in hub.history_frames(f"query:{c}"))
    assert kept == list(range(100 - len(kept), 100))


def test_finished_channel_is_released_after_grace_once_unwatched(clock: Clock) -> None:
    hub = Hub(history_size=100, history_ttl=600, finished_grace=30, clock=clock)
    hub.subscribe("asker", "query:q")
    hub.publish("query:q", "progress", {})
    hub.publish("query:q", "result", {"rows": [1]}, final=True)
    clock.now += 100
    assert hub.prune() == 0, "kept while someone is subscribed"
    epoch = hub.position("query:q")[0]
    hub.disconnect("asker")
    clock.now += 20
    assert hub.prune() == 0
    res = hub.subscribe("asker", "query:q", since=(epoch, 1))  # came back within the grace
    assert res.recovered is True and [s for s, _ in res.missed] == [2]
    hub.unsubscribe("asker", "query:q")
    clock.now += 29
    assert hub.prune() == 0
    clock.now += 2
    assert hub.prune() == 1
    assert hub.history_bytes == 0
    assert hub.subscribe("late", "query:q", since=(epoch, 1)).recovered is False


def test_unfinished_channel_keeps_its_history_for_the_ttl(clock: Clock) -> None:
    hub = Hub(history_size=100, history_ttl=600, finished_grace=30, clock=clock)
    hub.subscribe("c", "dashboard:d")
    hub.publish("dashboard:d", "t", {})
    hub.disconnect("c")
    clock.now += 100
    assert hub.prune() == 0 and len(hub.history_frames("dashboard:d")) == 1


# Channels sequenced elsewhere (a Redis broker feeds the hub) ---------------------------------


def frame(seq: int, epoch: str = "R") -> str:
    return json.dumps({"channel": "c", "epoch": epoch, "seq": seq})


def test_follow_then_accept_delivers_in_order_and_drops_duplicates(hub: Hub) -> None:
    hub.follow("c", "R", 10)
    hub.subscribe("x", "c")
    assert hub.accept("c", "R", 10, frame(10)) is None  # seen before following
    d = hub.accept("c", "R", 11, frame(11))
    assert (d.epoch, d.seq, d.targets) == ("R", 11, ("x",))
    assert hub.accept("c", "R", 11, frame(11)) is None
    assert hub.position("c") == ("R", 11)


def test_accept_with_a_new_epoch_replaces_the_position_and_history(hub: Hub) -> None:
    hub.follow("c", "R", 0)
    for s in (1, 2, 3):
        hub.accept("c", "R", s, frame(s))
    d = hub.accept("c", "S", 1, frame(1, "S"))
    assert (d.epoch, d.seq) == ("S", 1)
    assert hub.subscribe("y", "c", since=("R", 2)).recovered is False
    assert hub.subscribe("z", "c", since=("S", 0)).recovered is True


def test_a_gap_restarts_local_history(hub: Hub) -> None:
    hub.follow("c", "R", 0)
    hub.accept("c", "R", 1, frame(1))
    assert hub.accept("c", "R", 4, frame(4)) is not None  # 2 and 3 never came: delivered anyway
    assert hub.covers("c", 3) and not hub.covers("c", 1)
    assert hub.subscribe("x", "c", since=("R", 1)).recovered is False


def test_older_history_fills_the_gap_before_local_history_without_duplicates(hub: Hub) -> None:
    hub.follow("c", "R", 3)  # this process follows from seq 3 on
    hub.accept("c", "R", 4, frame(4))
    hub.accept("c", "R", 5, frame(5))
    # the shared history read raced the live stream: it holds 2..6 (6 is not here yet)
    older = tuple((s, frame(s)) for s in range(2, 7))
    assert hub.subscribe("w", "c", since=("R", 0), older=older).recovered is False  # seq 1 is gone
    result = hub.subscribe("x", "c", since=("R", 2), older=older)
    assert result.recovered is True and seqs(result.missed) == [3, 4, 5] and result.seq == 5
    assert set(hub.accept("c", "R", 6, frame(6)).targets) == {"x", "w"}  # 6 comes live, once


def test_older_history_with_a_hole_is_not_a_recovery(hub: Hub) -> None:
    hub.follow("c", "R", 6)
    older = ((3, frame(3)), (5, frame(5)), (6, frame(6)))
    assert hub.subscribe("x", "c", since=("R", 2), older=older).recovered is False


def test_diverge_starts_a_local_epoch(hub: Hub) -> None:
    hub.follow("c", "R", 7)
    hub.diverge("c")
    d = hub.publish("c", "t", {})
    assert d.epoch != "R" and d.seq == 1
