"""What the viz agent takes in (a hint from the NLP agent) and gives back (a chart)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Every chart type the viz agent can return, in the order alternatives are listed.
CHART_TYPES: tuple[str, ...] = (
    "kpi",
    "line",
    "area",
    "column",
    "bar",
    "grouped_column",
    "stacked_column",
    "pie",
    "scatter",
    "heatmap",
    "table",
)

#: Chart types drawn by the client itself from ``kpi`` or the rows: they carry no Plotly figure.
FIGURELESS: frozenset[str] = frozenset({"kpi", "table"})


@dataclass
class ChartHint:
    """What the NLP agent knows about the question; every field is optional.

    Names refer to result column names. The hint only sharpens the choice: the result's shape
    still decides what can be drawn, so a wrong hint degrades to the shape-based choice.
    """

    time_grain: str | None = None  # "day" | "week" | "month" | "quarter" | "year"
    measures: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)
    kind: str | None = None  # kpi|trend|breakdown|top_n|list|share|comparison|correlation
    money_columns: list[str] = field(default_factory=list)
    percent_columns: list[str] = field(default_factory=list)
    number_columns: list[str] = field(default_factory=list)  # neither money nor a percentage

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ChartHint:
        """Build a hint from its JSON form (remote agents), ignoring unknown keys."""
        if not data:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Chart:
    """The viz agent's answer: which chart, the ready-to-render figure, and why."""

    type: str  # one of CHART_TYPES
    title: str
    figure: dict[str, Any] | None  # Plotly {"data": [...], "layout": {...}}; None for kpi/table
    kpi: dict[str, Any] | None  # for "kpi": value, formatted, label, previous, change_pct, change_formatted
    reason: str  # one sentence: why this chart was chosen
    alternatives: list[str] = field(default_factory=list)  # other chart types that fit the result
    #: how each measure column reads, so tables and tiles agree with the chart: "money",
    #: "percent" (points: 12.5 -> 12.5 %), "fraction" (a percentage as 0..1: 0.17 -> 17 %), "number"
    formats: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form sent to clients inside a ``result`` publication."""
        return {
            "type": self.type,
            "title": self.title,
            "figure": self.figure,
            "kpi": self.kpi,
            "reason": self.reason,
            "alternatives": list(self.alternatives),
            "formats": dict(self.formats),
        }
