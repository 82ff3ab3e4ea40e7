"""Plotly figures as plain dicts, built from a profiled result.

Figures are written as dicts rather than ``plotly.graph_objects`` because validating graph
objects costs milliseconds per trace; the tests validate representative figures with
``plotly.graph_objects.Figure(figure)`` instead. Every colour is explicit and no ``template`` is
used, so a figure renders the same in the browser bundle, offline, and in exported images.

Plotly renders a subset of HTML (links included) in every text it draws, so text from the data
is escaped, all of it, in one place: ``build_from_shape`` passes each finished figure through
``formatting.escape_figure``. Builders therefore write text as it is, and keep it out of their
hover templates (which are markup) by referring to it as ``%{meta[i]}``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

from .formatting import NumberFormat, escape_figure, number_format
from .profile import BLANK, Field, Shape, TimePoint

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B",
           "#B279A2", "#FF9DA6", "#9D755D", "#2F6690", "#BC5090", "#7A9E3B")
OTHER = "Other"
OTHER_COLOR = "#A3A9B5"
TEXT = "#1F2937"
MUTED = "#6B7280"
GRID = "#E5E7EB"
AXIS_LINE = "#D1D5DB"
BACKGROUND = "#FFFFFF"
FONT = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
SEQUENTIAL = [[0.0, "#EFF4FA"], [0.5, "#7FA6CF"], [1.0, "#1F4E8C"]]
DIVERGING = [[0.0, "#B2182B"], [0.5, "#F7F7F7"], [1.0, "#2166AC"]]

MAX_SERIES = 12  # more series than this are folded into "Other"
MAX_SLICES = 12
MARKER_LIMIT = 60  # lines with more points than this are drawn without markers
LABEL_LIMIT = 24  # bars with more categories than this carry no value labels

_DATE_FORMATS = {"year": "%Y", "quarter": "Q%q %Y", "month": "%b %Y", "week": "%b %d, %Y",
                 "day": "%b %d, %Y", "time": "%b %d, %Y %H:%M"}
_DTICKS = {"year": ("M12", 30), "quarter": ("M3", 16)}


# --- shared pieces -----------------------------------------------------------------------------


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    axis = {"title": {"text": title, "font": {"color": MUTED}}, "automargin": True,
            "gridcolor": GRID, "linecolor": AXIS_LINE, "zerolinecolor": AXIS_LINE,
            "tickfont": {"color": MUTED}, "showline": True}
    axis.update(extra)
    return axis


def _layout(title: str, *, legend: bool, names: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Layout shared by every chart. ``names`` (the legend entries) decide where the legend
    goes: a few short ones fit in a row above the plot, more would wrap into the title, so
    they stack on the right instead."""
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16, "color": TEXT}},
        "font": {"family": FONT, "size": 12, "color": TEXT},
        "paper_bgcolor": BACKGROUND,
        "plot_bgcolor": BACKGROUND,
        "colorway": list(PALETTE),
        "margin": {"l": 64, "r": 24, "t": 56, "b": 56, "pad": 4},
        "showlegend": legend,
        "hovermode": "closest",
        "hoverlabel": {"bgcolor": BACKGROUND, "bordercolor": AXIS_LINE, "font": {"color": TEXT, "family": FONT}},
    }
    if legend and len(names or ()) <= 4 and sum(len(n) + 4 for n in names or ()) <= 60:
        layout["legend"] = {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom",
                            "font": {"color": TEXT}}
        layout["margin"]["t"] = 84
    elif legend:
        layout["legend"] = {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top",
                            "font": {"color": TEXT}}
    layout.update(extra)
    return layout


def _value_format(measures: list[Field]) -> NumberFormat:
    """One format for every measure on a shared axis (money only when all of them are money)."""
    values = [v for m in measures for v in m.values]
    return number_format(values, money=all(m.money for m in measures),
                         percent=all(m.percent for m in measures),
                         fraction=all(m.fraction for m in measures))


SCALE_GAP = 20  # measures whose largest values differ more than this many times get two axes


def _magnitude(field: Field) -> float:
    return max((abs(v) for v in field.numbers()), default=0.0)


def _shares_axis(a: Field, b: Field) -> bool:
    """Whether two measures read well on one value axis: same unit, comparable size."""
    if (a.money, a.percent, a.fraction) != (b.money, b.percent, b.fraction):
        return False
    big, small = sorted((_magnitude(a), _magnitude(b)), reverse=True)
    return small > 0 and big / small <= SCALE_GAP or big == small


def axis_groups(measures: list[Field]) -> tuple[list[Field], list[Field]]:
    """(on the primary axis, on a secondary axis): the measures that cannot share the first
    measure's axis (a count beside revenue, a rate beside a count) go on a second one."""
    primary = [m for m in measures if m is measures[0] or _shares_axis(measures[0], m)]
    return primary, [m for m in measures if not any(m is p for p in primary)]


def _secondary_axis(layout: dict[str, Any], letter: str, title: str, fmt: NumberFormat) -> None:
    """Add the secondary value axis (``yaxis2`` on the right, ``xaxis2`` on top) to ``layout``."""
    side = "right" if letter == "y" else "top"
    layout[f"{letter}axis2"] = _axis(title, **fmt.axis, overlaying=letter, side=side, showgrid=False,
                                     rangemode="tozero")
    layout[f"{letter}axis"].setdefault("rangemode", "tozero")  # both axes start at zero: no false crossing
    layout["margin"]["r" if letter == "y" else "t"] += 40


def _value_title(measures: list[Field]) -> str:
    return measures[0].title if len(measures) == 1 else " / ".join(m.title for m in measures[:3])


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    return {"data": data, "layout": layout}


# --- positions along the category / time axis --------------------------------------------------


class _Axis:
    """Where each row sits along a time or category axis, in display order."""

    def __init__(self, field: Field, *, rank_by: Field | None = None, date_axis: bool = True) -> None:
        self.field = field
        self.date = date_axis and field.axis == "date"
        positions: list[tuple[Any, Any] | None] = []  # per row: (sort key, plotted value)
        for value in field.values:
            if isinstance(value, TimePoint):
                positions.append((value.key, value.plot if self.date else value.label))
            elif value is None or (field.role == "time" and value == BLANK):
                positions.append(None)
            elif field.order is not None:
                positions.append((field.order.get(value, len(field.order)), value))
            else:
                positions.append((0, value))
        if field.role != "time" and field.order is None:
            # nominal categories: largest total first, nulls and unknown values last
            totals: dict[Any, float] = defaultdict(float)
            if rank_by is not None:
                for pos, v in zip(positions, rank_by.values):
                    if pos is not None and v is not None:
                        totals[pos[1]] += v
            positions = [None if p is None else (-totals.get(p[1], float("-inf")), p[1]) for p in positions]
        self.positions = positions
        unique = {p[1]: p[0] for p in positions if p is not None}
        self.categories = sorted(unique, key=lambda c: (unique[c], str(c)))

    def spec(self, **extra: Any) -> dict[str, Any]:
        """The Plotly axis for these positions."""
        field = self.field
        if self.date:
            fmt = _DATE_FORMATS.get(field.grain or "day", "%b %d, %Y")
            axis = _axis(field.title, type="date", hoverformat=fmt, showgrid=False)
            if field.grain in ("year", "quarter"):  # Plotly's own month/day ticks read well
                axis["tickformat"] = fmt
            dtick, limit = _DTICKS.get(field.grain or "", (None, 0))
            if dtick and len(self.categories) <= limit:
                axis["dtick"] = dtick
        else:
            axis = _axis(field.title, type="category", categoryorder="array",
                         categoryarray=list(self.categories), showgrid=False)
        axis.update(extra)
        return axis

    def hover(self, letter: str) -> str:
        if self.date:
            prefix = "Week of " if self.field.grain == "week" else ""
            return f"{prefix}%{{{letter}|{_DATE_FORMATS.get(self.field.grain or 'day', '%b %d, %Y')}}}"
        return f"%{{{letter}}}"


def _series(axis: _Axis, measure: Field, by: list[Any] | None = None) -> dict[Any, dict[Any, float | None]]:
    """``{series: {category: value}}``, summing rows that land on the same spot."""
    out: dict[Any, dict[Any, float | None]] = defaultdict(dict)
    for i, pos in enumerate(axis.positions):
        if pos is None:
            continue
        name = by[i] if by is not None else None
        value = measure.values[i]
        cell = out[name]
        previous = cell.get(pos[1])
        cell[pos[1]] = value if previous is None else (previous if value is None else previous + value)
    return out


def _fold(series: dict[Any, dict[Any, float | None]], order: dict[str, int] | None) -> list[tuple[str, dict]]:
    """Cap the number of series: keep the largest, sum the rest into "Other"."""
    totals = {name: sum(abs(v) for v in cells.values() if v is not None) for name, cells in series.items()}
    if order is not None:
        names = sorted(series, key=lambda n: (order.get(n, len(order)), str(n)))
    else:
        names = sorted(series, key=lambda n: (-totals[n], str(n)))
    if len(names) <= MAX_SERIES:
        return [(str(n), series[n]) for n in names]
    keep = sorted(names, key=lambda n: -totals[n])[: MAX_SERIES - 1]
    rest: dict[Any, float | None] = defaultdict(float)
    for name in names:
        if name not in keep:
            for category, value in series[name].items():
                rest[category] += value or 0.0
    return [(str(n), series[n]) for n in names if n in keep] + [(OTHER, dict(rest))]


def _trace_color(name: str, index: int) -> str:
    return OTHER_COLOR if name == OTHER else _color(index)


# --- chart builders ----------------------------------------------------------------------------


def _line(title: str, shape: Shape, area: bool) -> dict[str, Any]:
    axis_field = shape.time or shape.dimensions[0]
    split = next((d for d in shape.dimensions if d is not axis_field), None)
    measures = shape.measures[:1] if split else shape.measures
    axis = _Axis(axis_field, rank_by=measures[0])
    fmt = _value_format(measures)
    if split is not None:
        named = _fold(_series(axis, measures[0], split.values), split.order)
        traces = [(name, cells, measures[0]) for name, cells in named]
    else:
        traces = [(m.title, _series(axis, m).get(None, {}), m) for m in measures]
    primary, secondary = axis_groups(measures) if split is None else (measures, [])
    fmt2 = _value_format(secondary) if secondary else fmt
    if secondary:
        fmt = _value_format(primary)
    data = []
    for index, (name, cells, measure) in enumerate(traces):
        xs = [c for c in axis.categories if c in cells]
        color = _trace_color(name, index)
        head = "<b>%{meta[0]}</b><br>" if len(traces) > 1 else ""
        second = any(measure is m for m in secondary)
        trace = {
            "type": "scatter", "name": name, "x": xs, "y": [cells[c] for c in xs],
            "mode": "lines+markers" if len(xs) <= MARKER_LIMIT else "lines",
            "line": {"color": color, "width": 2.5, "shape": "linear"},
            "marker": {"color": color, "size": 6},
            "meta": [name, measure.title],
            "hovertemplate": f"{head}{axis.hover('x')}<br>%{{meta[1]}}: {(fmt2 if second else fmt).hover('y')}<extra></extra>",
        }
        if second:
            trace["yaxis"] = "y2"
        if area:
            trace["fill"] = "tozeroy"
            trace["fillcolor"] = _rgba(color, 0.18 if len(traces) > 1 else 0.3)
        data.append(trace)
    yaxis = _axis(_value_title(primary), **fmt.axis)
    if area:
        yaxis["rangemode"] = "tozero"
    layout = _layout(title, legend=len(data) > 1, names=[d["name"] for d in data], xaxis=axis.spec(), yaxis=yaxis)
    if secondary:
        _secondary_axis(layout, "y", _value_title(secondary), fmt2)
    return _figure(data, layout)


def _bars(title: str, shape: Shape, chart_type: str) -> dict[str, Any]:
    horizontal = chart_type == "bar"
    barmode = "stack" if chart_type == "stacked_column" else "group"
    fmt = _value_format(shape.measures)
    if len(shape.axes) == 2:
        axis_field, split = _split_axes(shape)
        measures = shape.measures[:1]
        axis = _Axis(axis_field, rank_by=measures[0])
        traces = [(name, cells, measures[0])
                  for name, cells in _fold(_series(axis, measures[0], split.values), split.order)]
    else:
        axis_field = shape.axes[0]
        measures = shape.measures
        axis = _Axis(axis_field, rank_by=measures[0])
        traces = [(m.title, _series(axis, m).get(None, {}), m) for m in measures]
    primary, secondary = axis_groups(measures) if barmode == "group" else (measures, [])
    fmt2 = _value_format(secondary) if secondary else fmt
    if secondary:
        fmt = _value_format(primary)
    cat, val = ("y", "x") if horizontal else ("x", "y")
    labelled = len(axis.categories) <= LABEL_LIMIT and len(traces) == 1
    data = []
    for index, (name, cells, measure) in enumerate(traces):
        cats = [c for c in axis.categories if c in cells]
        head = "<b>%{meta[0]}</b><br>" if len(traces) > 1 else ""
        second = any(measure is m for m in secondary)
        trace = {
            "type": "bar", "name": name, cat: cats, val: [cells[c] for c in cats],
            "orientation": "h" if horizontal else "v",
            "marker": {"color": _trace_color(name, index), "line": {"width": 0}},
            "meta": [name, measure.title],
            "hovertemplate": f"{head}{axis.hover(cat)}<br>%{{meta[1]}}: {(fmt2 if second else fmt).hover(val)}<extra></extra>",
        }
        if secondary:  # bars on two axes are only placed side by side by their offset groups
            trace["offsetgroup"] = str(index)
        if second:
            trace[f"{val}axis"] = f"{val}2"
        if labelled:
            trace.update(texttemplate=fmt.label(val), textposition="outside", cliponaxis=False,
                         textfont={"color": MUTED, "size": 11})
        data.append(trace)
    cat_axis = axis.spec()
    value_axis = _axis(_value_title(primary), **fmt.axis)
    extra: dict[str, Any] = {"barmode": barmode, "bargap": 0.25}
    if horizontal:
        cat_axis["autorange"] = "reversed"  # first (largest) category on top
        value_axis["showgrid"] = True
        extra["xaxis"], extra["yaxis"] = value_axis, cat_axis
    else:
        extra["xaxis"], extra["yaxis"] = cat_axis, value_axis
    layout = _layout(title, legend=len(data) > 1, names=[d["name"] for d in data], **extra)
    if len(data) > 1:
        layout["legend"]["traceorder"] = "normal"  # Plotly reverses stacked legends by default
    if horizontal:
        layout["margin"]["r"] = 48  # room for the value labels outside the longest bar
    if secondary:
        _secondary_axis(layout, val, _value_title(secondary), fmt2)
    return _figure(data, layout)


def _split_axes(shape: Shape) -> tuple[Field, Field]:
    """(along the axis, one series each) for two categorical fields."""
    a, b = shape.axes
    if a is shape.time or (a.ordinal and not b.ordinal):
        return a, b
    if b.ordinal and not a.ordinal:
        return b, a
    return (a, b) if a.distinct >= b.distinct else (b, a)


def _pie(title: str, shape: Shape) -> dict[str, Any]:
    measure = shape.measures[0]
    axis = _Axis(shape.axes[0], rank_by=measure, date_axis=False)
    cells = _series(axis, measure).get(None, {})
    slices = [(str(c), cells[c]) for c in axis.categories if cells.get(c) is not None and cells[c] > 0]
    if not shape.axes[0].ordinal:
        slices.sort(key=lambda s: -s[1])
    if len(slices) > MAX_SLICES:
        slices = slices[: MAX_SLICES - 1] + [(OTHER, sum(v for _, v in slices[MAX_SLICES - 1:]))]
    fmt = _value_format([measure])
    labels = [s[0] for s in slices]
    data = [{
        "type": "pie", "labels": labels, "values": [s[1] for s in slices], "hole": 0.4,
        "sort": False, "direction": "clockwise", "texttemplate": "%{percent:.1%}", "textposition": "inside",
        "insidetextorientation": "horizontal",
        "marker": {"colors": [_trace_color(n, i) for i, n in enumerate(labels)],
                   "line": {"color": BACKGROUND, "width": 1}},
        "meta": [measure.title],
        "hovertemplate": (f"<b>%{{label}}</b><br>%{{meta[0]}}: {fmt.hover('value')}"
                          "<br>%{percent} of total<extra></extra>"),
    }]
    layout = _layout(title, legend=len(labels) > 1, names=labels * 5)  # always the side legend
    if len(labels) > 1:
        layout["legend"].update(y=0.5, yanchor="middle")
    return _figure(data, layout)


def _scatter(title: str, shape: Shape, question: str = "") -> dict[str, Any]:
    x_field, y_field = scatter_pair(shape.measures, question)
    label_field = shape.dimensions[0] if shape.dimensions else shape.time
    xf, yf = _value_format([x_field]), _value_format([y_field])
    xs, ys, labels = [], [], []
    for i, (x, y) in enumerate(zip(x_field.values, y_field.values)):
        if x is None or y is None:
            continue
        xs.append(x)
        ys.append(y)
        if label_field is not None:
            value = label_field.values[i]
            labels.append(value.label if isinstance(value, TimePoint) else str(value))
    head = "<b>%{text}</b><br>" if labels else ""
    trace = {
        "type": "scatter", "mode": "markers", "name": y_field.title, "x": xs, "y": ys,
        "marker": {"color": _rgba(PALETTE[0], 0.75), "size": 9, "line": {"color": BACKGROUND, "width": 1}},
        "meta": [x_field.title, y_field.title],
        "hovertemplate": f"{head}%{{meta[0]}}: {xf.hover('x')}<br>%{{meta[1]}}: {yf.hover('y')}<extra></extra>",
    }
    if labels:
        trace["text"] = labels
    return _figure([trace], _layout(title, legend=False, xaxis=_axis(x_field.title, **xf.axis),
                                    yaxis=_axis(y_field.title, **yf.axis)))


def scatter_pair(measures: list[Field], question: str) -> tuple[Field, Field]:
    """(x, y): in "profit vs revenue" the first-named measure goes up the y axis."""
    lowered = question.lower()
    found = sorted((lowered.find(m.title.lower()), i) for i, m in enumerate(measures)
                   if m.title.lower() in lowered)
    if len(found) >= 2:
        y, x = measures[found[0][1]], measures[found[1][1]]
        return x, y
    return measures[0], measures[1]


def _heatmap(title: str, shape: Shape) -> dict[str, Any]:
    measure = shape.measures[0]

    def x_preference(f: Field) -> tuple[bool, bool, int]:
        # hours and time run along x, weekdays down y; otherwise the longer list goes along x
        return (f.unit == "hour" or f is shape.time, f.unit != "weekday", f.distinct)

    a, b = sorted(shape.axes, key=x_preference, reverse=True)
    x_axis = _Axis(a, rank_by=measure, date_axis=False)
    y_axis = _Axis(b, rank_by=measure, date_axis=False)
    cells: dict[tuple[Any, Any], float | None] = {}
    for xp, yp, value in zip(x_axis.positions, y_axis.positions, measure.values):
        if xp is None or yp is None:
            continue
        key = (xp[1], yp[1])
        previous = cells.get(key)
        cells[key] = value if previous is None else (previous if value is None else previous + value)
    z = [[cells.get((x, y)) for x in x_axis.categories] for y in y_axis.categories]
    numbers = [v for v in cells.values() if v is not None]
    fmt = _value_format([measure])
    diverging = bool(numbers) and min(numbers) < 0 < max(numbers)
    colorbar = {"title": {"text": measure.title, "side": "right"}, "thickness": 12,
                "outlinewidth": 0, "tickfont": {"color": MUTED},
                **{k: v for k, v in fmt.axis.items() if k in ("tickprefix", "ticksuffix", "tickformat", "exponentformat")}}
    trace = {
        "type": "heatmap", "x": [str(c) for c in x_axis.categories], "y": [str(c) for c in y_axis.categories],
        "z": z, "colorscale": DIVERGING if diverging else SEQUENTIAL, "xgap": 1, "ygap": 1,
        "hoverongaps": False, "colorbar": colorbar, "meta": [b.title, a.title, measure.title],
        "hovertemplate": f"%{{meta[0]}}: %{{y}}<br>%{{meta[1]}}: %{{x}}<br>%{{meta[2]}}: {fmt.hover('z')}<extra></extra>",
    }
    if diverging:
        trace["zmid"] = 0
    return _figure([trace], _layout(
        title, legend=False,
        xaxis=_axis(a.title, type="category", showgrid=False, showline=False),
        yaxis=_axis(b.title, type="category", showgrid=False, showline=False, autorange="reversed"),
    ))


_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "line": lambda title, shape, area, q: _line(title, shape, area),
    "area": lambda title, shape, area, q: _line(title, shape, True),
    "bar": lambda title, shape, area, q: _bars(title, shape, "bar"),
    "column": lambda title, shape, area, q: _bars(title, shape, "column"),
    "grouped_column": lambda title, shape, area, q: _bars(title, shape, "grouped_column"),
    "stacked_column": lambda title, shape, area, q: _bars(title, shape, "stacked_column"),
    "pie": lambda title, shape, area, q: _pie(title, shape),
    "scatter": lambda title, shape, area, q: _scatter(title, shape, q),
    "heatmap": lambda title, shape, area, q: _heatmap(title, shape),
}


def build_from_shape(chart_type: str, title: str, shape: Shape, area: bool = False, question: str = "") -> dict[str, Any]:
    """The Plotly figure for an already-validated chart type (see ``choice._needs``).

    Builders put text in the figure as it is (titles, names, categories, labels) and keep it
    out of their hover templates (``%{meta[i]}`` placeholders fetch it); this is the one place
    where all of it is escaped, so no value from the data is ever rendered as Plotly markup.
    """
    return escape_figure(_BUILDERS[chart_type](title, shape, area, question))
