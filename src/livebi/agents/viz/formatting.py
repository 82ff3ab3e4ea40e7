"""Human-facing text: value formatting, column names, titles, and Plotly number formats.

Python formatting (``format_value``) is used where the server writes the text itself (KPI cards);
Plotly formats (``NumberFormat``) are d3-format strings the browser applies to axes and hovers,
so both must agree on the conventions: ``$`` for money, ``%`` for percentages, K/M/B suffixes.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

EMPTY_VALUE = "—"

# Measures whose names contain one of these are money (unless they also name a count).
_MONEY_WORDS = (
    "revenue", "sales", "amount", "price", "cost", "profit", "budget", "actual", "spend",
    "income", "margin", "value", "gmv", "arr", "mrr", "salary", "fee", "total_due", "freight",
)
_COUNT_WORDS = ("count", "qty", "quantity", "units", "number", "num_", "orders", "customers", "items")
_PERCENT_TOKENS = {"pct", "percent", "percentage", "ratio", "share", "rate"}
# Words of measures that are a ratio when their values are fractions ("gross_margin" 0.17,
# "avg_discount" 0.05) and an amount otherwise ("margin" $82,000, "total_discount" $1,800).
_RATIO_TOKENS = {"margin", "discount", "markup", "churn", "conversion", "utilization", "utilisation"}

_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def to_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (nulls, NaN, infinities, non-numeric text).

    Results are JSON-friendly by contract, but numpy scalars or Decimals may still slip in
    from a connector; NaN would break strict ``JSON.parse`` in the browser, so it becomes None.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
    else:
        try:
            number = float(value)  # numpy scalars, numeric strings
        except (TypeError, ValueError):
            return None
    return number if math.isfinite(number) else None


def _compact(number: float) -> str:
    """1234567 -> '1.2M'; three significant digits at most, trailing '.0' dropped."""
    magnitude = abs(number)
    for size, suffix in _UNITS:
        # 0.9995: 999,960 would print as "1000K"; it belongs to the next unit as "1M"
        if magnitude >= size * 0.9995:
            scaled = magnitude / size
            text = f"{scaled:.0f}" if scaled >= 99.95 else f"{scaled:.1f}"
            return f"{text.removesuffix('.0')}{suffix}"
    return f"{magnitude:,.0f}"


def format_value(value: Any, *, money: bool = False, percent: bool = False, compact: bool = True) -> str:
    """Format one value for people: ``"$1.2M"``, ``"12.5%"``, ``"1,234"``, ``"34.5K"``.

    Args:
        value: a number (int, float, Decimal, numeric string); anything else is shown as text,
            and None as an em dash.
        money: prefix ``$``; amounts under 1,000 keep cents (``"$12.50"``).
        percent: ``value`` is in percentage points (``12.5`` -> ``"12.5%"``). Fractions such as
            ``0.125`` must be scaled by the caller, who knows the column's convention.
        compact: abbreviate 10,000 and above (``"34.5K"``, ``"$1.2M"``; money from 1,000:
            ``"$3.4K"``). With ``compact=False`` every digit is kept (``"$1,234,567.89"``).
    """
    if value is None:
        return EMPTY_VALUE
    if isinstance(value, bool):
        return "Yes" if value else "No"
    number = to_number(value)
    if number is None:
        return str(value)
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    if percent:
        digits = 0 if magnitude >= 100 else 1
        return f"{sign}{magnitude:,.{digits}f}%"
    if money:
        if compact and magnitude >= 1_000:
            return f"{sign}${_compact(magnitude)}"
        if magnitude >= 1_000 and magnitude == int(magnitude):
            return f"{sign}${magnitude:,.0f}"
        return f"{sign}${magnitude:,.2f}"
    if compact and magnitude >= 10_000:
        return f"{sign}{_compact(magnitude)}"
    if magnitude == int(magnitude):
        return f"{sign}{magnitude:,.0f}"
    text = f"{magnitude:,.2f}".rstrip("0").rstrip(".")
    return f"{sign}{text}"


def format_change(change_pct: float | None) -> str:
    """A signed percentage change: ``"+12.5%"``, ``"-3.0%"``, ``"0.0%"``."""
    if change_pct is None:
        return EMPTY_VALUE
    sign = "+" if change_pct > 0 else ("-" if change_pct < 0 else "")
    return f"{sign}{abs(change_pct):,.1f}%"


# --- names -------------------------------------------------------------------------------------

_ACRONYMS = {"id", "usd", "eur", "kpi", "sku", "roi", "aov", "gmv", "arr", "mrr", "yoy", "mom",
             "ytd", "qtd", "mtd", "us", "uk", "eu", "url", "ip"}
_EXPANSIONS = {"avg": "average", "cnt": "count", "qty": "quantity", "pct": "%", "num": "number of",
               "amt": "amount", "yr": "year", "mo": "month", "qtr": "quarter", "wk": "week",
               "dow": "day of week"}


def name_tokens(name: str) -> list[str]:
    """``"totalRevenue_2024"`` -> ``["total", "revenue", "2024"]``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))
    return [t for t in re.split(r"[\s_\-.:/]+", spaced.lower()) if t]


def humanize(name: str) -> str:
    """A column name as an axis title: ``"total_revenue"`` -> ``"Total revenue"``."""
    words = []
    for token in name_tokens(name):
        if token in _ACRONYMS:
            words.append(token.upper())
        else:
            words.append(_EXPANSIONS.get(token, token))
    text = " ".join(words).strip() or str(name)
    return text[0].upper() + text[1:]


def is_money_name(name: str) -> bool:
    """Whether a column's name says it holds money (``total_revenue``, not ``sales_count``)."""
    lowered = name.lower()
    if any(word in lowered for word in _COUNT_WORDS):
        return False
    return any(word in lowered for word in _MONEY_WORDS)


def is_percent_name(name: str) -> bool:
    """Whether a column's name says it holds a percentage or ratio."""
    lowered = name.lower()
    return "%" in lowered or bool(_PERCENT_TOKENS & set(name_tokens(name)))


def is_ratio_name(name: str) -> bool:
    """Whether a column's name may hold a ratio: a percentage when its values are fractions."""
    return bool(_RATIO_TOKENS & set(name_tokens(name)))


_FILLER = re.compile(
    r"^\s*(?:(?:please|hey|ok|okay|so|now|can you|could you|would you|will you|show me|show us|"
    r"show|give me|tell me|display|plot|chart|draw|visuali[sz]e|i want to see|i'd like to see|"
    r"let me see|what(?:'s| is| are| was| were)(?: the)?)\b[\s,]*)+",
    re.IGNORECASE,
)


def title_from_question(question: str, *, limit: int = 80) -> str:
    """The chart title: the question without politeness or a trailing '?', in sentence case."""
    text = " ".join(str(question or "").split())
    stripped = _FILLER.sub("", text).strip(" ?.!,;:")
    text = stripped or text.strip(" ?.!,;:")
    if len(text) > limit:
        cut = text[: limit - 1].rsplit(" ", 1)[0]
        text = cut.rstrip(" ,;:") + "…"
    return text[:1].upper() + text[1:]


def escape(text: str) -> str:
    """Text as Plotly shows it literally: ``&``, ``<``, ``>`` as entities (Plotly renders a subset
    of HTML, links included, in titles, ticks, legends and hovers, and decodes entities back to
    text), ``%{`` so it cannot become a template placeholder."""
    return html.escape(str(text), quote=False).replace("%{", "%&#123;")


#: Figure keys whose strings are livebi's own Plotly markup with ``%{...}`` placeholders; they
#: must never contain text from the data (builders pass it through ``meta`` instead).
TEMPLATE_KEYS = frozenset({"hovertemplate", "texttemplate"})


def escape_figure(node: Any, key: str = "") -> Any:
    """A copy of a Plotly figure (or part of one) with every string escaped (see :func:`escape`),
    except the templates under :data:`TEMPLATE_KEYS`.

    Applied once to every figure the viz agent builds, so no category value, series name, label,
    column name or title from the data can turn into markup, whichever attribute it lands in.
    Escaping everything by default rather than listing the text attributes means a new attribute
    cannot be forgotten; the other strings (colours, formats, modes) contain no ``&<>`` and are
    unchanged.
    """
    if isinstance(node, str):
        return node if key in TEMPLATE_KEYS else escape(node)
    if isinstance(node, dict):
        return {k: escape_figure(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [escape_figure(v, key) for v in node]
    return node


# --- Plotly number formats ---------------------------------------------------------------------


@dataclass(frozen=True)
class NumberFormat:
    """How one measure appears in Plotly: axis tick settings and a hover placeholder."""

    axis: dict[str, Any]  # merged into the value axis (tickprefix, tickformat, ticksuffix, …)
    d3: str  # d3-format spec for hovers, e.g. ",.2f"
    prefix: str = ""
    suffix: str = ""
    short: str = ""  # d3-format spec for value labels on bars; defaults to ``d3``

    def hover(self, placeholder: str) -> str:
        """``hover("y")`` -> ``"$%{y:,.2f}"``: a formatted hovertemplate placeholder."""
        return f"{self.prefix}%{{{placeholder}:{self.d3}}}{self.suffix}"

    def label(self, placeholder: str) -> str:
        """A compact placeholder for text drawn on the chart: ``"$%{x:.3~s}"``."""
        return f"{self.prefix}%{{{placeholder}:{self.short or self.d3}}}{self.suffix}"


def number_format(values: list[float | None], *, money: bool, percent: bool, fraction: bool) -> NumberFormat:
    """Pick axis and hover formats for one measure from its flags and its magnitude.

    Large values are abbreviated on the axis (``~s``: 1.2k, 3.4M) while hovers keep every digit;
    billions use Plotly's ``exponentformat: "B"`` so money reads ``$1.5B`` rather than SI ``G``.
    """
    numbers = [abs(v) for v in values if v is not None]
    largest = max(numbers, default=0.0)
    integral = all(v == int(v) for v in numbers)
    if percent and fraction:
        return NumberFormat({"tickformat": ".0%" if largest >= 0.1 else ".1%"}, ".1%")
    if percent:
        return NumberFormat({"ticksuffix": "%"}, ",.1f", suffix="%")
    axis: dict[str, Any]
    if largest >= 1e9:
        axis = {"exponentformat": "B"}
    elif largest >= 1e3:
        axis = {"tickformat": "~s"}
    else:
        axis = {}
    short = ".3~s" if largest >= 1e4 else ""
    if money:
        return NumberFormat({**axis, "tickprefix": "$"}, ",.2f", prefix="$", short=short or ",.0f")
    return NumberFormat(axis, ",d" if integral else ",.2~f", short=short)
