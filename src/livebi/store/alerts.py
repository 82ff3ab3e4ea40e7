"""Alerts in the metadata store: rows per user, looked up per widget, state moved by
compare-and-set.

:meth:`AlertStore.transition` changes an alert's state only if it is still the state the caller
evaluated from, so two refreshes of one widget racing (on one process or on several sharing a
PostgreSQL store) cannot both see the same crossing: the loser's update matches no row and it
does not notify. Rows go with their user and their dashboard (``ON DELETE CASCADE``; the
metadata store switches SQLite's foreign keys on).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import alerts, users

_FIELDS = ("id", "user_id", "dashboard_id", "widget_id", "column", "aggregate", "op", "threshold", "label", "state",
           "created_at", "last_fired_at")


def _row(mapping: Any) -> dict[str, Any]:
    return {name: mapping[name] for name in _FIELDS}


class AlertStore:
    """Repository over the ``livebi_alerts`` table (SQLAlchemy Core, async)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, row: dict[str, Any], *, limit_per_user: int | None = None) -> bool:
        """Insert an alert (every column of the table); False when its user already has
        ``limit_per_user`` alerts."""
        async with self.engine.begin() as conn:
            if limit_per_user is not None:
                owned = (await conn.execute(
                    select(func.count()).select_from(alerts).where(alerts.c.user_id == row["user_id"])
                )).scalar_one()
                if owned >= limit_per_user:
                    return False
            await conn.execute(insert(alerts).values(**row))
        return True

    async def get(self, alert_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            found = (await conn.execute(select(alerts).where(alerts.c.id == alert_id))).mappings().first()
        return _row(found) if found else None

    async def list_for_user(self, user_id: str) -> list[dict[str, Any]]:
        """The user's alerts, oldest first."""
        stmt = select(alerts).where(alerts.c.user_id == user_id).order_by(alerts.c.created_at, alerts.c.id)
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(stmt)).mappings()]

    async def for_widget(self, dashboard_id: str, widget_id: str) -> list[dict[str, Any]]:
        """Every user's alerts on one widget, each with its user's ``username`` (an index
        lookup: called after every refresh of a widget)."""
        stmt = (
            select(alerts, users.c.username)
            .select_from(alerts.join(users, users.c.id == alerts.c.user_id))
            .where(alerts.c.dashboard_id == dashboard_id, alerts.c.widget_id == widget_id)
            .order_by(alerts.c.id)
        )
        async with self.engine.connect() as conn:
            return [_row(r) | {"username": r["username"]} for r in (await conn.execute(stmt)).mappings()]

    async def widgets(self) -> dict[str, set[str]]:
        """dashboard id -> the ids of its widgets that have alerts."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(alerts.c.dashboard_id, alerts.c.widget_id).distinct())
            out: dict[str, set[str]] = {}
            for dashboard_id, widget_id in rows:
                out.setdefault(dashboard_id, set()).add(widget_id)
            return out

    async def delete(self, alert_id: str, *, user_id: str) -> bool:
        """Delete ``user_id``'s alert; False when they have no alert of that id."""
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(alerts).where(alerts.c.id == alert_id, alerts.c.user_id == user_id))
        return res.rowcount > 0

    async def transition(self, changes: list[tuple[str, str, str, dt.datetime | None]]) -> set[str]:
        """Move alerts to new states in one transaction: each ``(alert_id, expected, state,
        fired_at)`` only if its state is still ``expected`` (``fired_at``: record when it fired).

        Returns:
            The ids that moved. An alert missing from it had its state changed by someone else
            (or is gone) since ``expected`` was read: nothing was written for it.
        """
        moved: set[str] = set()
        async with self.engine.begin() as conn:
            for alert_id, expected, state, fired_at in changes:
                values: dict[str, Any] = {"state": state}
                if fired_at is not None:
                    values["last_fired_at"] = fired_at
                res = await conn.execute(
                    update(alerts).where(alerts.c.id == alert_id, alerts.c.state == expected).values(**values))
                if res.rowcount == 1:
                    moved.add(alert_id)
        return moved
