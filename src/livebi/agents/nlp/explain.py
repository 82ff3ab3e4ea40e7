"""Saying what a query computes: the explanation sentence, chart hint and alternatives.

These are for people (and the viz agent), so they use human names from the semantic model
and never the raw question text except where a phrase is being quoted back.
"""

from __future__ import annotations

from typing import Any

from . import lexicon as lx
from .linker import Mention
from .model import MeasureDef, SemanticModel
from .query import DimensionSpec, FilterSpec, MeasureSpec, QuerySpec

_OPS = {"=": "is", "!=": "is not", ">": "over", ">=": "at least", "<": "under", "<=": "at most",
        "between": "between", "in": "is one of", "not_in": "is none of"}


def _dimension_words(model: SemanticModel, dim: DimensionSpec, base: str) -> str:
    if dim.grain:
        return dim.grain
    table = model.tables[dim.table]
    column = model.column(dim.table, dim.column)
    if dim.group_keys and dim.column == table.label_column:
        return table.singular
    own = table.singular
    if dim.table == base or column.human.startswith(own):
        return column.human
    return f"{own} {column.human}"  # "customer region": a column of a joined table


def _measure_words(model: SemanticModel, m: MeasureSpec) -> str:
    return m.label[0].upper() + m.label[1:]


def _filter_words(model: SemanticModel, f: FilterSpec, base: str) -> str:
    column = model.column(f.table, f.column)
    name = column.human
    owner = model.tables[f.table].singular
    if f.table != base and not name.startswith(owner):
        name = f"{owner} {name}"  # "customer country", not just "country"
    if f.op == "date_range":
        if f.label.startswith(("from", "before")):
            return f"{name} {f.label}"
        return f"{name} from {f.label}" if " to " in f.label else f"{name} on {f.label}"
    if f.op == "is_true":
        return f"{name} is true"
    if f.op == "not_null":
        return f"{name} is known"
    if f.op == "is_null":
        return f"{name} is missing"
    if f.op == "ieq":
        return f"{name} is {f.values[0]} (any case)"
    if f.op in {"like", "matches", "not_matches"}:
        return f"{name} {f.label}"
    if f.op in {"in", "not_in"}:
        return f"{name} {_OPS[f.op]} " + ", ".join(str(v) for v in f.values)
    if f.op == "between":
        return f"{name} between {f.values[0]:g} and {f.values[1]:g}"
    value = f.values[0]
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{name} {_OPS.get(f.op, f.op)} {shown}"


def explain(model: SemanticModel, spec: QuerySpec) -> str:
    """One plain sentence, e.g. "Total revenue from orders, grouped by customer region"."""
    base = model.tables[spec.base]
    kinds = " and ".join(_filter_words(model, f, spec.base) for f in spec.rate_of)
    if spec.rate_of and not spec.dimensions:  # one rate: "Share of orders where status is cancelled"
        text = f"Share of {base.plural} where {kinds}, in percent"
        if spec.filters:
            text += f", among {base.plural} where " + " and ".join(_filter_words(model, f, spec.base)
                                                                    for f in spec.filters)
        return text
    if spec.kind == "list" and not spec.measures:
        text = f"Rows of {base.plural}"
    else:
        text = " and ".join(_measure_words(model, m) for m in spec.measures) + f" from {base.plural}"
    conditions = [_filter_words(model, f, spec.base) for f in spec.filters]
    for e in spec.exists:  # "that have no loans", "that have a loan where title is Dune"
        related = " and ".join(_filter_words(model, f, e.table) for f in e.filters)
        said = f"{'no' if e.negated else 'at least one'} related {e.label}"
        conditions.append(f"{model.tables[e.outer].plural} have {said}" + (f" with {related}" if related else ""))
    if conditions:
        text += " where " + " and ".join(conditions)
    if spec.dimensions:
        joined = " and ".join(_dimension_words(model, d, spec.base) for d in spec.dimensions)
        text += f", for each {joined}" if spec.kind == "list" else f", grouped by {joined}"
    if spec.having:
        text += ", keeping groups where " + " and ".join(
            f"{h.measure.label} {_OPS.get(h.op, h.op)} {h.values[0]:g}" for h in spec.having)
    if spec.rate_of:
        text += f", with the share of {base.plural} where {kinds} in each group"
    elif spec.share:
        text += ", with each group's share of the total"
    if spec.growth:
        grain = next((d.grain for d in spec.dimensions if d.grain), "period")
        text += f", with the growth against the previous {grain} in percent"
    if spec.kind == "top_n" and spec.limit:
        which = "top" if spec.order and spec.order[0][1] == "desc" else "bottom"
        text += f", {which} {spec.limit}"
    elif spec.kind == "list" and spec.limit:
        text += f" (first {spec.limit})"
    return text


def _definition(model: SemanticModel, m: MeasureSpec) -> MeasureDef | None:
    """The model's measure a query measure was made from (the planner passes its formula on)."""
    info = model.tables.get(m.table)
    return next((d for d in info.measures if d.formula is m.formula), None) if info and m.formula else None


def measure_format(model: SemanticModel, m: MeasureSpec) -> str | None:
    """money | percent | number when known: the semantic layer's word, a ratio of sums (a
    margin), the measure's money flag; None leaves it to the viz agent (names and values)."""
    if m.agg in {"count", "count_distinct"}:
        return None
    found = _definition(model, m)
    if found is not None and found.format:
        return found.format
    if m.formula is not None and m.formula[0] == "ratio":
        return "percent"
    return "money" if m.money else None


def measure_notes(model: SemanticModel, spec: QuerySpec) -> list[str]:
    """Assumptions the measures bring: their semantic layer's default filters, in words."""
    notes = [found.filter_note for m in spec.measures + [h.measure for h in spec.having]
             if (found := _definition(model, m)) is not None and found.filter_note]
    return list(dict.fromkeys(notes))


def chart_hint(model: SemanticModel, spec: QuerySpec) -> dict[str, Any]:
    """What the viz agent needs: the kind of answer and the roles of result columns."""
    formats = {m.alias: measure_format(model, m) for m in spec.measures}
    money = [alias for alias, fmt in formats.items() if fmt == "money"]
    rate_only = bool(spec.rate_of) and not spec.dimensions  # the query returns share_pct alone
    money += [s.alias for s in spec.select
              if set(model.column(s.table, s.column).words) & lx.MONEY_WORDS
              and model.column(s.table, s.column).role == "measure"]
    measures = [] if rate_only else [m.alias for m in spec.measures]
    measures += ["share_pct"] if spec.share else []
    measures += ["growth_pct"] if spec.growth else []
    dims = [d.alias for d in spec.dimensions]
    if spec.kind == "list" and not spec.measures:
        dims = [s.alias for s in spec.select]
    return {
        "kind": spec.kind,
        "time_grain": spec.time_grain,
        "measures": measures,
        "dimensions": dims,
        "money_columns": money,
        "percent_columns": [alias for alias, fmt in formats.items() if fmt == "percent"]
        + (["growth_pct"] if spec.growth else []) + (["share_pct"] if rate_only else []),
        "number_columns": [alias for alias, fmt in formats.items() if fmt == "number"],
    }


def alternative_questions(question: str, swaps: list[tuple[Mention, str]], tokens, extra: list[str],
                          limit: int = 3) -> list[str]:
    """Other readings, phrased as questions by swapping the ambiguous phrase."""
    out: list[str] = []
    for mention, phrase in swaps:
        start = tokens[mention.start].start
        end = tokens[mention.end - 1].end
        rewritten = question[:start] + phrase + question[end:]
        if rewritten != question:
            out.append(rewritten.strip())
    out.extend(extra)
    return list(dict.fromkeys(out))[:limit]
