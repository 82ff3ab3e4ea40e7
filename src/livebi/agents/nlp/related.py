"""Conditions on other tables' rows: quoted names, related rows that exist or not, and values
of tables the base cannot join to (each becomes a filter or a correlated ``[NOT] EXISTS``).

The pure decisions (which words make an existence condition, which bridge reaches a table)
are in :mod:`.existence`; this module applies them to a query being composed. Split from
:mod:`.compose`.
"""

from __future__ import annotations

from .existence import existence_of, exists_specs, route
from .planner import Planner, PlanError, Role
from .query import ExistsSpec, FilterSpec, QuerySpec


_LITERAL_LEADS = {"named", "called", "titled", "is", "=", "of", "with", "as", "name", "title"}


def literal_filter(p: Planner, spec: QuerySpec, subject: str | None, r: Role) -> None:
    """A quoted text. Right after a text column or a table ('the episode "A Love of a
    Lifetime"', 'the cartoon "The Rise of the Blue Beetle"') it is that column's (or that
    table's label's) exact value; otherwise "customers named 'Acme'" matches it anywhere in the
    subject's label. A table the base cannot join to many-to-one is reached by EXISTS instead
    ("the channel that shows the cartoon ..." keeps channels with such a cartoon)."""
    model = p.model
    value = r.mention.links[0].value
    if not value:
        return
    before = [m for m in p.mentions if m.end == r.mention.start
              or (m.end == r.mention.start - 1 and p.intent.norm(m.end) in _LITERAL_LEADS)]
    table = column = None
    op = "ieq"
    if before:
        link = before[-1].links[0]
        if link.kind == "column" and model.column(link.table, link.column).kind == "text":  # type: ignore[arg-type]
            table, column = link.table, link.column
        elif link.kind == "table" and model.tables[link.table].label_column:
            table, column = link.table, model.tables[link.table].label_column
    if table is None:
        table = subject or spec.base
        column = model.tables[table].label_column
        op = "like"
    if column is None:
        return
    flt = FilterSpec(table, column, op, [value], label=model.column(table, column).human)
    if p.reach(spec.base, table) is not None:
        spec.filters.append(flt)
    else:
        found = route(model, table, [spec.base, *sorted(spec.tables() - {spec.base})])
        if found is None:
            raise PlanError(f'I could not relate {r.mention.text} to {model.tables[spec.base].plural}')
        spec.exists.append(ExistsSpec(found[0], False, found[1], found[2], [flt], model.tables[table].plural))
    if op == "like":
        p.assumptions.append(f'Matched {r.mention.text} anywhere in {table}.{column}')


def absent_values(p: Planner, spec: QuerySpec) -> None:
    """"customers who never bought Furniture": NOT EXISTS a related row with that value,
    reached from the query's tables (the base first) directly or through a bridge."""
    model = p.model
    tables = [spec.base] + sorted(spec.tables() - {spec.base})
    for r in p.of_role("absent_value"):
        link = r.mention.links[0]
        found = route(model, link.table, tables)
        if found is None:
            raise PlanError(f'I could not relate "{r.mention.text}" to {model.tables[spec.base].plural}')
        label = model.column(link.table, link.column).human  # type: ignore[arg-type]
        flt = FilterSpec(link.table, link.column, "=", [link.value], label=label)  # type: ignore[arg-type]
        spec.exists.append(ExistsSpec(found[0], True, found[1], found[2], [flt], model.tables[link.table].plural))
        p.assumptions.append(f"Kept {model.tables[found[1]].plural} without a related "
                             f"{model.tables[link.table].singular} whose {label} is {link.value}")


def existence_filters(p: Planner, spec: QuerySpec) -> None:
    """"students with no friends": [NOT] EXISTS on the related rows, which take the value
    filters said after them ("cartoons directed by Ben Jones")."""
    absent_values(p, spec)
    tables = [spec.base] + sorted(spec.tables() - {spec.base})
    related = p.of_role("exists")
    if not related:
        _unreachable_values(p, spec, tables)
        return
    found, taken = exists_specs(p.model, related, p.of_role("filter"), tables, [t.norm for t in p.intent.tokens])
    for role in p.of_role("filter"):
        if id(role) in taken:
            role.role = "related_filter"
    spec.exists.extend(found)
    _period_of_related_rows(p, related, found)
    for e in found:
        said = "without any" if e.negated else "with at least one"
        where = " and ".join(f"{f.label} {'is' if f.op in {'=', 'in'} else f.op} {' or '.join(map(str, f.values))}"
                             for f in e.filters if f.op != "date_range")
        p.assumptions.append(f"Kept {p.model.tables[e.outer].plural} {said} related {e.label}"
                             + (f" whose {where}" if where else ""))
    _unreachable_values(p, spec, tables)
    if len(found) < len(related):
        names = [r.mention.text for r in related if not any(e.table == r.mention.links[0].table for e in found)]
        raise PlanError("I could not relate " + ", ".join(f'"{n}"' for n in names)
                        + f" to {p.model.tables[spec.base].plural}")


def _period_of_related_rows(p: Planner, related: list[Role], found: list[ExistsSpec]) -> None:
    """"customers without any order in the last 3 months": a period said after the related
    noun dates the related rows (the orders), not the rows listed (the customers)."""
    time_words = p.intent.time.consumed
    if not p.intent.time.periods or not time_words or not found:
        return
    first = min(time_words)
    before = [r for r in related if r.mention.end <= first]
    if not before:
        return
    last = before[-1].mention.links[0].table
    target = next((e for e in found if e.label == p.model.tables[last].plural), None)
    if target is None:
        return
    filters = p.time_filters(target.table)
    if filters:
        target.filters.extend(filters)
        p.time_taken = True


def _unreachable_values(p: Planner, spec: QuerySpec, tables: list[str]) -> None:
    """A value of a table the base cannot join to many-to-one ("the channel that shows the
    cartoon 'The Rise of the Blue Beetle'": a cartoon title, channels are the base) keeps the
    base rows that have such a related row: EXISTS, instead of "I could not relate"."""
    model = p.model
    norms = [t.norm for t in p.intent.tokens]
    starts = {k for m in p.mentions for k in range(m.start, m.end)}
    both = "both" in norms
    groups: dict[tuple, list] = {}
    for r in p.of_role("filter"):
        if p.value_options(r.mention, spec.base):
            continue
        for link in r.mention.of_kind("value"):
            found = route(model, link.table, tables)
            if found is None:
                continue
            # "students who do not have a cat": the negation is of the related row's existence
            lacking = r.negated or existence_of(norms, r.mention.start, starts - set(range(r.mention.start, r.mention.end)),
                                                p.intent.negations) is True
            key = (found[0], found[1], link.table, link.column, lacking, r.mention.start if both else 0)
            groups.setdefault(key, [found, []])[1].append(link.value)
            r.role = "related_filter"
            break
    for (table, outer, value_table, column, lacking, _), (found, values) in groups.items():
        values = list(dict.fromkeys(values))
        label = model.column(value_table, column).human
        flt = FilterSpec(value_table, column, "=" if len(values) == 1 else "in", values, label=label)
        spec.exists.append(ExistsSpec(table, lacking, outer, found[2], [flt], model.tables[value_table].plural))
        shown = " or ".join(str(v) for v in values)
        p.assumptions.append(f"Kept {model.tables[outer].plural} {'without' if lacking else 'with'} a related "
                             f"{model.tables[value_table].singular} whose {label} is {shown}")
