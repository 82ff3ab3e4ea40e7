import json

from livebi.realtime.outbox import Outbox


def test_single_frame_is_sent_as_is() -> None:
    box = Outbox(max_bytes=1000)
    box.put('{"a":1}')
    assert box.take() == ('{"a":1}', None)
    assert box.take() is None


def test_waiting_frames_become_one_batch_in_order() -> None:
    box = Outbox(max_bytes=10_000)
    for i in range(5):
        box.put(json.dumps({"seq": i}))
    batch = json.loads(box.take()[0])
    assert batch["type"] == "message_batch" and batch["batch_id"]
    assert [m["seq"] for m in batch["messages"]] == [0, 1, 2, 3, 4]
    assert box.take() is None and box.queued_bytes == 0


def test_batch_respects_count_and_byte_limits() -> None:
    box = Outbox(max_bytes=100_000, batch_max_messages=3, batch_max_bytes=10_000)
    for i in range(7):
        box.put(json.dumps({"seq": i}))
    sizes = []
    while (item := box.take()) is not None:
        msg = json.loads(item[0])
        sizes.append(len(msg["messages"]) if msg.get("type") == "message_batch" else 1)
    assert sizes == [3, 3, 1]
    box = Outbox(max_bytes=100_000, batch_max_bytes=25)
    for i in range(3):
        box.put(json.dumps({"seq": i, "pad": "x"}))  # ~21 bytes each
    assert json.loads(box.take()[0])["seq"] == 0


def test_batching_off_sends_frames_one_by_one() -> None:
    box = Outbox(max_bytes=10_000, batching=False)
    box.put("1")
    box.put("2")
    assert [box.take(), box.take(), box.take()] == [("1", None), ("2", None), None]


def test_overflow_is_reported_and_sticky() -> None:
    box = Outbox(max_bytes=10)
    assert box.put("12345678")
    assert not box.put("12345")
    assert box.overflowed
    box.take()
    assert not box.put("1")  # a slow consumer stays closed: it must reconnect and recover


def test_one_large_frame_fits_an_empty_queue() -> None:
    box = Outbox(max_bytes=10)
    assert box.put("x" * 50)


def test_a_batch_carries_the_event_id_of_its_last_frame() -> None:
    box = Outbox(max_bytes=10_000)
    box.put('{"seq":1}', "p1")
    box.put('{"reply":1}')
    box.put('{"seq":2}', "p2")
    frame, event_id = box.take()
    assert json.loads(frame)["type"] == "message_batch" and event_id == "p2"


def test_an_emptied_outbox_keeps_no_queue() -> None:
    """Thousands of idle connections each hold an outbox (issue 11): its deque (~760 bytes) is
    allocated while something waits and dropped once everything was taken, batched or not."""
    for batching in (True, False):
        box = Outbox(max_bytes=1000, batching=batching)
        assert box._frames is None
        box.put('{"a":1}')
        box.put('{"b":2}')
        while box.take() is not None:
            pass
        assert box._frames is None and len(box) == 0 and box.queued_bytes == 0
        assert box.put('{"c":3}') and box.take() == ('{"c":3}', None)


def test_a_single_waiting_frame_allocates_no_deque() -> None:
    """A fan-out queues one frame on each idle connection and writes it in the same loop
    iteration: that frame must not cost a deque (~760 bytes allocated and freed per delivery)."""
    box = Outbox(max_bytes=1000)
    assert box.put('{"a":1}', "p1")
    assert box._frames is None and len(box) == 1 and box.queued_bytes == 7
    assert box.take() == ('{"a":1}', "p1")
    assert box._frames is None and len(box) == 0 and box.queued_bytes == 0


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(st.one_of(st.tuples(st.just("put"), st.integers(1, 40)), st.just(("take", 0))), max_size=60),
    batching=st.booleans(),
)
def test_outbox_matches_a_plain_queue(ops, batching) -> None:
    """Whatever the mix of puts and takes: frames leave in order, each once, batches hold only
    what waited, bytes are accounted exactly, and overflow happens only past the bound with
    something already queued (a model: a plain list)."""
    box = Outbox(max_bytes=100, batching=batching, batch_max_messages=4, batch_max_bytes=60)
    model: list[str] = []
    sent: list[str] = []
    n = 0
    for op, size in ops:
        if op == "put":
            n += 1
            frame = '"' + str(n).rjust(size, "x") + '"'
            accepted = box.put(frame, f"id{n}")
            fits = not model or sum(map(len, model)) + len(frame) <= 100
            assert accepted == fits and box.overflowed == (not fits)
            if not accepted:
                assert box.put('"later"') is False, "an overflowed outbox takes nothing more"
                break
            model.append(frame)
        else:
            item = box.take()
            if not model:
                assert item is None
                continue
            frame, _event_id = item
            if frame.startswith('{"type":"message_batch"'):
                parts = json.loads(frame)["messages"]
                taken = [json.dumps(p) for p in parts]
            else:
                taken = [frame]
            assert taken == model[: len(taken)]
            del model[: len(taken)]
            sent += taken
        assert len(box) == len(model)
        assert box.queued_bytes == sum(map(len, model))
