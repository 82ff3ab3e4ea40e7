"""Read a result's shape: which columns are time, dimensions and measures, and how to order them.

Everything the chart rules and figure builders need is computed here once, per column, so the
builders never re-parse a value: measures become floats (or None), dimensions become labels,
time values become ``TimePoint``s that sort chronologically and plot on a real date axis.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from livebi.warehouse.base import QueryResult

from .formatting import humanize, is_money_name, is_percent_name, is_ratio_name, name_tokens, to_number
from .model import ChartHint

BLANK = "(blank)"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Month and quarter names map to their 1-based number, weekdays to 0 (Monday) .. 6.
_MONTH_NAMES = {m.lower(): i for i, m in enumerate(MONTHS, 1)} | {
    name: i for i, name in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                      "august", "september", "october", "november", "december"), 1)
} | {"sept": 9}
_WEEKDAY_NAMES = {
    name: i
    for i, names in enumerate((("mon", "monday"), ("tue", "tues", "tuesday"), ("wed", "wednesday"),
                               ("thu", "thur", "thurs", "thursday"), ("fri", "friday"),
                               ("sat", "saturday"), ("sun", "sunday")))
    for name in names
}
_QUARTER_NAMES = {f"q{i}": i for i in range(1, 5)}

_DATE = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_YEAR_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})\s*[-/ ]?\s*Q([1-4])$", re.IGNORECASE)
_QUARTER_FIRST = re.compile(r"^Q([1-4])\s*[-/ ]?\s*(\d{4})$", re.IGNORECASE)
_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")
_LEADING_NUMBER = re.compile(r"^\s*[<>≤≥~$]?\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class TimePoint:
    """One time value: ``plot`` goes on the axis, ``key`` sorts, ``label`` is what people read."""

    key: str
    plot: str  # "YYYY-MM-DD[ HH:MM:SS]" on a date axis, else a category label
    label: str
    grain: str  # "time" | "day" | "week" | "month" | "quarter" | "year" | periodic unit


@dataclass
class Field:
    """One column as the chart rules see it (or a time made of a year and a month column)."""

    name: str
    title: str
    role: str  # "time" | "dimension" | "measure" | "other"
    values: list[Any]  # per row: float|None (measure), str (dimension), TimePoint|None (time)
    money: bool = False
    percent: bool = False
    fraction: bool = False  # a percentage stored as 0..1
    order: dict[str, int] | None = None  # natural order of labels (months, weekdays, buckets)
    unit: str | None = None  # periodic unit of an ordinal: month|quarter|weekday|hour|week|day
    axis: str | None = None  # for time: "date" (absolute) or "category" (periodic, no year)
    grain: str | None = None  # for time
    distinct: int = 0

    @property
    def ordinal(self) -> bool:
        return self.order is not None

    def numbers(self) -> list[float]:
        return [v for v in self.values if v is not None]


@dataclass
class Shape:
    """The roles of a result's columns plus the question's wording, ready for the chart rules."""

    fields: list[Field]
    time: Field | None
    dimensions: list[Field]
    measures: list[Field]
    others: list[Field]
    row_count: int
    column_count: int
    hint: ChartHint = field(default_factory=ChartHint)
    pivoted: bool = False  # a multi-year series laid out as one series per year (pivot_years)

    @property
    def axes(self) -> list[Field]:
        """Every non-measure the chart could place along an axis: the time first."""
        return ([self.time] if self.time else []) + self.dimensions


# --- time --------------------------------------------------------------------------------------


def _iso(y: int, m: int, d: int = 1) -> str | None:
    try:
        return dt.date(y, m, d).isoformat()
    except ValueError:
        return None


def parse_time(value: Any, *, allow_year: bool = False) -> TimePoint | None:
    """An absolute date-like value as a TimePoint, or None when it is not one.

    Accepts ISO dates and datetimes (timezone dropped: Plotly ignores it anyway), ``2024-03``,
    ``2024-Q1`` / ``Q1 2024``, ISO weeks ``2024-W09``, date objects, and bare years when the
    column's name says it holds years (``allow_year``): 2024 alone is too often a count.
    """
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=None).isoformat(sep=" ")
    elif isinstance(value, dt.date):
        value = value.isoformat()
    if allow_year and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == int(value) and 1800 <= value <= 2200:
            year = int(value)
            return TimePoint(f"{year:04d}-01-01", f"{year:04d}-01-01", str(year), "year")
        return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if match := _DATE.match(text):
        y, m, d, hh, mm, ss = match.groups()
        day = _iso(int(y), int(m), int(d))
        if day is None:
            return None
        if hh is not None and (int(hh), int(mm), int(ss or 0)) != (0, 0, 0):
            stamp = f"{day} {int(hh):02d}:{mm}:{int(ss or 0):02d}"
            return TimePoint(stamp, stamp, stamp, "time")
        return TimePoint(day, day, day, "day")
    if match := _YEAR_MONTH.match(text):
        day = _iso(int(match[1]), int(match[2]))
        return TimePoint(day, day, text, "month") if day else None
    if (match := _QUARTER.match(text)) or (match := _QUARTER_FIRST.match(text)):
        year, quarter = (match[1], match[2]) if match.re is _QUARTER else (match[2], match[1])
        day = _iso(int(year), 3 * int(quarter) - 2)
        return TimePoint(day, day, f"{year}-Q{quarter}", "quarter") if day else None
    if match := _WEEK.match(text):
        try:
            monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1).isoformat()
        except ValueError:
            return None
        return TimePoint(monday, monday, text.upper(), "week")
    if allow_year and (match := _YEAR.match(text)) and 1800 <= int(text) <= 2200:
        return TimePoint(f"{text}-01-01", f"{text}-01-01", text, "year")
    return None


def _parse_times(raw: list[Any], present: list[Any], *, allow_year: bool) -> list[TimePoint | None] | None:
    """Every value parsed as time, or None unless at least 90% of the non-null values parse.

    A sample is tried first so a column of names costs a few regex misses, not one per row;
    each distinct value is parsed once (dates repeat across a dimension's series).
    """
    sample = present[:20]
    if sum(parse_time(v, allow_year=allow_year) is not None for v in sample) < 0.9 * len(sample):
        return None
    cache: dict[Any, TimePoint | None] = {}
    points = []
    for value in raw:
        if value is None:
            points.append(None)
            continue
        key = (type(value), value) if isinstance(value, (str, int, float)) else None
        if key is None:
            points.append(parse_time(value, allow_year=allow_year))
            continue
        if key not in cache:
            cache[key] = parse_time(value, allow_year=allow_year)
        points.append(cache[key])
    parsed = sum(p is not None for p in points)
    return points if parsed and parsed >= 0.9 * len(present) else None


def _infer_grain(points: list[TimePoint]) -> str:
    """The grain of day-precision dates: all 1 January -> year, all first of month -> month…"""
    grains = {p.grain for p in points}
    if grains != {"day"}:
        return "time" if "time" in grains else sorted(grains)[0]
    days = sorted({dt.date.fromisoformat(p.plot) for p in points})
    if len(days) < 2:
        return "day"
    if all((d.month, d.day) == (1, 1) for d in days):
        return "year"
    if all(d.day == 1 for d in days):
        return "quarter" if len(days) >= 3 and all(d.month in (1, 4, 7, 10) for d in days) else "month"
    if all((b - a).days % 7 == 0 for a, b in zip(days, days[1:])):
        return "week"
    return "day"


def _yearish(tokens: list[str]) -> bool:
    return bool({"year", "yr", "fy", "yyyy"} & set(tokens)) or any(t.endswith("year") for t in tokens)


_UNIT_WORDS = {"dow": "weekday", "weekday": "weekday", "isodow": "weekday", "hour": "hour",
               "hr": "hour", "month": "month", "mon": "month", "quarter": "quarter", "qtr": "quarter",
               "week": "week", "wk": "week", "day": "day"}


def _periodic_unit(tokens: list[str]) -> str | None:
    """The periodic unit a numeric column's name announces (``order_month`` -> month).

    Only the first or last word counts, so ``orders_per_month_avg`` stays a measure.
    """
    if "day_of_week" in "_".join(tokens):
        return "weekday"
    for token in (tokens[-1], tokens[0]) if tokens else ():
        if token in _UNIT_WORDS:
            return _UNIT_WORDS[token]
    return None


_PERIODIC_RANGE = {"month": (1, 12), "quarter": (1, 4), "weekday": (0, 7), "hour": (0, 23),
                   "week": (1, 53), "day": (1, 31)}


def _periodic_number(raw: list[Any], unit: str) -> tuple[list[str], dict[str, int]] | None:
    """Labels and order for numbers like month 1-12 (shown as Jan..Dec) or hour 0-23."""
    low, high = _PERIODIC_RANGE[unit]
    numbers = [to_number(v) for v in raw]
    present = [n for n in numbers if n is not None]
    if not present or any(n != int(n) or not low <= n <= high for n in present):
        return None

    def label(n: float | None) -> str:
        if n is None:
            return BLANK
        if unit == "month":
            return MONTHS[int(n) - 1]
        if unit == "quarter":
            return f"Q{int(n)}"
        return str(int(n))

    labels = [label(n) for n in numbers]
    order = {label(float(i)): i for i in range(low, high + 1)}
    return labels, order


def _periodic_text(raw: list[Any]) -> tuple[str, dict[str, int]] | None:
    """The unit and order of text such as month names, weekday names or Q1..Q4."""
    present = {str(v).strip() for v in raw if v is not None}
    if not present:
        return None
    for unit, names in (("month", _MONTH_NAMES), ("weekday", _WEEKDAY_NAMES), ("quarter", _QUARTER_NAMES)):
        if all(p.lower().rstrip(".") in names for p in present):
            return unit, {p: names[p.lower().rstrip(".")] for p in present}
    return None


def _bucket_order(labels: list[str]) -> dict[str, int] | None:
    """Order labels that all start with a number (``"18-24"``, ``"25-34"``) by that number."""
    present = {label for label in labels if label != BLANK}
    if len(present) < 2:
        return None
    starts = {}
    for label in present:
        match = _LEADING_NUMBER.match(label)
        if not match:
            return None
        starts[label] = float(match[1])
    return {label: rank for rank, label in enumerate(sorted(present, key=starts.__getitem__))}


# --- profiling ---------------------------------------------------------------------------------


def label_of(value: Any) -> str:
    """A dimension value as a category label (nulls become ``(blank)``)."""
    if value is None:
        return BLANK
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_ID_WORDS = {"id", "uid", "uuid", "key", "code", "zip", "zipcode", "postcode", "postal", "sku", "ean",
             "isbn", "phone", "number", "no", "nr"}


def _idlike(tokens: list[str]) -> bool:
    """Numbers that name things (``customer_id``, ``zip``, ``invoice_no``) are categories."""
    return bool(tokens) and tokens[-1] in _ID_WORDS and not (len(tokens) == 1 and tokens[0] == "number")


def _time_field(name: str, points: list[TimePoint | None], hint: ChartHint) -> Field:
    present = [p for p in points if p is not None]
    grain = hint.time_grain if hint.time_grain in {"day", "week", "month", "quarter", "year"} else None
    return Field(name, humanize(name), "time", points, axis="date",
                 grain=grain or _infer_grain(present), distinct=len({p.key for p in present}))


def _column_field(name: str, kind: str, raw: list[Any], hint: ChartHint) -> Field:
    lowered = name.lower()
    tokens = name_tokens(name)
    hinted_measure = lowered in {m.lower() for m in hint.measures}
    hinted_dimension = lowered in {d.lower() for d in hint.dimensions}
    present = [v for v in raw if v is not None]

    if not hinted_measure and present:
        allow_year = _yearish(tokens)
        if kind in ("date", "text", "other") or (kind == "number" and allow_year):
            points = _parse_times(raw, present, allow_year=allow_year)
            if points is not None:
                return _time_field(name, points, hint)
        unit = _periodic_unit(tokens)
        if kind == "number" and unit == "month" and all(
            isinstance(v, (int, float)) and v == int(v) and 180001 <= v <= 220012 for v in present
        ):  # yyyymm integers
            points = [parse_time(f"{int(v) // 100}-{int(v) % 100:02d}") if v is not None else None for v in raw]
            if all(p is not None for p, v in zip(points, raw) if v is not None):
                return _time_field(name, points, hint)
        if kind == "number" and unit is not None and (numbered := _periodic_number(raw, unit)):
            labels, order = numbered
            return _ordinal_field(name, labels, order, unit)
        if kind == "text" and (named := _periodic_text(raw)):
            unit, order = named
            return _ordinal_field(name, [label_of(v) for v in raw], order, unit)

    if kind in ("number", "other") and not hinted_dimension:
        numbers = [to_number(v) for v in raw]
        # the engine's "number" kind is trusted (NaN included); "other" must prove it
        numeric = kind == "number" or sum(n is not None for n in numbers) >= len(present)
        if numeric and (hinted_measure or not _idlike(tokens)):
            found = [abs(n) for n in numbers if n is not None]
            money, percent = _unit(name, hint, found)
            fraction = percent and bool(found) and max(found) <= 1.0
            return Field(name, humanize(name), "measure", numbers, money=money, percent=percent,
                         fraction=fraction, distinct=len(set(found)))
        if kind == "other" and not numeric and any(isinstance(v, (list, dict)) for v in present):
            return Field(name, humanize(name), "other", [label_of(v) for v in raw])

    labels = [label_of(v) for v in raw]
    return Field(name, humanize(name), "dimension", labels, order=_bucket_order(labels),
                 distinct=len(set(labels)))


def _unit(name: str, hint: ChartHint, magnitudes: list[float]) -> tuple[bool, bool]:
    """(money, percent) for a measure: what the NLP agent's hint says, else what the name and
    the values say. A ratio word ("margin", "discount") makes fractions a percentage, so a gross
    margin of 0.17 reads 17 %, while a margin of $82,000 stays money."""
    lowered = name.lower()
    if lowered in {m.lower() for m in hint.money_columns}:
        return True, False
    if lowered in {p.lower() for p in hint.percent_columns}:
        return False, True
    if lowered in {n.lower() for n in hint.number_columns}:
        return False, False
    percent = is_percent_name(name) or (is_ratio_name(name) and bool(magnitudes) and max(magnitudes) <= 1.0)
    return not percent and is_money_name(name), percent


def _ordinal_field(name: str, labels: list[str], order: dict[str, int], unit: str) -> Field:
    # Months and quarters without a year still read as a trend; weekdays and hours are cycles.
    role = "time" if unit in ("month", "quarter", "week", "day") else "dimension"
    return Field(name, humanize(name), role, labels, order=order, unit=unit,
                 axis="category" if role == "time" else None, grain=unit if role == "time" else None,
                 distinct=len(set(labels)))


def _combine_year(year: Field, period: Field) -> Field:
    """``year`` + ``month`` (or ``quarter``) columns -> one absolute time on a date axis."""
    points: list[TimePoint | None] = []
    order = period.order or {}
    for ypoint, label in zip(year.values, period.values):
        number = order.get(label)  # months and quarters are numbered from 1
        if ypoint is None or number is None:
            points.append(None)
            continue
        y = ypoint.key[:4]
        if period.unit == "quarter":
            day = f"{y}-{3 * number - 2:02d}-01"
            points.append(TimePoint(day, day, f"{y}-Q{number}", "quarter"))
        else:
            day = f"{y}-{number:02d}-01"
            points.append(TimePoint(day, day, day[:7], "month"))
    return Field(f"{year.name}_{period.name}", humanize(period.unit or "month"), "time", points,
                 axis="date", grain=period.unit, distinct=len({p.key for p in points if p}))


def profile(result: QueryResult, hint: ChartHint | None = None) -> Shape:
    """Classify every column of ``result`` into time, dimension, measure or other."""
    hint = hint or ChartHint()
    rows = result.rows
    kinds = list(result.column_kinds) + ["other"] * (len(result.columns) - len(result.column_kinds))
    fields = [
        _column_field(name, kind, [row[i] if i < len(row) else None for row in rows], hint)
        for i, (name, kind) in enumerate(zip(result.columns, kinds))
    ]
    times = [f for f in fields if f.role == "time"]
    absolute = [f for f in times if f.axis == "date"]
    periodic = [f for f in times if f.axis == "category"]
    time: Field | None = None
    consumed: list[Field] = []
    years = [f for f in absolute if f.grain == "year" and "year" in f.name.lower()]
    parts = [f for f in periodic if f.unit in ("month", "quarter")]
    if years and parts:
        time = _combine_year(years[0], parts[0])
        consumed = [years[0], parts[0]]
    elif absolute:
        time = absolute[0]
        consumed = [time]
    elif periodic:
        time = periodic[0]
        consumed = [time]
    dimensions = []
    for f in fields:
        if f.role in ("time", "dimension") and not any(f is c for c in consumed):
            if f.role == "time":  # a second time column is read as labels
                f.values = [p.label if isinstance(p, TimePoint) else label_of(p) for p in f.values]
                if f.axis == "date":
                    f.order = {label: rank for rank, label in enumerate(sorted(set(f.values)))}
                f.role, f.axis = "dimension", None
                f.distinct = len(set(f.values))
            dimensions.append(f)
    return Shape(
        fields=fields,
        time=time,
        dimensions=dimensions,
        measures=[f for f in fields if f.role == "measure"],
        others=[f for f in fields if f.role == "other"],
        row_count=len(rows),
        column_count=len(result.columns),
        hint=hint,
    )


def pivot_years(shape: Shape) -> Shape | None:
    """A monthly (or quarterly) series spanning two years or more, as the period of the year
    along the axis and one series per year: what "2024 vs 2023 by month" compares. None when
    the shape is not one measure over such a series."""
    time = shape.time
    if time is None or time.axis != "date" or time.grain not in ("month", "quarter") \
            or shape.dimensions or shape.others or len(shape.measures) != 1:
        return None
    years: list[str] = []
    periods: list[str] = []
    for point in time.values:
        if not isinstance(point, TimePoint):
            years.append(BLANK)
            periods.append(BLANK)
            continue
        month = int(point.key[5:7])
        years.append(point.key[:4])
        periods.append(MONTHS[month - 1] if time.grain == "month" else f"Q{(month - 1) // 3 + 1}")
    distinct = sorted({y for y in years if y != BLANK})
    if len(distinct) < 2:
        return None
    if time.grain == "month":
        order = {m: i for i, m in enumerate(MONTHS, 1)}
    else:
        order = {f"Q{i}": i for i in range(1, 5)}
    period = _ordinal_field(time.grain, periods, order, time.grain)
    period.title = humanize(time.grain)
    year = Field("year", "Year", "dimension", years, order={y: i for i, y in enumerate(distinct)},
                 distinct=len(distinct))
    return Shape(fields=[period, year, *shape.measures], time=period, dimensions=[year],
                 measures=shape.measures, others=[], row_count=shape.row_count,
                 column_count=shape.column_count, hint=shape.hint, pivoted=True)
