"""Which chart fits a result: rules on the result's shape, sharpened by the question and hint.

The rules, in order (the first that applies wins):

1. no rows -> table; ``hint.kind == "list"`` or a listing question ("list…", "details") -> table.
2. one row with one measure -> kpi; two rows of one measure over two periods ("this year vs
   last year", 2023/2024) -> kpi with the previous value and the change; one row holding
   ``revenue_this_year`` and ``revenue_last_year`` -> the same.
3. heatmap wording ("heatmap", "by day of week and hour") with two categories -> heatmap.
4. a time column (unless correlation wording): one measure -> line (area when
   cumulative/running/ytd), several measures -> multi-line (budget vs actual; a measure of
   another unit or >20x the scale gets a secondary axis), plus a dimension -> one line per
   value (12 series at most, the rest summed into "Other"). A monthly or quarterly series over
   several years, when the question compares ("2024 vs 2023 by month", "year over year"), is
   one line per year over the months of the year.
5. two or more measures with correlation wording (or "vs" between measures of different units),
   or with no category at all -> scatter.
6. one category: several measures -> grouped column (secondary axis as for lines); one measure -> pie (share wording, <= 8
   slices, parts of a whole: no negatives, rates only when they add up to 100%), column in
   natural order for ordinals (weekdays, months, "18-24" buckets), horizontal bar for
   many (> 8) or long labels or ranking wording, table beyond 50 categories, else column.
7. two categories and one measure -> table when the grid would pass 10,000 cells, heatmap when
   both have more than 6 values, stacked column for composition wording, else grouped column.
8. anything else (three or more categories, text only) -> table.

An explicit ``requested`` type wins when the data can be drawn that way (``_needs`` says what
each type requires); otherwise the automatic choice is used and the reason says why.
"""

from __future__ import annotations

import re

from livebi.warehouse.base import QueryResult

from .figures import build_from_shape, scatter_pair
from .formatting import format_change, format_value, title_from_question
from .model import CHART_TYPES, FIGURELESS, Chart, ChartHint
from .profile import Field, Shape, TimePoint, pivot_years, profile

MAX_PIE_SLICES = 8
MANY_CATEGORIES = 8
MAX_BARS = 50  # more bars than this cannot be read in a chart-sized box; a table can
LONG_LABEL = 14
HEATMAP_MIN = 6  # both dimensions need more values than this for an automatic heatmap
MAX_HEATMAP_CELLS = 10_000  # a sparse grid of more cells would ship mostly nulls
MAX_CHART_COLUMNS = 6  # beyond this many columns a table reads better than any chart

_WORDS = {
    "share": r"share|proportion|percentage|percent of|% of|of (?:the )?total|distribution|pie|split",
    "rank": r"top|bottom|best|worst|rank(?:ing|ed)?|highest|lowest|most|least|leading|largest|"
            r"biggest|smallest",
    "area": r"cumulative|running|area|ytd|year to date",
    "scatter": r"correlat\w*|relationship|scatter|plotted against",
    "versus": r"vs\.?|versus|against|compared (?:to|with)",
    "stacked": r"stacked|composition|mix",
    "heatmap": r"heat ?map|(?:day of (?:the )?week|weekday) and hour|hour and (?:day of (?:the )?week|weekday)",
    "list": r"^(?:list|show all|show every)\b|\braw\b|\bdetails?\b|\brecords\b",
    "years": r"vs\.?|versus|against|compared? (?:to|with)|compare|comparison|year[- ]over[- ]year|yoy|"
             r"same (?:month|quarter|period) last year",
}
_PATTERNS = {key: re.compile(rf"(?<![\w%])(?:{body})(?!\w)", re.IGNORECASE) for key, body in _WORDS.items()}
_PATTERNS["list"] = re.compile(_WORDS["list"], re.IGNORECASE)
_CURRENT = re.compile(r"\b(?:this|current|cur|curr|ty|now|latest|today)\b", re.IGNORECASE)
_PREVIOUS = re.compile(r"\b(?:last|previous|prev|prior|ly|before|earlier|yesterday)\b", re.IGNORECASE)


class _Intent:
    """What the question's wording (and the hint's kind) asks for."""

    def __init__(self, question: str, hint: ChartHint) -> None:
        kind = hint.kind or ""
        self.share = bool(_PATTERNS["share"].search(question)) or kind == "share"
        self.rank = bool(_PATTERNS["rank"].search(question)) or kind == "top_n"
        self.area = bool(_PATTERNS["area"].search(question))
        self.scatter = bool(_PATTERNS["scatter"].search(question)) or kind == "correlation"
        self.versus = bool(_PATTERNS["versus"].search(question))
        self.stacked = bool(_PATTERNS["stacked"].search(question))
        self.heatmap = bool(_PATTERNS["heatmap"].search(question))
        self.listing = bool(_PATTERNS["list"].search(question.strip())) or kind == "list"
        self.compare_years = bool(_PATTERNS["years"].search(question)) or kind == "comparison"
        self.kind = kind


# --- what each chart type needs ----------------------------------------------------------------


def _kpi_pair(shape: Shape) -> tuple[int, int] | None:
    """(current row, previous row) when two rows compare one measure across two periods."""
    if shape.row_count != 2 or len(shape.measures) != 1 or len(shape.axes) != 1 or shape.others:
        return None
    axis = shape.axes[0]
    if axis is shape.time:
        a, b = axis.values
        if not (isinstance(a, TimePoint) and isinstance(b, TimePoint)) or a.key == b.key:
            return None
        return (0, 1) if a.key > b.key else (1, 0)
    first, second = axis.values
    if _CURRENT.search(first) or _PREVIOUS.search(second):
        return 0, 1
    if _CURRENT.search(second) or _PREVIOUS.search(first):
        return 1, 0
    return None


def _previous_measure(shape: Shape) -> tuple[Field, Field] | None:
    """(current, previous) when one row holds e.g. ``revenue_this_year`` and ``revenue_last_year``."""
    if shape.row_count != 1 or len(shape.measures) != 2 or shape.axes:
        return None
    a, b = shape.measures
    if _PREVIOUS.search(b.title) and not _PREVIOUS.search(a.title):
        return a, b
    if _PREVIOUS.search(a.title) and not _PREVIOUS.search(b.title):
        return b, a
    return None


def _all_nonnegative(field: Field) -> bool:
    numbers = field.numbers()
    return bool(numbers) and all(v >= 0 for v in numbers) and any(v > 0 for v in numbers)


def _parts_of_whole(field: Field) -> bool:
    """Whether the values can be slices of a pie: none negative, and rates only when they
    add up to the whole (conversion rates per channel do not; a 40/35/25 split does)."""
    if not _all_nonnegative(field):
        return False
    if field.percent:
        whole = 1.0 if field.fraction else 100.0
        return abs(sum(field.numbers()) - whole) <= 0.02 * whole
    return True


def _heatmap_cells(shape: Shape) -> int:
    a, b = shape.axes
    return a.distinct * b.distinct


def _needs(chart_type: str, shape: Shape) -> str | None:
    """None when ``shape`` can be drawn as ``chart_type``, else what that chart would need."""
    axes, measures = len(shape.axes), len(shape.measures)
    if chart_type == "table":
        return None
    if shape.row_count == 0:
        return "at least one row"
    if chart_type == "kpi":
        single = shape.row_count == 1 and measures >= 1 and axes <= 1
        return None if single or _kpi_pair(shape) else "a single number (one row with one measure)"
    if measures == 0:
        return "a numeric column to plot"
    if chart_type in ("line", "area"):
        ordered = shape.time is not None or (axes == 1 and shape.axes[0].ordinal)
        if ordered and (axes == 1 or (axes == 2 and measures == 1)):
            return None
        return "a date or ordered column (months, weekdays…) and a numeric column"
    if chart_type in ("bar", "column"):
        return None if axes == 1 else "one category column and a numeric column"
    if chart_type in ("grouped_column", "stacked_column"):
        if (axes == 2 and measures == 1) or (axes == 1 and measures >= 2):
            return None
        return "two category columns and one measure, or one category column and several measures"
    if chart_type == "pie":
        if axes != 1 or measures != 1 or shape.time is not None:
            return "one category column (not dates) and one measure"
        if not _all_nonnegative(shape.measures[0]):
            return "values that are all zero or more"
        return None if _parts_of_whole(shape.measures[0]) else "parts of a whole (these rates do not add up to 100%)"
    if chart_type == "scatter":
        return None if measures >= 2 else "two numeric columns"
    if chart_type == "heatmap":
        if axes != 2 or measures != 1:
            return "two category columns and one measure"
        return None if _heatmap_cells(shape) <= MAX_HEATMAP_CELLS else f"at most {MAX_HEATMAP_CELLS:,} cells"
    return f"one of: {', '.join(CHART_TYPES)}"


# --- automatic choice --------------------------------------------------------------------------


def _auto(shape: Shape, intent: _Intent, question: str) -> tuple[str, str]:
    """The rule-based choice: (chart type, one-sentence reason)."""
    n, axes, measures = shape.row_count, shape.axes, shape.measures
    if n == 0:
        return "table", "The query returned no rows."
    if intent.kind == "list" or (intent.listing and (shape.column_count >= 3 or not measures)):
        return "table", "The question asks for a listing, so the rows are shown as a table."
    if n == 1 and len(measures) == 1 and len(axes) <= 1:
        return "kpi", "A single number reads best as a headline figure."
    trend_words = intent.area or intent.kind == "trend"
    if (_kpi_pair(shape) and not (shape.time and trend_words)) or _previous_measure(shape):
        return "kpi", "Two periods of one measure read best as a headline figure with its change."
    if n == 1 and not shape.dimensions and len(measures) > 1:
        return "table", "Several figures in one row read best side by side in a table."
    if not measures:
        return "table", "The result has no numeric column to chart."
    if shape.column_count > MAX_CHART_COLUMNS and len(shape.dimensions) > 1:
        return "table", "The result has too many columns for one chart."

    if intent.heatmap and _needs("heatmap", shape) is None:
        return "heatmap", "A heatmap shows the measure across every combination of the two categories."

    relate = len(measures) >= 2 and (intent.scatter or (intent.versus and not _same_unit(measures)))
    if shape.time is not None and len(shape.dimensions) <= 1 and not intent.scatter:
        # over time, "revenue vs orders" compares two series (each on its own axis when their
        # units differ); only correlation wording asks for a scatter of one against the other
        kind = "area" if intent.area else "line"
        if shape.pivoted:
            return kind, (f"One {_word(kind)} per year over the {shape.time.title.lower()}s of the year "
                          "compares the years period by period.")
        if shape.dimensions and len(measures) == 1:
            return kind, f"One {_word(kind)} per {shape.dimensions[0].title.lower()} shows how each changes over time."
        if shape.dimensions:
            return "table", "Several measures split by a category over time read best as a table."
        if len(measures) > 1:
            return kind, "Several measures over time are compared as lines on one time axis."
        if intent.area:
            return "area", "A filled area shows a cumulative total growing over time."
        return "line", "A line shows how the value changes over time."

    if relate or (len(measures) >= 2 and not axes):
        x, y = scatter_pair(measures, question)
        return "scatter", f"A scatter plot shows how {y.title.lower()} relates to {x.title.lower()}."

    if len(axes) == 1:
        axis = axes[0]
        if len(measures) >= 2:
            return "grouped_column", f"Side-by-side columns compare several measures for each {axis.title.lower()}."
        if intent.share and axis.distinct <= MAX_PIE_SLICES and _parts_of_whole(measures[0]):
            return "pie", "A pie shows each part's share of the total."
        if axis.ordinal and axis.distinct <= 31:
            return "column", f"Columns in {axis.title.lower()} order show the pattern across the cycle."
        if axis.distinct > MAX_BARS:
            return "table", f"{axis.distinct} categories are too many to read as bars, so they are shown as a table."
        longest = max((len(v) for v in axis.values), default=0)
        if intent.rank or axis.distinct > MANY_CATEGORIES or longest > LONG_LABEL:
            why = ("a ranking" if intent.rank else
                   "many categories" if axis.distinct > MANY_CATEGORIES else "long labels")
            return "bar", f"Horizontal bars sorted by value suit {why}."
        return "column", "Columns compare a few categories at a glance."

    if len(axes) == 2 and len(measures) == 1:
        a, b = axes
        if _heatmap_cells(shape) > MAX_HEATMAP_CELLS:
            return "table", "Two categories with this many values read best as a table."
        if intent.heatmap or (a.distinct > HEATMAP_MIN and b.distinct > HEATMAP_MIN):
            return "heatmap", "A heatmap shows the measure across every combination of two many-valued categories."
        if intent.stacked:
            return "stacked_column", "Stacked columns show how each total is composed."
        return "grouped_column", "Grouped columns compare the measure across two categories."

    return "table", "The result has too many dimensions for one chart."


def _same_unit(measures: list[Field]) -> bool:
    """Whether two measures share a unit ("budget vs actual") rather than relate ("price vs units")."""
    a, b = measures[:2]
    return (a.money, a.percent) == (b.money, b.percent)


def _word(kind: str) -> str:
    return "filled area" if kind == "area" else "line"


# --- KPI -----------------------------------------------------------------------------------------


def _display_number(field: Field, value: float | None) -> float | None:
    """Scale a 0..1 percentage to points so ``format_value(percent=True)`` reads it right."""
    if value is None:
        return None
    return value * 100 if field.fraction else value


def _plain(value: float | None) -> int | float | None:
    """2.0 -> 2: whole numbers read as integers in the KPI's JSON."""
    return int(value) if value is not None and value.is_integer() and abs(value) < 2**53 else value


def _kpi(shape: Shape) -> dict:
    """The KPI card: value, formatted value, label, and the previous value with the change."""
    measure = shape.measures[0]
    current_row, previous_row = 0, None
    label = measure.title
    previous_field = measure
    if pair := _kpi_pair(shape):
        current_row, previous_row = pair
        axis = shape.axes[0]
        names = [v.label if isinstance(v, TimePoint) else v for v in axis.values]
        label = f"{measure.title} ({names[current_row]} vs {names[previous_row]})"
    elif pair := _previous_measure(shape):
        measure, previous_field = pair
        label = measure.title
        previous_row = 0
    elif shape.axes:  # one row that names what it measures: "top customer: Acme, $1.2M"
        axis = shape.axes[0]
        value = axis.values[0]
        label = f"{measure.title}: {value.label if isinstance(value, TimePoint) else value}"
    value = _plain(measure.values[current_row])
    previous = _plain(previous_field.values[previous_row]) if previous_row is not None else None
    change = None
    if value is not None and previous not in (None, 0):
        change = (value - previous) / abs(previous) * 100
    flags = {"money": measure.money, "percent": measure.percent}
    return {
        "value": value,
        "formatted": format_value(_display_number(measure, value), **flags),
        "label": label,
        "previous": previous,
        "previous_formatted": (format_value(_display_number(measure, previous), **flags)
                               if previous_row is not None else None),
        "change_pct": round(change, 4) if change is not None else None,
        "change_formatted": format_change(change) if change is not None else None,
    }


# --- public entry points -------------------------------------------------------------------------


def _fallback_title(shape: Shape) -> str:
    if shape.measures and shape.axes:
        return f"{shape.measures[0].title} by {shape.axes[0].title.lower()}"
    if shape.measures:
        return shape.measures[0].title
    return "Result"


def _shape(result: QueryResult, hint: ChartHint, intent: _Intent) -> Shape:
    """The result's shape; a monthly series over several years is pivoted to one series per
    year when the question compares years ("2024 vs 2023 by month", "year over year")."""
    shape = profile(result, hint)
    if intent.compare_years:
        shape = pivot_years(shape) or shape
    return shape


def _formats(shape: Shape) -> dict[str, str]:
    """How each measure column reads (see ``Chart.formats``)."""
    return {m.name: "money" if m.money else ("fraction" if m.fraction else "percent") if m.percent else "number"
            for m in shape.measures}


def _ordered_alternatives(chosen: str, shape: Shape) -> list[str]:
    return [t for t in CHART_TYPES if t != chosen and _needs(t, shape) is None]


def choose_chart(
    question: str,
    result: QueryResult,
    hint: ChartHint | None = None,
    *,
    requested: str | None = None,
) -> Chart:
    """Choose the chart for ``result`` and build it.

    Args:
        question: the user's question; its wording nudges the choice (share, top, vs,
            cumulative, stacked, heatmap…) and becomes the title.
        result: the rows to draw; already row-capped by the data agent.
        hint: what the NLP agent knows (measures, dimensions, money columns, time grain, kind).
        requested: a chart type the user asked for explicitly; honoured when the data fits it,
            otherwise the automatic choice is returned and ``reason`` explains why.

    Returns:
        A ``Chart`` whose ``figure`` is a JSON-safe Plotly figure (None for kpi and table).
    """
    hint = hint or ChartHint()
    intent = _Intent(question or "", hint)
    shape = _shape(result, hint, intent)
    title = title_from_question(question) or _fallback_title(shape)
    chart_type, reason = _auto(shape, intent, question or "")
    if requested:
        wanted = requested.strip().lower().replace(" ", "_").replace("-", "_")
        wanted = {"donut": "pie", "horizontal_bar": "bar", "vertical_bar": "column", "grouped": "grouped_column",
                  "stacked": "stacked_column", "kpi_card": "kpi", "number": "kpi", "scatter_plot": "scatter",
                  "heat_map": "heatmap", "line_chart": "line", "bar_chart": "bar"}.get(wanted, wanted)
        missing = _needs(wanted, shape)
        if missing is None:
            chart_type, reason = wanted, f"You asked for a {wanted.replace('_', ' ')} chart and the data fits it."
        elif wanted not in CHART_TYPES:
            reason = f"There is no '{requested}' chart type, so the best fit is shown: {reason[0].lower()}{reason[1:]}"
        else:
            reason = (f"A {wanted.replace('_', ' ')} chart needs {missing}, so a "
                      f"{chart_type.replace('_', ' ')} is shown instead: {reason[0].lower()}{reason[1:]}")
    figure = None if chart_type in FIGURELESS else build_from_shape(chart_type, title, shape, intent.area, question or "")
    return Chart(
        type=chart_type,
        title=title,
        figure=figure,
        kpi=_kpi(shape) if chart_type == "kpi" else None,
        reason=reason,
        alternatives=_ordered_alternatives(chart_type, shape),
        formats=_formats(shape),
    )


def build_figure(chart_type: str, question: str, result: QueryResult, hint: ChartHint | None = None) -> dict:
    """Build the Plotly figure dict for ``chart_type`` (used by ``choose_chart``, and by clients
    switching to one of a chart's ``alternatives``).

    Raises:
        ValueError: ``chart_type`` is kpi/table (they have no figure), unknown, or does not fit
            the result; the message says what the chart type needs.
    """
    hint = hint or ChartHint()
    intent = _Intent(question or "", hint)
    shape = _shape(result, hint, intent)
    if chart_type in FIGURELESS:
        raise ValueError(f"a {chart_type} has no Plotly figure")
    missing = _needs(chart_type, shape)
    if missing is not None:
        raise ValueError(f"a {chart_type} chart needs {missing}")
    title = title_from_question(question) or _fallback_title(shape)
    return build_from_shape(chart_type, title, shape, intent.area, question or "")
