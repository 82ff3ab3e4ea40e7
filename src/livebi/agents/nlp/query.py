"""The structured query: what the planner decided, before any SQL exists.

A :class:`QuerySpec` names tables and columns of the schema (never user text), so it can be
rendered for any dialect by :mod:`.sqlgen`, shown to the user as ``intent``, and later be
produced by another engine (an LLM proposing a spec instead of raw SQL).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any


@dataclasses.dataclass
class MeasureSpec:
    agg: str  # sum | avg | min | max | count | count_distinct
    table: str
    formula: tuple | None  # None: COUNT(*) of the table's rows
    alias: str
    label: str  # e.g. "total revenue"
    money: bool = False
    description: str = ""  # the formula in words for derived measures
    per: tuple[str, str] | None = None  # agg "avg_per": SUM(formula) / COUNT(DISTINCT per)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agg": self.agg, "table": self.table, "alias": self.alias,
                               "label": self.label}
        if self.formula is None:
            out["column"] = "*"
        elif self.formula[0] == "col":
            out["column"] = self.formula[1]
        else:
            out["expression"] = self.description
        if self.per:
            out["per"] = ".".join(self.per)
        return out


@dataclasses.dataclass
class DimensionSpec:
    table: str
    column: str
    alias: str
    label: str
    grain: str | None = None  # time grain when this is a date bucketed by period
    text_date: bool = False
    group_keys: tuple[str, ...] = ()  # extra columns grouped on (an entity's primary key)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "column": self.column, "alias": self.alias}
        if self.grain:
            out["grain"] = self.grain
        return out


@dataclasses.dataclass
class FilterSpec:
    table: str
    column: str
    op: str  # = | != | in | not_in | > | >= | < | <= | between | date_range | is_true | like | ieq | not_null | is_null
    #   | matches | not_matches (values[0] is a LIKE pattern, compared lowercased)
    values: list[Any]
    label: str = ""
    text_date: bool = False

    def to_dict(self) -> dict[str, Any]:
        values = [v.isoformat() if isinstance(v, dt.date) else v for v in self.values]
        return {"table": self.table, "column": self.column, "op": self.op, "values": values}


@dataclasses.dataclass
class HavingSpec:
    measure: MeasureSpec
    op: str
    values: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure.alias, "op": self.op, "values": self.values}


@dataclasses.dataclass
class ExistsSpec:
    """Rows of the outer table that have (``negated``: lack) related rows in ``table``.

    ``path`` is the many-to-one key chain from ``table`` to ``outer`` (its last edge points at
    ``outer``); ``filters`` restrict the related rows (on ``table`` or tables it points at).
    """

    table: str
    negated: bool
    outer: str
    path: list  # list[tuple[Edge, bool]]
    filters: list[FilterSpec] = dataclasses.field(default_factory=list)
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "exists": not self.negated, "relates_to": self.outer,
                "filters": [f.to_dict() for f in self.filters]}


@dataclasses.dataclass
class SelectColumn:
    table: str
    column: str
    alias: str


@dataclasses.dataclass
class QuerySpec:
    kind: str  # kpi | trend | breakdown | top_n | list | share | comparison | correlation
    base: str
    measures: list[MeasureSpec] = dataclasses.field(default_factory=list)
    dimensions: list[DimensionSpec] = dataclasses.field(default_factory=list)
    filters: list[FilterSpec] = dataclasses.field(default_factory=list)
    having: list[HavingSpec] = dataclasses.field(default_factory=list)
    select: list[SelectColumn] = dataclasses.field(default_factory=list)  # listing queries
    order: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (alias, asc|desc)
    limit: int | None = None
    time_grain: str | None = None
    share: bool = False
    growth: bool = False  # a growth_pct column: each period's change against the previous one
    #: with ``share``: the rows the share counts within each group ("returned orders by channel":
    #: returned / all orders of the channel) instead of each group's share of the total
    rate_of: list[FilterSpec] = dataclasses.field(default_factory=list)
    distinct: bool = False  # listing: each selected combination once ("the different countries")
    allow_fanout: bool = False  # joins may walk one-to-many edges (only safe for COUNT DISTINCT)
    exists: list[ExistsSpec] = dataclasses.field(default_factory=list)  # [NOT] EXISTS conditions

    def tables(self) -> set[str]:
        used = {self.base}
        used.update(m.table for m in self.measures)
        used.update(m.per[0] for m in self.measures if m.per)
        used.update(d.table for d in self.dimensions)
        used.update(f.table for f in self.filters)
        used.update(h.measure.table for h in self.having)
        used.update(s.table for s in self.select)
        return used

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base_table": self.base,
            "measures": [m.to_dict() for m in self.measures],
            "dimensions": [d.to_dict() for d in self.dimensions],
            "time_grain": self.time_grain,
            "filters": [f.to_dict() for f in self.filters],
            "having": [h.to_dict() for h in self.having],
            "columns": [{"table": s.table, "column": s.column, "alias": s.alias} for s in self.select],
            "order": [{"by": alias, "direction": direction} for alias, direction in self.order],
            "limit": self.limit,
            "distinct": self.distinct,
            "exists": [e.to_dict() for e in self.exists],
        }
