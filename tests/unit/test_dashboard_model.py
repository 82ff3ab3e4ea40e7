"""Dashboard op application is pure: feed snapshots and ops, check the new state and updates."""

from __future__ import annotations

import copy
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livebi.dashboards.model import MAX_SNAPSHOT_BYTES, MAX_WIDGETS, apply_edit, new_dashboard
from livebi.protocol import MAX_EDIT_OPS, ErrorCode, ProtocolError


class Ids:
    """Deterministic widget ids: w_00000000, w_00000001, ..."""

    def __init__(self) -> None:
        self._count = itertools.count()

    def __call__(self) -> str:
        return f"w_{next(self._count):08x}"


@pytest.fixture
def ids() -> Ids:
    return Ids()


def blank() -> dict:
    return new_dashboard(dashboard_id="d_00000000000a", title="Sales", description="",
                         owner={"id": "u1", "username": "alice"}, now="2025-01-01T00:00:00+00:00")


def edit(snapshot: dict, ops: list, ids: Ids, now: str = "2025-01-02T00:00:00+00:00"):
    return apply_edit(snapshot, ops, now=now, new_widget_id=ids)


def add(title: str = "Revenue", **fields) -> dict:
    return {"type": "add_widget", "widget": {"title": title, **fields}}


def refused(snapshot: dict, ops: list, ids: Ids) -> ProtocolError:
    before = copy.deepcopy(snapshot)
    with pytest.raises(ProtocolError) as info:
        edit(snapshot, ops, ids)
    assert snapshot == before, "a refused edit must not touch the snapshot"
    return info.value


# -- applying ------------------------------------------------------------------------------------


def test_new_dashboard_is_empty_at_version_zero() -> None:
    d = blank()
    assert d["version"] == 0 and d["widgets"] == [] and d["public"] is False
    assert d["owner"] == {"id": "u1", "username": "alice"}


def test_add_widget_assigns_id_defaults_and_records_whole_widget(ids: Ids) -> None:
    result = edit(blank(), [add(sql="SELECT 1", chart={"type": "bar", "settings": {"stack": True}})], ids)
    (widget,) = result.snapshot["widgets"]
    assert widget == {
        "id": "w_00000000", "title": "Revenue", "question": None, "sql": "SELECT 1", "warehouse": None,
        "chart": {"type": "bar", "settings": {"stack": True}}, "x": 0, "y": 0, "w": 6, "h": 4,
        "refresh": {"interval_s": None, "on_data_change": False},
    }
    assert [u.record() for u in result.updates] == [{"version": 1, "update_type": "add_widget", "data": widget}]
    assert result.snapshot["version"] == 1
    assert result.snapshot["updated_at"] == "2025-01-02T00:00:00+00:00"


def test_added_widget_without_y_goes_below_the_others(ids: Ids) -> None:
    result = edit(blank(), [add(y=3, h=5), add(), add(y=0)], ids)
    assert [w["y"] for w in result.snapshot["widgets"]] == [3, 8, 0]


def test_widget_id_collision_is_retried(ids: Ids) -> None:
    first = edit(blank(), [add()], ids).snapshot
    again = Ids()  # starts at w_00000000 again: the first id is taken
    result = apply_edit(first, [add()], now="t", new_widget_id=again)
    assert [w["id"] for w in result.snapshot["widgets"]] == ["w_00000000", "w_00000001"]


def test_every_op_type_and_its_update_data(ids: Ids) -> None:
    d = edit(blank(), [add(), add("Orders")], ids).snapshot
    result = edit(d, [
        {"type": "move_widget", "widget_id": "w_00000000", "x": 6, "y": 2},
        {"type": "resize_widget", "widget_id": "w_00000000", "w": 3, "h": 8},
        {"type": "update_widget", "widget_id": "w_00000000",
         "fields": {"title": "Net revenue", "question": None, "chart": {"type": "line"}}},
        {"type": "update_dashboard", "fields": {"description": "Q3 numbers"}},
        {"type": "remove_widget", "widget_id": "w_00000001"},
    ], ids)
    records = [u.record() for u in result.updates]
    assert records == [
        {"version": 3, "update_type": "move_widget", "data": {"widget_id": "w_00000000", "x": 6, "y": 2}},
        {"version": 4, "update_type": "resize_widget", "data": {"widget_id": "w_00000000", "w": 3, "h": 8}},
        {"version": 5, "update_type": "update_widget", "data": {
            "widget_id": "w_00000000", "title": "Net revenue", "question": None,
            "chart": {"type": "line", "settings": {}}}},
        {"version": 6, "update_type": "update_dashboard", "data": {"description": "Q3 numbers"}},
        {"version": 7, "update_type": "remove_widget", "data": {"widget_id": "w_00000001"}},
    ]
    (widget,) = result.snapshot["widgets"]
    assert (widget["x"], widget["y"], widget["w"], widget["h"]) == (6, 2, 3, 8)
    assert widget["title"] == "Net revenue" and widget["chart"] == {"type": "line", "settings": {}}
    assert result.snapshot["description"] == "Q3 numbers" and result.snapshot["title"] == "Sales"
    assert result.snapshot["version"] == 7


def test_the_input_snapshot_is_never_modified(ids: Ids) -> None:
    d = edit(blank(), [add()], ids).snapshot
    before = copy.deepcopy(d)
    result = edit(d, [{"type": "update_widget", "widget_id": "w_00000000", "fields": {"chart": {"settings": {"a": [1]}}}}], ids)
    assert d == before
    result.snapshot["widgets"][0]["chart"]["settings"]["a"].append(2)
    assert result.updates[0].data["chart"]["settings"]["a"] == [1], "updates do not alias the snapshot"


# -- conflicts: server order, last writer wins per field ----------------------------------------


def test_conflicting_edits_last_writer_wins_per_field(ids: Ids) -> None:
    d = edit(blank(), [add()], ids).snapshot
    # Two users edit the same widget; the server applies their edits in arrival order.
    by_alice = [{"type": "update_widget", "widget_id": "w_00000000", "fields": {"title": "A", "sql": "SELECT 1"}}]
    by_bob = [{"type": "update_widget", "widget_id": "w_00000000", "fields": {"title": "B"}},
              {"type": "move_widget", "widget_id": "w_00000000", "x": 1, "y": 1}]
    after = edit(edit(d, by_alice, ids).snapshot, by_bob, ids).snapshot
    widget = after["widgets"][0]
    assert widget["title"] == "B", "the later title wins"
    assert widget["sql"] == "SELECT 1", "a field only the earlier edit set is kept"
    assert (widget["x"], widget["y"]) == (1, 1)
    assert after["version"] == 4


def test_move_and_resize_are_independent_fields(ids: Ids) -> None:
    d = edit(blank(), [add()], ids).snapshot
    after = edit(d, [{"type": "resize_widget", "widget_id": "w_00000000", "w": 12, "h": 2},
                     {"type": "move_widget", "widget_id": "w_00000000", "x": 11, "y": 0}], ids).snapshot
    w = after["widgets"][0]
    assert (w["x"], w["w"]) == (11, 12), "x + w past the grid is kept as written; the UI clamps the span"


def test_op_on_a_removed_widget_is_not_found_and_names_it(ids: Ids) -> None:
    d = edit(blank(), [add()], ids).snapshot
    d = edit(d, [{"type": "remove_widget", "widget_id": "w_00000000"}], ids).snapshot
    for op in ({"type": "move_widget", "widget_id": "w_00000000", "x": 0, "y": 0},
               {"type": "resize_widget", "widget_id": "w_00000000", "w": 1, "h": 1},
               {"type": "update_widget", "widget_id": "w_00000000", "fields": {"title": "x"}},
               {"type": "remove_widget", "widget_id": "w_00000000"}):
        exc = refused(d, [op], ids)
        assert exc.code is ErrorCode.not_found
        assert "widget w_00000000 was removed" in exc.message
        assert exc.details == {"widget_id": "w_00000000", "op_index": 0}


def test_an_edit_is_atomic(ids: Ids) -> None:
    d = edit(blank(), [add()], ids).snapshot
    exc = refused(d, [
        {"type": "update_dashboard", "fields": {"title": "Renamed"}},
        {"type": "remove_widget", "widget_id": "w_00000000"},
        {"type": "move_widget", "widget_id": "w_00000000", "x": 1, "y": 1},  # removed two ops ago
    ], ids)
    assert exc.code is ErrorCode.not_found and exc.details["op_index"] == 2


def test_an_op_may_use_a_widget_added_earlier_in_the_same_edit(ids: Ids) -> None:
    result = edit(blank(), [add(), {"type": "move_widget", "widget_id": "w_00000000", "x": 2, "y": 2}], ids)
    assert result.snapshot["widgets"][0]["x"] == 2


# -- validation: bounds and hostile values ------------------------------------------------------

BAD_OPS = [
    ("empty title", add("")),
    ("long title", add("t" * 201)),
    ("NUL in title", add("a\x00b")),
    ("lone surrogate", add("\ud800")),
    ("long question", add(question="q" * 501)),
    ("long sql", add(sql="s" * 20_001)),
    ("x past the grid", add(x=12)),
    ("negative y", add(y=-1)),
    ("y too far", add(y=10_001)),
    ("zero width", add(w=0)),
    ("too wide", add(w=13)),
    ("too tall", add(h=25)),
    ("width as string", add(w="3")),
    ("width as bool", add(w=True)),
    ("width as float", add(w=3.0)),
    ("huge int", add(x=2**70)),
    ("unknown widget field", add(owner="me")),
    ("caller chooses id", add(id="w_00000001")),
    ("title as list", add(["x"])),
    ("chart settings too big", add(chart={"settings": {"k": "v" * 5000}})),
    ("chart settings NaN", add(chart={"settings": {"k": float("nan")}})),
    ("chart settings not an object", add(chart={"settings": [1]})),
    ("chart extra field", add(chart={"type": "bar", "js": "alert(1)"})),
    ("refresh interval of zero", add(refresh={"interval_s": 0})),  # the server floors the rest (live_min_interval_s)
    ("refresh interval too long", add(refresh={"interval_s": 86_401})),
    ("unknown op type", {"type": "drop_table"}),
    ("op not an object", "add_widget"),
    ("op null", None),
    ("missing widget id", {"type": "move_widget", "x": 1, "y": 1}),
    ("bad widget id form", {"type": "remove_widget", "widget_id": "../../etc"}),
    ("move missing y", {"type": "move_widget", "widget_id": "w_00000000", "x": 1}),
    ("update nothing", {"type": "update_widget", "widget_id": "w_00000000", "fields": {}}),
    ("update title to null", {"type": "update_widget", "widget_id": "w_00000000", "fields": {"title": None}}),
    ("update unknown field", {"type": "update_widget", "widget_id": "w_00000000", "fields": {"x": 1}}),
    ("dashboard title empty", {"type": "update_dashboard", "fields": {"title": ""}}),
    ("dashboard description long", {"type": "update_dashboard", "fields": {"description": "d" * 2001}}),
    ("dashboard version", {"type": "update_dashboard", "fields": {"version": 99}}),
    ("dashboard public", {"type": "update_dashboard", "fields": {"public": True}}),
]


@pytest.mark.parametrize("name,op", BAD_OPS, ids=[n for n, _ in BAD_OPS])
def test_invalid_op_is_refused_with_a_clear_error(name: str, op, ids: Ids) -> None:
    d = edit(blank(), [add()], ids).snapshot
    exc = refused(d, [{"type": "update_dashboard", "fields": {"title": "first op is fine"}}, op], ids)
    assert exc.code is ErrorCode.invalid_op, (name, exc.code, exc.message)
    assert exc.message.startswith("invalid op 1"), exc.message
    assert all(detail["op_index"] == 1 for detail in exc.details)


def test_empty_edit_is_refused(ids: Ids) -> None:
    assert refused(blank(), [], ids).code is ErrorCode.invalid_op


def test_widget_count_is_bounded(ids: Ids) -> None:
    d = blank()
    for _ in range(MAX_WIDGETS // MAX_EDIT_OPS):
        d = edit(d, [add()] * MAX_EDIT_OPS, ids).snapshot
    assert len(d["widgets"]) == MAX_WIDGETS
    exc = refused(d, [add()], ids)
    assert exc.code is ErrorCode.invalid_op and f"at most {MAX_WIDGETS} widgets" in exc.message


def test_snapshot_size_is_bounded(ids: Ids) -> None:
    d = blank()
    big = "s" * 20_000
    with pytest.raises(ProtocolError) as info:
        for _ in range(MAX_WIDGETS):
            d = edit(d, [add(sql=big)], ids).snapshot
    assert info.value.code is ErrorCode.invalid_op and "bytes" in info.value.message
    assert len(json.dumps(d).encode()) <= MAX_SNAPSHOT_BYTES


# -- property: random sequences of valid and invalid ops ----------------------------------------

widget_ids = st.sampled_from([f"w_{i:08x}" for i in range(6)] + ["w_ffffffff", "bogus"])
small_ints = st.one_of(st.integers(-2, 30), st.just(10_001), st.booleans(), st.text(max_size=2), st.none())
texts = st.one_of(st.text(max_size=30), st.just("x" * 201), st.just("a\x00"), st.none(), st.integers())
random_op = st.one_of(
    st.builds(lambda t, x, y, w, h: {"type": "add_widget", "widget": {"title": t, "x": x, "y": y, "w": w, "h": h}},
              texts, small_ints, small_ints, small_ints, small_ints),
    st.builds(lambda i: {"type": "remove_widget", "widget_id": i}, widget_ids),
    st.builds(lambda i, x, y: {"type": "move_widget", "widget_id": i, "x": x, "y": y}, widget_ids, small_ints, small_ints),
    st.builds(lambda i, w, h: {"type": "resize_widget", "widget_id": i, "w": w, "h": h}, widget_ids, small_ints, small_ints),
    st.builds(lambda i, f: {"type": "update_widget", "widget_id": i, "fields": f}, widget_ids,
              st.dictionaries(st.sampled_from(["title", "question", "sql", "warehouse", "chart", "nope"]), texts, max_size=3)),
    st.builds(lambda f: {"type": "update_dashboard", "fields": f},
              st.dictionaries(st.sampled_from(["title", "description", "version"]), texts, max_size=2)),
    st.sampled_from([None, 1, "x", [], {}, {"type": None}]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(random_op, min_size=0, max_size=6), max_size=15))
def test_random_edits_only_raise_documented_errors_and_count_versions(edits) -> None:
    ids = Ids()
    d = blank()
    applied = 0
    for ops in edits:
        before = copy.deepcopy(d)
        try:
            result = apply_edit(d, ops, now="t", new_widget_id=ids)
        except ProtocolError as exc:
            assert exc.code in (ErrorCode.invalid_op, ErrorCode.not_found), exc.code
            assert d == before
            continue
        assert [u.version for u in result.updates] == list(range(d["version"] + 1, d["version"] + 1 + len(ops)))
        applied += len(ops)
        d = result.snapshot
        # the state stays well-formed: unique ids, bounds hold, JSON-serializable
        seen = [w["id"] for w in d["widgets"]]
        assert len(seen) == len(set(seen)) <= MAX_WIDGETS
        for w in d["widgets"]:
            assert 0 <= w["x"] <= 11 and 0 <= w["y"] <= 10_000 and 1 <= w["w"] <= 12 and 1 <= w["h"] <= 24
        json.dumps(d, allow_nan=False)
    assert d["version"] == applied
