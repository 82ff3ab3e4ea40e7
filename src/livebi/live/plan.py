"""What a dashboard asks of the live service: one :class:`WidgetQuery` per widget that has a
question or SQL, and the tables a statement reads. Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..warehouse.changes import tables_in_sql


@dataclasses.dataclass(frozen=True)
class WidgetQuery:
    """One widget's query and refresh settings, as its dashboard's snapshot says."""

    dashboard_id: str
    widget_id: str
    title: str
    question: str | None
    sql: str | None
    warehouse: str | None  # None: the owner's default warehouse
    chart: str | None
    interval_s: float | None
    on_data_change: bool

    @property
    def query(self) -> tuple[Any, ...]:
        """What decides the widget's answer: when it changes, the widget runs again at once."""
        return (self.question, self.sql, self.warehouse, self.chart)


def widget_queries(snapshot: Mapping[str, Any]) -> list[WidgetQuery]:
    """The widgets of ``snapshot`` that have something to run (a question or SQL)."""
    out = []
    for widget in snapshot.get("widgets", ()):
        question, sql = widget.get("question"), widget.get("sql")
        if not (question or "").strip() and not (sql or "").strip():
            continue
        refresh = widget.get("refresh") or {}
        chart = (widget.get("chart") or {}).get("type")
        out.append(WidgetQuery(
            dashboard_id=snapshot["id"], widget_id=widget["id"], title=widget.get("title") or "",
            question=question if (question or "").strip() else None,
            sql=sql if (sql or "").strip() else None,
            warehouse=widget.get("warehouse"), chart=chart,
            interval_s=refresh.get("interval_s"), on_data_change=bool(refresh.get("on_data_change")),
        ))
    return out


def tables_read(sql: str, dialect: str) -> frozenset[str]:
    """The tables ``sql`` reads, as lower-case bare names (CTE names excluded); the names change
    detection and the ingest API report.

    A change anywhere in a table of that name (any schema) refreshes the widget: conservative,
    never misses one. Parses the statement: call from a worker thread for large SQL.
    """
    return frozenset(tables_in_sql(sql, dialect))
