"""Conditions of a query: value filters (with negation), numeric comparisons (as WHERE on rows
or HAVING on groups) and the amount that stands for an entity ("orders over 500").

Split from :mod:`.compose`, which calls these once the base table and measures are known.
"""

from __future__ import annotations

from . import lexicon as lx
from .model import MeasureDef
from .planner import Planner, PlanError, Role, measure_spec
from .query import DimensionSpec, FilterSpec, HavingSpec, QuerySpec


def value_filters(p: Planner, spec: QuerySpec) -> None:
    grouped: dict[tuple[str, str, bool], list[str]] = {}
    for r in p.of_role("filter"):
        opts = p.value_options(r.mention, spec.base)
        if not opts:
            raise PlanError(f'I could not relate "{r.mention.text}" to {p.model.tables[spec.base].plural}')
        p.note_choice(r.mention, opts[0], opts)
        grouped.setdefault((opts[0].table, opts[0].column, r.negated), []).append(opts[0].link.value)  # type: ignore[arg-type]
    for (table, column, negated), values in grouped.items():
        values = list(dict.fromkeys(values))
        label = p.model.column(table, column).human
        if negated:
            op = "!=" if len(values) == 1 else "not_in"
            spec.filters.append(FilterSpec(table, column, op, values, label=label))
            p.assumptions.append(f"Left out {label} " + " and ".join(f"'{v}'" for v in values))
        elif len(values) == 1:
            spec.filters.append(FilterSpec(table, column, "=", values, label=label))
        else:
            spec.filters.append(FilterSpec(table, column, "in", values, label=label))
            if p.intent.versus and not any((d.table, d.column) == (table, column) for d in spec.dimensions) \
                    and spec.measures:
                spec.dimensions.append(DimensionSpec(table, column, lx.snake(label), label))
                spec.kind = "comparison"


def comparisons(p: Planner, spec: QuerySpec, operands: list[Role], unbound, having_measures,
                 subject: str | None, listing: bool) -> None:
    model = p.model
    for measure, role in having_measures:
        c = role.comparison
        values = c.values
        spec.having.append(HavingSpec(measure, c.op, values))
    for role in operands:
        if any(r is role for _, r in having_measures):
            continue
        c = role.comparison
        price = _price_verb(p, c.start, subject or spec.base)
        if price is not None and role.mention.end == c.start:
            _row_filter(spec, price, c)  # "products that cost more than 20": their price
            continue
        if c.op in {"=", "in"} and not p._measure_links(role.mention):
            link = next((lk for lk in p._column_links(role.mention) if p.reach(spec.base, lk.table) is not None), None)
            if link is not None:  # "teachers aged 32 or 33" on a text Age column: compare as text
                column = model.column(link.table, link.column)  # type: ignore[arg-type]
                values = [f"{v:g}" for v in c.values] if column.kind == "text" else c.values
                spec.filters.append(FilterSpec(link.table, link.column, c.op if len(values) > 1 else "=",  # type: ignore[arg-type]
                                               values, label=column.human))
                continue
        opts = [md for md, _ in p.measure_options(role.mention) if p.reach(spec.base, md.table) is not None
                and md.column]
        if subject:
            opts.sort(key=lambda md: md.table != subject)
        if not opts:
            p.assumptions.append(f'Ignored the condition on "{role.mention.text}"')
            continue
        _row_filter(spec, opts[0], c)
    for c in unbound:
        if c.op in {"=", "in"}:
            shown = " or ".join(f"{v:g}" for v in c.values)
            p.assumptions.append(f"Ignored the number {shown}: I could not tell what it is the value of")
            continue
        target = subject or spec.base
        # "how many products in the Beverages category cost more than 15": what costs is the
        # thing counted (the base) when the subject named last has no price
        measure = _price_verb(p, c.start, target) or (_price_verb(p, c.start, spec.base) if target != spec.base else None) \
            or _implied_measure(p, spec.base, c, target) or amount_of(p, target)
        if measure is not None and measure.table == spec.base and target != spec.base:
            target = spec.base
        if measure is None or p.reach(spec.base, measure.table, fanout=True) is None:
            p.assumptions.append("Ignored a comparison with nothing to compare")
            continue
        if measure.table == target or listing:
            if measure.column is None or p.reach(spec.base, measure.table) is None:
                p.assumptions.append("Ignored a comparison with nothing to compare")
                continue
            _row_filter(spec, measure, c)
        elif p.reach(spec.base, measure.table) is None:
            p.assumptions.append(f"Ignored the comparison: {measure.label} is not reachable from {spec.base}")
            continue
        else:
            agg = measure_spec(measure, "sum", model)
            values = c.values
            spec.having.append(HavingSpec(agg, c.op, values))
            if all(m.alias != agg.alias for m in spec.measures):
                spec.measures.append(agg)
        p.assumptions.append(f"Compared {measure.label} ({measure.table}) {c.op} {c.value:g}")


def _implied_measure(p: Planner, base: str, c, target: str) -> MeasureDef | None:
    """"books heavier than 0.5", "pets older than 1": the comparative names the measure (a
    weight, an age column) of the subject, else of the table named last before it."""
    implied = lx.COMPARATIVE_ADJECTIVES.get(p.intent.norm(c.start))
    if implied is None:
        return None
    named = [lk.table for m in p.mentions if m.end <= c.start for lk in m.links[:1] if lk.kind == "table"]
    for table in dict.fromkeys([target] + named[::-1]):
        if p.reach(base, table) is None:
            continue
        for word in implied[1]:
            found = next((m for m in p.model.tables[table].measures if m.column
                          and word in p.model.column(table, m.column).words), None)
            if found is not None:
                return found
    return None


def _price_verb(p: Planner, comparator_at: int, subject: str | None) -> MeasureDef | None:
    """"costs more than 20" is about what the subject costs a buyer, whatever columns are named
    cost: an order's own amount, else a product's price."""
    if subject is None or p.intent.norm(comparator_at - 1) not in lx.PRICE_VERBS:
        return None
    own = p.model.default_measure(subject)
    if own is not None and own.concept in {"revenue", "amount"} and own.column:
        return own
    return next((m for m in p.model.tables[subject].measures if m.concept == "price" and m.column), None)


def known_entities_only(p: Planner, spec: QuerySpec) -> None:
    """Rows whose joined entity is missing (an order of an unknown customer) group under NULL;
    a breakdown keeps that group so totals add up, but "top customers" or "customers with more
    than 20 orders" name customers, so the unknown one is left out."""
    for dim in spec.dimensions:
        info = p.model.tables[dim.table]
        if dim.table != spec.base and not dim.grain and (dim.group_keys or dim.column == info.label_column):
            spec.filters.append(FilterSpec(dim.table, dim.column, "not_null", [], label=dim.label))


def _row_filter(spec: QuerySpec, measure: MeasureDef, c) -> None:
    values = [] if c.against else c.values
    spec.filters.append(FilterSpec(measure.table, measure.column, c.op, values, label=measure.label,  # type: ignore[arg-type]
                                   against=c.against))


def amount_of(p: Planner, table: str) -> MeasureDef | None:
    """The money amount of a row: its own revenue/amount, else a child table's revenue."""
    model = p.model
    own = model.default_measure(table)
    if own is not None and own.concept in {"revenue", "amount"}:
        return own
    for edge in model.children(table):
        child = model.default_measure(edge.child)
        if child is not None and child.concept == "revenue":
            return child
    return own
