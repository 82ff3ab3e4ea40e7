"""Alerts: users' conditions on widget values, checked after every refresh, notified once per
crossing.

- ``create``/``list_for``/``delete`` for a user: creating one needs at least the viewer role on
  the dashboard (the widget must exist on it, and the user must be allowed on the widget's
  warehouse when it names one); a user has at most ``max_per_user`` alerts.
- :meth:`AlertService.on_refresh` is called by the live service after every successful refresh of
  a widget with the result. Each alert on that widget is evaluated (:mod:`.alerts`, pure); a new
  state is stored first, by compare-and-set, so a crossing is seen by exactly one refresh even
  when several race, on this process or on several sharing a store (:class:`AlertStore`); then,
  when it fired and its user may still view the dashboard (and query the warehouse the result
  came from), a ``notification`` goes to ``user:<id>``. A user who lost access gets nothing;
  the state still moves, so they are not flooded with old crossings if access comes back.
- **Keep-alive**: the live service refreshes only dashboards someone watches, but an alert must
  be checked while nobody looks. The service calls the injected ``keep_alive(dashboard_id, on)``
  with ``on=True`` for every dashboard with alerts when it starts and when a dashboard gets its
  first alert, ``False`` when its last alert is deleted; :meth:`AlertService.watched` says the
  same (dashboard id -> widget ids with alerts). This bookkeeping is per process: alerts made
  or deleted through another node sharing the store are picked up by :meth:`resync`, which a
  cluster's nodes run every ``alert_interval_s`` (with leases, only one node refreshes).
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import math
import secrets
from typing import Any, Awaitable, Callable

from ..auth import User
from ..permissions import WarehouseAccess, dashboard_role, require_dashboard_role
from ..protocol import ErrorCode, ProtocolError
from ..store.alerts import AlertStore
from ..store.dashboards import DashboardStore
from .alerts import AGGREGATES, OPS, column_index, condition_text, evaluate, message, value_of

log = logging.getLogger(__name__)

#: publish(channel, type, data)
Publish = Callable[..., Awaitable[Any]]
#: keep_alive(dashboard_id, on): keep refreshing a dashboard nobody watches (on) or stop (off);
#: may return an awaitable.
KeepAlive = Callable[[str, bool], Any]

MAX_COLUMN_CHARS = 200
MAX_LABEL_CHARS = 200


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes: they were stored as UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def new_alert_id() -> str:
    return "a_" + secrets.token_hex(6)


def _invalid(field: str, message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.invalid_op, f"{field}: {message}", details=[{"field": field, "message": message}])


def public(row: dict[str, Any]) -> dict[str, Any]:
    """An alert as the API shows it."""
    return {
        "id": row["id"], "dashboard_id": row["dashboard_id"], "widget_id": row["widget_id"],
        "column": row["column"], "aggregate": row["aggregate"], "op": row["op"], "threshold": row["threshold"],
        "label": row["label"], "state": row["state"],
        "condition": condition_text(row["op"], row["threshold"], column=row["column"], aggregate=row["aggregate"]),
        "created_at": _iso(row["created_at"]), "last_fired_at": _iso(row["last_fired_at"]),
    }


class AlertService:
    """Alerts for the transports (every method checks the caller) and for the live service
    (:meth:`on_refresh`).

    Args:
        store: the alerts repository.
        publish: ``publish(channel, type, data)`` of the services.
        dashboards: the dashboard repository (roles, widgets).
        keep_alive: see the module docstring; None: nobody to tell.
        max_per_user: alerts one user may have.
        warehouse_access: the ``warehouse_access`` rules (None: every warehouse open).
        on_internal_error: called with ``"alerts"`` when evaluating an alert raised (a bug or
            the store failing); the error is logged with its traceback and the other alerts go on.
    """

    def __init__(
        self, store: AlertStore, publish: Publish, dashboards: DashboardStore, *,
        keep_alive: KeepAlive | None = None, max_per_user: int = 100,
        warehouse_access: WarehouseAccess | None = None, on_internal_error: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._publish = publish
        self._dashboards = dashboards
        self._keep_alive = keep_alive
        self.max_per_user = max_per_user
        self._access = warehouse_access
        self._on_internal_error = on_internal_error
        self._watched: dict[str, set[str]] = {}
        #: on_widgets_changed(dashboard_id): which of its widgets have alerts changed (not the
        #: first or last one: keep_alive says those); the live service replans the dashboard.
        self.on_widgets_changed: Callable[[str], Awaitable[None]] | None = None

    # Keep-alive ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load which widgets have alerts and ask to keep their dashboards refreshing."""
        for dashboard_id, widgets in (await self.store.widgets()).items():
            for widget_id in widgets:
                await self._watch(dashboard_id, widget_id)

    async def resync(self) -> None:
        """Alerts made or deleted through other nodes sharing the store: watch what it has now
        (several nodes call this every so often; one node learns of its own alerts at once)."""
        current = await self.store.widgets()
        for dashboard_id, widgets in current.items():
            for widget_id in widgets:
                await self._watch(dashboard_id, widget_id)
        for dashboard_id, widgets in list(self._watched.items()):
            for widget_id in list(widgets):
                if widget_id not in current.get(dashboard_id, ()):
                    await self._unwatch(dashboard_id, widget_id)

    def watched(self) -> dict[str, set[str]]:
        """dashboard id -> ids of its widgets that have alerts (as this process knows)."""
        return {dashboard_id: set(widgets) for dashboard_id, widgets in self._watched.items()}

    async def _watch(self, dashboard_id: str, widget_id: str) -> None:
        first = dashboard_id not in self._watched
        added = widget_id not in self._watched.get(dashboard_id, ())
        self._watched.setdefault(dashboard_id, set()).add(widget_id)
        if first:
            await self._tell(dashboard_id, True)
        elif added and self.on_widgets_changed is not None:
            await self.on_widgets_changed(dashboard_id)

    async def _unwatch(self, dashboard_id: str, widget_id: str) -> None:
        widgets = self._watched.get(dashboard_id)
        if widgets is None or widget_id not in widgets:
            return
        widgets.discard(widget_id)
        if not widgets:
            del self._watched[dashboard_id]
            await self._tell(dashboard_id, False)
        elif self.on_widgets_changed is not None:
            await self.on_widgets_changed(dashboard_id)

    async def _tell(self, dashboard_id: str, on: bool) -> None:
        if self._keep_alive is not None:
            outcome = self._keep_alive(dashboard_id, on)
            if inspect.isawaitable(outcome):
                await outcome

    # For users -------------------------------------------------------------------------------

    async def create(
        self, user: User, *, dashboard_id: str, widget_id: str, op: str, threshold: float,
        column: str | None = None, aggregate: str | None = None, label: str | None = None,
    ) -> dict[str, Any]:
        """Create an alert of ``user`` on a widget; returns it as :func:`public` shows it.

        Raises:
            ProtocolError: ``invalid_op`` (a bad field, named; or the user has
                ``max_per_user`` alerts), ``not_found`` (no such dashboard or widget),
                ``forbidden`` (the user may not view the dashboard or query its warehouse).
        """
        aggregate = aggregate or "last"
        if op not in OPS:
            raise _invalid("op", f"must be one of {', '.join(OPS)}")
        if aggregate not in AGGREGATES:
            raise _invalid("aggregate", f"must be one of {', '.join(AGGREGATES)}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise _invalid("threshold", "must be a finite number")
        if column is not None and not 1 <= len(column) <= MAX_COLUMN_CHARS:
            raise _invalid("column", f"must be 1 to {MAX_COLUMN_CHARS} characters (or null: the first numeric column)")
        if label is not None and len(label) > MAX_LABEL_CHARS:
            raise _invalid("label", f"must be at most {MAX_LABEL_CHARS} characters")
        row = await self._dashboards.get(dashboard_id, user_id=user.id)
        if row is None:
            raise ProtocolError(ErrorCode.not_found, f"no dashboard {dashboard_id!r}")
        role = dashboard_role(user_id=user.id, owner_id=row["owner_id"], member_role=row["member_role"],
                              public=row["snapshot"]["public"])
        require_dashboard_role(role, "viewer", dashboard_id=dashboard_id, action="set an alert on it")
        widget = next((w for w in row["snapshot"]["widgets"] if w["id"] == widget_id), None)
        if widget is None:
            raise ProtocolError(ErrorCode.not_found, f"no widget {widget_id!r} on dashboard {dashboard_id!r}")
        if widget.get("warehouse") and self._access is not None and not self._access.allows(user, widget["warehouse"]):
            raise ProtocolError(ErrorCode.forbidden, f"you may not query warehouse {widget['warehouse']!r}, which this widget reads")
        alert = {
            "id": new_alert_id(), "user_id": user.id, "dashboard_id": dashboard_id, "widget_id": widget_id,
            "column": column, "aggregate": aggregate, "op": op, "threshold": float(threshold),
            "label": (label or "").strip(), "state": "unknown", "created_at": _now(), "last_fired_at": None,
        }
        if not await self.store.create(alert, limit_per_user=self.max_per_user):
            raise ProtocolError(ErrorCode.invalid_op, f"you have {self.max_per_user} alerts, the most allowed; delete one first")
        await self._watch(dashboard_id, widget_id)
        return public(alert) | {"dashboard_title": row["snapshot"]["title"], "widget_title": widget["title"], "status": "active"}

    async def list_for(self, user: User) -> list[dict[str, Any]]:
        """The user's alerts, oldest first, each with ``dashboard_title``, ``widget_title`` and
        ``status``: ``active``, ``widget_removed`` (it will not fire until deleted) or
        ``no_access`` (the user may no longer view the dashboard: it does not notify)."""
        rows = await self.store.list_for_user(user.id)
        dashboards: dict[str, dict[str, Any] | None] = {}
        out = []
        for row in rows:
            if row["dashboard_id"] not in dashboards:
                dashboards[row["dashboard_id"]] = await self._dashboards.get(row["dashboard_id"], user_id=user.id)
            found = dashboards[row["dashboard_id"]]
            widget = None
            status = "no_access"
            if found is not None and self._viewer(user.id, found):
                widget = next((w for w in found["snapshot"]["widgets"] if w["id"] == row["widget_id"]), None)
                status = "active" if widget else "widget_removed"
            out.append(public(row) | {
                "dashboard_title": found["snapshot"]["title"] if found and status != "no_access" else None,
                "widget_title": widget["title"] if widget else None,
                "status": status,
            })
        return out

    async def delete(self, user: User, alert_id: str) -> None:
        """Delete one of the caller's alerts; ``not_found`` for any other id (someone else's
        alert looks exactly like one that does not exist)."""
        row = await self.store.get(alert_id)
        if row is None or row["user_id"] != user.id or not await self.store.delete(alert_id, user_id=user.id):
            raise ProtocolError(ErrorCode.not_found, f"you have no alert {alert_id!r}")
        if not any(a["id"] != alert_id for a in await self.store.for_widget(row["dashboard_id"], row["widget_id"])):
            await self._unwatch(row["dashboard_id"], row["widget_id"])

    @staticmethod
    def _viewer(user_id: str, dashboard_row: dict[str, Any]) -> bool:
        return dashboard_role(user_id=user_id, owner_id=dashboard_row["owner_id"],
                              member_role=dashboard_row["member_role"],
                              public=dashboard_row["snapshot"]["public"]) is not None

    # For the live service --------------------------------------------------------------------

    async def on_refresh(self, dashboard_id: str, widget_id: str, data: dict[str, Any]) -> None:
        """A widget was refreshed with ``data`` (the result dict): evaluate its alerts, store
        the new states, then notify the users whose alert fired (see the module docstring).

        The store sees one lookup per call, plus one transaction when some state moved and one
        role lookup when some alert fired. One alert that cannot be evaluated, or one user's
        notification failing to publish, is logged with its traceback and counted; the others
        go on.
        """
        rows = await self.store.for_widget(dashboard_id, widget_id)
        if not rows:
            await self._unwatch(dashboard_id, widget_id)  # deleted elsewhere (or with its dashboard)
            return
        await self._watch(dashboard_id, widget_id)
        now = _now()
        changes = []  # (row, new state, value, fired)
        for row in rows:
            try:
                value = value_of(data, row["column"], row["aggregate"])
                state, fired = evaluate(row["state"], value, row["op"], row["threshold"])
            except ValueError:  # a stored op or aggregate this release does not know
                self._failed("evaluating alert %s", row["id"])
                continue
            if state != row["state"] or fired:
                changes.append((row, state, value, fired))
        if not changes:
            return
        # Persist first, and each only if nobody moved its state meanwhile: one notification per crossing.
        moved = await self.store.transition([(row["id"], row["state"], state, now if fired else None)
                                             for row, state, _, fired in changes])
        fired_now = [(row, value) for row, _, value, fired in changes if fired and row["id"] in moved]
        if not fired_now:
            return
        dashboard = await self._dashboards.get(dashboard_id)
        if dashboard is None:
            return  # deleted meanwhile: nobody may see it
        roles = {m["user"]["id"]: m["role"] for m in await self._dashboards.members(dashboard_id)}
        for row, value in fired_now:
            try:
                await self._notify(row, value, data, dashboard, roles.get(row["user_id"]), now)
            except Exception:  # noqa: BLE001 - one user's notification must not cost the others theirs
                self._failed("notifying alert %s", row["id"])

    def _failed(self, what: str, alert_id: str) -> None:
        log.exception(what + " failed", alert_id)
        if self._on_internal_error is not None:
            self._on_internal_error("alerts")

    async def _notify(self, row: dict[str, Any], value: float | int, data: dict[str, Any], dashboard: dict[str, Any],
                      member_role: str | None, now: dt.datetime) -> None:
        """Publish a fired alert's notification, if its user may still see what it says."""
        snapshot = dashboard["snapshot"]
        if dashboard_role(user_id=row["user_id"], owner_id=dashboard["owner_id"], member_role=member_role,
                          public=snapshot["public"]) is None:
            return  # the user lost access: no notification (the state moved all the same)
        warehouse = data.get("warehouse")
        if warehouse and self._access is not None and not self._access.allows(User(row["user_id"], row["username"]), warehouse):
            return
        widget = next((w for w in snapshot["widgets"] if w["id"] == row["widget_id"]), None)
        index = column_index(data, row["column"])
        column = row["column"] or (data["columns"][index] if index is not None else None)
        await self._publish(f"user:{row['user_id']}", "notification", {
            "kind": "alert", "alert_id": row["id"], "dashboard_id": row["dashboard_id"], "widget_id": row["widget_id"],
            "title": row["label"] or (widget["title"] if widget else "Alert"),
            "message": message(value, row["op"], row["threshold"], column=column, aggregate=row["aggregate"]),
            "value": value, "threshold": row["threshold"], "op": row["op"], "timestamp": now.isoformat(),
        })
