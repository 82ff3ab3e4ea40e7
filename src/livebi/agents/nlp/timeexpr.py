"""Time expressions: "in Q2 2023", "last 6 months", "between 2022 and 2023", "monthly".

:func:`extract_time` scans normalized tokens for periods and time grains and reports which
tokens it consumed. Periods are half-open ``[start, end)`` date ranges (either side may be
open) so they translate directly into ``col >= start AND col < end``, which is correct for
dates, timestamps and ISO text alike. Relative expressions are resolved against ``today``,
which the caller fixes, so results are reproducible in tests.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt

from .lexicon import GRAIN_ADJECTIVES, GRAIN_NOUNS, TREND_WORDS
from .normalize import Token

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
UNITS = {"day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month",
         "months": "month", "quarter": "quarter", "quarters": "quarter", "year": "year",
         "years": "year"}
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_NOT_A_YEAR_BEFORE = {"top", "bottom", "first", "over", "above", "under", "below", "than",
                      "least", "most", "exactly", ">", "<", ">=", "<=", "=", "limit"}


@dataclasses.dataclass
class Period:
    """A half-open date range ``[start, end)``; ``None`` leaves that side open."""

    start: dt.date | None
    end: dt.date | None
    text: str  # the words that produced it, for assumptions
    grain: str  # the natural grain of the expression (year, quarter, month, week, day)
    relative: bool = False  # counted from today ("last month"), not named ("May 2014")

    def describe(self) -> str:
        if self.start and self.end:
            last = self.end - dt.timedelta(days=1)
            if last == self.start:
                return self.start.isoformat()
            return f"{self.start.isoformat()} to {last.isoformat()}"
        if self.start:
            return f"from {self.start.isoformat()}"
        if self.end:
            return f"before {self.end.isoformat()}"
        return "all time"


@dataclasses.dataclass
class TimeFindings:
    periods: list[Period] = dataclasses.field(default_factory=list)
    grain: str | None = None
    grain_tokens: set[int] = dataclasses.field(default_factory=set)  # "by month", "monthly"
    ranked_grain: bool = False  # "which month had the most ...": rank the time buckets
    trend: bool = False
    consumed: set[int] = dataclasses.field(default_factory=set)


# -- date arithmetic --------------------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def period_start(day: dt.date, grain: str) -> dt.date:
    if grain == "year":
        return dt.date(day.year, 1, 1)
    if grain == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if grain == "month":
        return dt.date(day.year, day.month, 1)
    if grain == "week":
        return day - dt.timedelta(days=day.weekday())
    return day


def shift(day: dt.date, grain: str, n: int) -> dt.date:
    if grain == "year":
        return add_months(day, 12 * n)
    if grain == "quarter":
        return add_months(day, 3 * n)
    if grain == "month":
        return add_months(day, n)
    if grain == "week":
        return day + dt.timedelta(weeks=n)
    return day + dt.timedelta(days=n)


def calendar_period(start: dt.date, grain: str, text: str) -> Period:
    return Period(start, shift(start, grain, 1), text, grain)


# -- matchers: each returns (Period, tokens used) or None --------------------------------------


def _int(tok: Token | None) -> int | None:
    if tok is None or tok.kind != "number" or tok.value is None or not tok.value.is_integer():
        return None
    return int(tok.value)


def _year(tok: Token | None) -> int | None:
    value = _int(tok)
    if value is not None and 1900 <= value <= 2100 and "," not in tok.text:  # type: ignore[union-attr]
        return value
    return None


def _at(tokens: list[Token], i: int) -> Token | None:
    return tokens[i] if 0 <= i < len(tokens) else None


def _norm(tokens: list[Token], i: int) -> str:
    tok = _at(tokens, i)
    return tok.norm if tok is not None else ""


def _point(tokens: list[Token], i: int, today: dt.date) -> tuple[Period, int] | None:
    """An absolute period starting at token ``i``: year, quarter, half, month, ISO date."""
    tok = _at(tokens, i)
    if tok is None:
        return None
    norm = tok.norm
    if tok.kind == "date":
        try:
            day = dt.date.fromisoformat("-".join(p.zfill(2) for p in norm.split("-")))
        except ValueError:
            return None
        return calendar_period(day, "day", tok.text), 1
    year = _year(tok)
    if year is not None:
        # "2023 q2" / "2024 march"
        nxt = _norm(tokens, i + 1)
        if len(nxt) == 2 and nxt[0] == "q" and nxt[1] in "1234":
            start = dt.date(year, 3 * (int(nxt[1]) - 1) + 1, 1)
            return calendar_period(start, "quarter", f"{year} {nxt.upper()}"), 2
        return calendar_period(dt.date(year, 1, 1), "year", str(year)), 1
    ordinal = ORDINALS.get(norm) if _norm(tokens, i + 1) in {"quarter", "half"} else None
    if (len(norm) == 2 and norm[0] in "qh" and norm[1] in "0123456789") or ordinal:
        # "Q2", "H1", "the second quarter", "first half"
        if ordinal:
            number, letter, used = ordinal, _norm(tokens, i + 1)[0], 2
        else:
            number, letter, used = int(norm[1]), norm[0], 1
        grain, months = ("quarter", 3) if letter == "q" else ("half", 6)
        if not 1 <= number <= 12 // months:
            return None
        norm = f"{letter}{number}"
        i += used - 1
        year = _year(_at(tokens, i + 1))
        if year is None and _norm(tokens, i + 1) == "of":
            year = _year(_at(tokens, i + 2))
            used += 1 if year is not None else 0
        if year is not None:
            used += 1
        month = months * (number - 1) + 1
        if year is None:  # most recent such period that has started
            year = today.year if dt.date(today.year, month, 1) <= today else today.year - 1
        start = dt.date(year, month, 1)
        end = add_months(start, months)
        return Period(start, end, f"{norm.upper()} {year}", "quarter" if grain == "quarter" else "month"), used
    if norm in MONTHS and (norm != "may" or _year(_at(tokens, i + 1)) is not None
                           or _norm(tokens, i - 1) in {"in", "of", "during", "since", "from"}):
        month = MONTHS[norm]
        used = 1
        year = _year(_at(tokens, i + 1))
        if year is None and _norm(tokens, i + 1) == "of":
            year = _year(_at(tokens, i + 2))
            used += 1 if year is not None else 0
        if year is not None:
            used += 1
        else:
            year = today.year if dt.date(today.year, month, 1) <= today else today.year - 1
        start = dt.date(year, month, 1)
        return calendar_period(start, "month", f"{calendar.month_name[month]} {year}"), used
    return None


def _relative(tokens: list[Token], i: int, today: dt.date) -> tuple[Period, int] | None:
    """Periods relative to ``today``: "last 6 months", "this year", "YTD", "yesterday"."""
    found = _relative_period(tokens, i, today)
    if found is not None:
        found[0].relative = True
    return found


def _relative_period(tokens: list[Token], i: int, today: dt.date) -> tuple[Period, int] | None:
    norm = _norm(tokens, i)
    nxt = _norm(tokens, i + 1)
    if norm in {"ytd", "mtd", "qtd", "wtd"}:
        grain = {"y": "year", "m": "month", "q": "quarter", "w": "week"}[norm[0]]
        return Period(period_start(today, grain), today + dt.timedelta(days=1), norm.upper(), grain), 1
    if nxt == "to" and _norm(tokens, i + 2) == "date" and norm in UNITS:
        grain = UNITS[norm]
        return Period(period_start(today, grain), today + dt.timedelta(days=1), f"{norm} to date", grain), 3
    if norm == "today":
        return calendar_period(today, "day", "today"), 1
    if norm == "yesterday":
        return calendar_period(today - dt.timedelta(days=1), "day", "yesterday"), 1
    if norm in {"this", "current"} and nxt in UNITS:
        grain = UNITS[nxt]
        return Period(period_start(today, grain), today + dt.timedelta(days=1), f"{norm} {nxt}", grain), 2
    if norm in {"last", "past", "previous", "prior", "trailing", "recent"}:
        count = _int(_at(tokens, i + 1))
        if count is None and nxt in {"few"}:
            count = 3
        if count is not None and _norm(tokens, i + 2) in UNITS and 0 < count <= 1000:
            grain = UNITS[_norm(tokens, i + 2)]
            end = today + dt.timedelta(days=1)
            # N periods ending today (inclusive): "last 30 days" is today and the 29 before
            start = end - dt.timedelta(days=count) if grain == "day" else shift(end, grain, -count)
            return Period(start, end, f"{norm} {count} {_norm(tokens, i + 2)}", grain), 3
        if nxt in UNITS:
            grain = UNITS[nxt]
            if norm == "past" or norm == "trailing":  # "past year": the rolling 12 months
                end = today + dt.timedelta(days=1)
                return Period(shift(end, grain, -1), end, f"{norm} {nxt}", grain), 2
            start = shift(period_start(today, grain), grain, -1)
            return calendar_period(start, grain, f"{norm} {nxt}"), 2
    return None


def _any_point(tokens: list[Token], i: int, today: dt.date) -> tuple[Period, int] | None:
    return _relative(tokens, i, today) or _point(tokens, i, today)


def _range(tokens: list[Token], i: int, today: dt.date) -> tuple[Period, int] | None:
    """Ranges and open ranges: "between A and B", "from A to B", "since A", "before A"."""
    norm = _norm(tokens, i)
    if norm in {"between", "from"}:
        first = _any_point(tokens, i + 1, today)
        if first is None:
            return None
        j = i + 1 + first[1]
        joiner = _norm(tokens, j)
        if joiner in {"and", "to", "through", "thru", "until", "till", "-"}:
            second = _any_point(tokens, j + 1, today)
            if second is not None:
                start, end = first[0], second[0]
                text = f"{norm} {start.text} {joiner} {end.text}"
                return Period(start.start, end.end, text, min_grain(start.grain, end.grain)), j + 1 + second[1] - i
        if norm == "from":
            return first[0], 1 + first[1]  # "revenue from 2023": the year 2023
        return None
    if norm in {"since", "after", "before", "until", "till", "prior"}:
        offset = 2 if norm == "prior" and _norm(tokens, i + 1) == "to" else 1
        if norm == "prior" and offset == 1:
            return None
        found = _any_point(tokens, i + offset, today)
        if found is None:
            return None
        point, used = found
        if norm == "since":
            period = Period(point.start, None, f"since {point.text}", point.grain)
        elif norm == "after":
            period = Period(point.end, None, f"after {point.text}", point.grain)
        elif norm in {"until", "till"}:
            period = Period(None, point.end, f"until {point.text}", point.grain)
        else:
            period = Period(None, point.start, f"before {point.text}", point.grain)
        return period, offset + used
    return None


_GRAIN_ORDER = ["day", "week", "month", "quarter", "year"]


def min_grain(a: str, b: str) -> str:
    return min(a, b, key=lambda g: _GRAIN_ORDER.index(g) if g in _GRAIN_ORDER else 0)


# -- the scan ---------------------------------------------------------------------------------


def extract_time(tokens: list[Token], today: dt.date, skip: set[int] | None = None) -> TimeFindings:
    """Find periods and grains; tokens in ``skip`` are already taken by another extractor."""
    found = TimeFindings()
    skip = skip or set()
    i = 0
    while i < len(tokens):
        if i in skip:
            i += 1
            continue
        norm = tokens[i].norm
        prev = _norm(tokens, i - 1)
        hit = _range(tokens, i, today) or _relative(tokens, i, today)
        if hit is None and prev not in _NOT_A_YEAR_BEFORE:
            hit = _point(tokens, i, today)
        if hit is not None and not any(k in skip for k in range(i, i + hit[1])):
            period, used = hit
            found.periods.append(period)
            found.consumed.update(range(i, i + used))
            # "in", "during", "for", "of" directly before a period belong to it
            if prev in {"in", "during", "for", "of", "over", "within"} and i - 1 not in skip:
                found.consumed.add(i - 1)
            i += used
            continue
        grain = _grain_at(tokens, i)
        if grain is None and norm in {"and", ","} and _norm(tokens, i + 1) in GRAIN_NOUNS \
                and _norm(tokens, i + 1) != "date" and any(t.norm in {"by", "per", "each"} for t in tokens[:i]):
            grain = (GRAIN_NOUNS[_norm(tokens, i + 1)], 2)  # "by segment and year"
        if grain is None and norm in {"which", "what"} and _norm(tokens, i + 1) in GRAIN_NOUNS \
                and _norm(tokens, i + 1) != "date":
            grain = (GRAIN_NOUNS[_norm(tokens, i + 1)], 2)  # "which month had the lowest revenue"
            found.ranked_grain = True
        if grain is not None:
            grain_name, used = grain
            found.grain = found.grain or grain_name
            found.consumed.update(range(i, i + used))
            found.grain_tokens.update(range(i, i + used))
            i += used
            continue
        if norm in TREND_WORDS or (
            norm == "over" and _norm(tokens, i + 1) == "time"
        ):
            found.trend = True
            found.consumed.update({i, i + 1} if norm == "over" else {i})
        i += 1
    return found


def _grain_at(tokens: list[Token], i: int) -> tuple[str, int] | None:
    """"monthly", "by month", "per year", "each quarter", "for each week", "year over year"."""
    norm = _norm(tokens, i)
    if norm in GRAIN_ADJECTIVES:
        return GRAIN_ADJECTIVES[norm], 1
    if norm in UNITS and _norm(tokens, i + 1) == "over" and _norm(tokens, i + 2) == norm:
        return UNITS[norm], 3  # "month over month"
    if norm in {"yoy", "mom", "qoq", "wow"}:
        return {"y": "year", "m": "month", "q": "quarter", "w": "week"}[norm[0]], 1
    if norm in {"by", "per", "each", "every"} or (norm == "for" and _norm(tokens, i + 1) in {"each", "every"}):
        j = i + (2 if norm == "for" else 1)
        if _norm(tokens, j) in {"each", "every", "the", "a"}:
            j += 1
        noun = _norm(tokens, j)
        if noun in GRAIN_NOUNS and noun != "date":
            return GRAIN_NOUNS[noun], j - i + 1
    return None


# -- data that ends in the past ---------------------------------------------------------------


def data_anchor(periods: list[Period], filters: list[dict], data_ends: dict[tuple[str, str], dt.date]
                ) -> tuple[dt.date, str] | None:
    """(the date to count from, the words) when a relative period holds no data at all.

    "last month" on a warehouse whose orders end in 2014 is empty when counted from today; it
    means the last month *of the data*. ``periods`` are the question's periods (counted from the
    real date), ``filters`` the query's filters (``QuerySpec.to_dict()["filters"]``), and
    ``data_ends`` the last date of each date column whose data ended before the model was built.
    A relative period whose date filter starts after its column's last date is re-counted from
    that date; named periods ("in 2030") are what the user asked for and are never moved.
    """
    relative = {(p.start.isoformat() if p.start else None, p.end.isoformat() if p.end else None): p
                for p in periods if p.relative}
    for f in filters:
        if f.get("op") != "date_range":
            continue
        period = relative.get(tuple(f.get("values") or ()))  # type: ignore[arg-type]
        last = data_ends.get((f.get("table"), f.get("column")))  # type: ignore[arg-type]
        if period is not None and last is not None and period.start is not None and last < period.start:
            return last, period.text
    return None
