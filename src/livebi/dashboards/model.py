"""Dashboard state and the pure application of edit ops to it.

Like the hub, this is a pure core: snapshots and ops in, a new snapshot and the update records
out; no clock, no randomness, no I/O (the caller passes ``now`` and a widget id source). The
dashboard service around it takes the lock, loads, persists and publishes.

The rules, the model of server-authoritative multiplayer editors (Figma): the server applies
each op to the latest state in arrival order; a field's last writer wins; an op naming a widget
that no longer exists is refused (``not_found``), since a move or an edit of something another
user removed cannot be made to mean anything. An edit (1..50 ops) is atomic: if any op fails,
none of it is applied. Each applied op bumps the version by one and yields one
:class:`Update` - what is stored in the op log and published as ``dashboard_update``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Iterable, Mapping

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..protocol import (
    MAX_GRID_Y,
    AddWidget,
    DashboardOp,
    ErrorCode,
    MoveWidget,
    ProtocolError,
    RemoveWidget,
    ResizeWidget,
    UpdateDashboard,
    UpdateWidget,
    dumps,
    invalid_op,
)

#: Most widgets on one dashboard.
MAX_WIDGETS = 100
#: Largest snapshot (UTF-8 JSON bytes): the whole state is rewritten with every edit.
MAX_SNAPSHOT_BYTES = 1024 * 1024

_op_adapter: TypeAdapter[Any] = TypeAdapter(DashboardOp)


@dataclasses.dataclass(frozen=True)
class Update:
    """One applied op: the op log row and the ``dashboard_update`` publication's payload."""

    version: int
    update_type: str  # the op type (add_widget, ..., update_dashboard)
    data: dict[str, Any]  # add_widget: the whole widget; others: widget_id and the new values

    def record(self) -> dict[str, Any]:
        return {"version": self.version, "update_type": self.update_type, "data": self.data}


@dataclasses.dataclass(frozen=True)
class EditResult:
    snapshot: dict[str, Any]
    updates: tuple[Update, ...]


def new_dashboard(
    *, dashboard_id: str, title: str, description: str, owner: Mapping[str, str], now: str
) -> dict[str, Any]:
    """The snapshot of a new, empty dashboard at version 0 (values already validated)."""
    return {
        "id": dashboard_id,
        "title": title,
        "description": description,
        "owner": {"id": owner["id"], "username": owner["username"]},
        "public": False,
        "version": 0,
        "widgets": [],
        "created_at": now,
        "updated_at": now,
    }


def parse_ops(raw_ops: Iterable[Any]) -> list[BaseModel]:
    """Validate raw op dicts (models pass through); ``invalid_op`` names the op and field."""
    ops = []
    for index, raw in enumerate(raw_ops):
        if isinstance(raw, BaseModel):
            ops.append(raw)
            continue
        try:
            ops.append(_op_adapter.validate_python(raw))
        except ValidationError as exc:
            error = invalid_op(exc, f"invalid op {index}", skip=1)
            error.details = [{**d, "op_index": index} for d in error.details]
            raise error from None
    return ops


def apply_edit(
    snapshot: Mapping[str, Any], ops: Iterable[Any], *, now: str, new_widget_id: Callable[[], str]
) -> EditResult:
    """Apply ``ops`` in order to ``snapshot`` (not modified); all or nothing.

    Args:
        ops: op dicts as sent by clients, or op models already validated.
        now: ISO timestamp that becomes ``updated_at``.
        new_widget_id: returns a fresh ``w_<8 hex>`` id (retried on the rare collision).

    Raises:
        ProtocolError: ``invalid_op`` (a field out of bounds, too many widgets, a snapshot too
            large), ``not_found`` (a widget that was removed or never existed). ``details``
            carries ``op_index``. Nothing is applied then.
    """
    models = parse_ops(ops)
    if not models:
        raise ProtocolError(ErrorCode.invalid_op, "an edit needs at least one op")
    state = copy.deepcopy(dict(snapshot))
    updates = []
    for index, op in enumerate(models):
        try:
            update_type, data = _APPLY[type(op)](state, op, new_widget_id)
        except ProtocolError as exc:
            exc.details = {**(exc.details or {}), "op_index": index}
            raise
        state["version"] += 1
        updates.append(Update(state["version"], update_type, data))
    state["updated_at"] = now
    size = len(dumps(state).encode("utf-8"))
    if size > MAX_SNAPSHOT_BYTES:
        raise ProtocolError(
            ErrorCode.invalid_op,
            f"the dashboard would be {size} bytes; at most {MAX_SNAPSHOT_BYTES} are allowed",
        )
    return EditResult(state, tuple(updates))


# --- one function per op: mutate the working copy, return (update_type, data) ---------------------


def _widget(state: dict[str, Any], widget_id: str) -> dict[str, Any]:
    for widget in state["widgets"]:
        if widget["id"] == widget_id:
            return widget
    raise ProtocolError(
        ErrorCode.not_found,
        f"widget {widget_id} was removed (or never existed); reload the dashboard",
        details={"widget_id": widget_id},
    )


def _add(state: dict[str, Any], op: AddWidget, new_id: Callable[[], str]) -> tuple[str, dict[str, Any]]:
    widgets = state["widgets"]
    if len(widgets) >= MAX_WIDGETS:
        raise ProtocolError(ErrorCode.invalid_op, f"a dashboard holds at most {MAX_WIDGETS} widgets")
    taken = {w["id"] for w in widgets}
    widget_id = new_id()
    while widget_id in taken:
        widget_id = new_id()
    spec = op.widget.model_dump()
    if spec["y"] is None:  # below everything else
        spec["y"] = min(max((w["y"] + w["h"] for w in widgets), default=0), MAX_GRID_Y)
    widget = {"id": widget_id, **spec}
    widgets.append(widget)
    return "add_widget", copy.deepcopy(widget)


def _remove(state: dict[str, Any], op: RemoveWidget, new_id: Callable[[], str]) -> tuple[str, dict[str, Any]]:
    widget = _widget(state, op.widget_id)
    state["widgets"] = [w for w in state["widgets"] if w is not widget]
    return "remove_widget", {"widget_id": op.widget_id}


def _set(widget: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    widget.update(values)
    return {"widget_id": widget["id"], **copy.deepcopy(values)}


def _move(state: dict[str, Any], op: MoveWidget, new_id: Callable[[], str]) -> tuple[str, dict[str, Any]]:
    return "move_widget", _set(_widget(state, op.widget_id), {"x": op.x, "y": op.y})


def _resize(state: dict[str, Any], op: ResizeWidget, new_id: Callable[[], str]) -> tuple[str, dict[str, Any]]:
    return "resize_widget", _set(_widget(state, op.widget_id), {"w": op.w, "h": op.h})


def _update_widget(state: dict[str, Any], op: UpdateWidget, new_id: Callable[[], str]) -> tuple[str, dict[str, Any]]:
    values = op.fields.model_dump(include=op.fields.model_fields_set)
    return "update_widget", _set(_widget(state, op.widget_id), values)


def _update_dashboard(state: dict[str, Any], op: UpdateDashboard, new_id: Callable[[], str]) -> tuple[str, dict[str, Any]]:
    values = op.fields.model_dump(include=op.fields.model_fields_set)
    state.update(values)
    return "update_dashboard", dict(values)


_APPLY: dict[type, Callable[..., tuple[str, dict[str, Any]]]] = {
    AddWidget: _add,
    RemoveWidget: _remove,
    MoveWidget: _move,
    ResizeWidget: _resize,
    UpdateWidget: _update_widget,
    UpdateDashboard: _update_dashboard,
}
