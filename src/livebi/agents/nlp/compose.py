"""Composition: turn the planner's roles into one :class:`~.query.QuerySpec`.

Order of decisions, each using the previous ones:

1. *requests*: what to aggregate (explicit measures, entity counts, the default measure);
2. the *base table*: the candidate whose requests and context (dimensions, value filters,
   dates) fit best, joins limited to many-to-one steps so sums are never inflated;
3. filters (values, flags, periods, numeric comparisons as WHERE or HAVING), dimensions
   (columns, entity labels, time buckets), ranking, ordering and limits;
4. the kind of answer (kpi, trend, breakdown, top_n, list, share, comparison, correlation).
"""

from __future__ import annotations

import dataclasses

from . import lexicon as lx
from . import strings
from .conditions import amount_of, comparisons, known_entities_only, value_filters
from .extremes import column_for, extreme_row
from .related import existence_filters, literal_filter
from .model import MeasureDef
from .planner import (
    BIG_DIMENSION_LIMIT, LIST_LIMIT, Planner, PlanError, Resolved, Role, count_spec, entity_of,
    dimension_spec, measure_spec, row_select, with_unique_aliases,
)
from .query import DimensionSpec, FilterSpec, MeasureSpec, QuerySpec, SelectColumn

CORRELATION_POINTS = 1000


@dataclasses.dataclass
class Request:
    """Something to aggregate; resolved once the base table is known."""

    kind: str  # measure | count | count_column | default
    role: Role | None = None
    entity: str | None = None  # for counts
    prefer_fact: bool = False  # "unique customers": count them in the fact table
    agg: str | None = None  # overrides the role's aggregation ("minimum and maximum share")

    def bases(self, p: Planner) -> set[str]:
        model = p.model
        if self.kind == "measure":
            return {md.table for md, _ in p.measure_options(self.role.mention)}  # type: ignore[union-attr]
        if self.kind == "count":
            return {self.entity} | {t for t in model.tables if t != self.entity
                                    and model.distance(t, self.entity) is not None}  # type: ignore[arg-type]
        if self.kind in {"avg_entity", "amount"}:
            amount = amount_of(p, self.entity)  # type: ignore[arg-type]
            return {amount.table} if amount else set()
        if self.kind in {"count_column", "column_agg"}:
            out = set()
            for link in self.role.mention.of_kind("column", "table"):  # type: ignore[union-attr]
                out |= {t for t in model.tables if model.distance(t, link.table) is not None}
            return out
        return {t for t in model.tables if model.default_measure(t) is not None}

    def score(self, p: Planner, base: str) -> float | None:
        model = p.model
        if self.kind == "measure":
            opts = p.measure_options(self.role.mention, base)  # type: ignore[union-attr]
            return opts[0][1] if opts else None
        if self.kind == "count":
            distance = model.distance(base, self.entity)  # type: ignore[arg-type]
            if distance is None:
                return None
            own = 0.5 if base == self.entity else 0.0
            return (0.3 * (base != self.entity) if self.prefer_fact else own) - 0.05 * distance \
                + (0.1 if base == model.fact_table else 0.0)
        if self.kind in {"avg_entity", "amount"}:
            amount = amount_of(p, self.entity)  # type: ignore[arg-type]
            return 1.0 if amount is not None and amount.table == base else None
        if self.kind in {"count_column", "column_agg"}:
            opts = p.dimension_options(self.role.mention, base)  # type: ignore[union-attr]
            return opts[0].score - 0.05 * (model.distance(base, opts[0].table) or 0) if opts else None
        if model.default_measure(base) is None:
            return None
        return 0.5 * (base == model.fact_table) + p.owner_bonus(base)


@dataclasses.dataclass
class Draft:
    """What :func:`compose` decided before it knows the base table."""

    requests: list[Request]
    subject_roles: list[Role]  # entity mentions that are neither measured nor grouped on
    subject: str | None  # the entity being listed, counted or ranked
    dims: list[Role]
    operands: list[Role]
    unbound: list  # comparisons with no operand ("orders over 500")
    grain: str | None
    ranking: bool
    having_mode: bool  # the comparison filters groups ("customers with at least 3 orders")
    listing: bool  # no aggregate at all: show rows


def compose(p: Planner) -> QuerySpec:
    """Build the query spec, raising :class:`PlanError` when nothing sensible exists."""
    if not p.roles:
        raise PlanError("I could not match any word to this data")
    draft = _draft(p)
    if draft.listing:
        base = draft.subject or _listing_base(p)
        if base is None:
            raise PlanError("I could not tell what to show")
    else:
        base = _pick_base(p, draft.requests)
    spec = QuerySpec(kind="kpi", base=base)

    having_measures: list[tuple[MeasureSpec, Role]] = []
    for req in draft.requests:
        measure = _resolve_request(p, req, base)
        if measure is None:
            continue
        if req.role is not None and req.role.role == "operand":
            having_measures.append((measure, req.role))
        spec.measures.append(measure)

    _add_dimensions(p, spec, draft)
    _average_per_entity(p, spec, draft.dims)
    _add_filters(p, spec, draft)
    comparisons(p, spec, draft.operands, draft.unbound, having_measures, draft.subject, draft.listing)
    if draft.listing:
        _as_listing(p, spec, draft)
    else:
        _finish(p, spec, draft.ranking, draft.having_mode)
    return with_unique_aliases(spec)


def _draft(p: Planner) -> Draft:
    """Requests (what to aggregate) and the shape of the answer, from the mention roles."""
    model, intent = p.model, p.intent
    if intent.all_columns and not intent.aggs and not intent.superlative and intent.rank_n is None:
        # "all the information about hiring": every column of the table named, row by row
        table = next((r.mention.links[0].table for r in p.roles if r.mention.links[0].kind == "table"), None)
        if table is not None:
            for r in p.roles:
                if r.role in {"measure", "dimension", "subject"} and r.mention.links[0].kind == "table":
                    r.role, r.marked = "subject", False
            return Draft([], p.of_role("subject"), table, [], [], [], None, False, False, True)
    _each_entity_listed(p)
    _which_entity_listed(p)
    subject_roles = p.of_role("subject")
    extreme = extreme_row(p, subject_roles)
    if extreme is not None:
        subject, subject_roles = extreme
        return Draft([], subject_roles, subject, p.of_role("dimension"), [], [], None, False, False, True)
    if intent.superlative and subject_roles and not p.of_role("dimension") \
            and any(r.role in {"measure", "count"} and r.superlative for r in p.roles) and _entity(p, subject_roles[0]):
        ranked = subject_roles.pop(0)  # "the most expensive product": rank products by price
        ranked.role, ranked.marked = "dimension", True
    ranking = intent.rank_n is not None or (intent.superlative and (
        bool(p.of_role("dimension")) or intent.time.ranked_grain))
    requests: list[Request] = []
    for r in list(subject_roles):
        entity = _entity(p, r)
        if r.agg == "avg" and entity is not None and amount_of(p, entity) is not None:
            requests.append(Request("avg_entity", r, entity))  # "average order value"
            r.role = "counted"
            subject_roles.remove(r)
    for r in p.of_role("ranked_entity"):  # "the 3 biggest orders"
        entity = _entity(p, r)
        if entity is None or amount_of(p, entity) is None or intent.rank_n is not None:
            continue
        count = intent.agg_counts.get(r.agg_at) if r.agg_at is not None else None
        said = r.mention.text.split()[-1].lower()
        intent.rank_n = count or (1 if lx.singular(said) == said else 10)
        intent.rank_explicit = count is not None
        intent.rank_dir = "desc" if r.agg == "max" else "asc"
        r.role, r.marked = "dimension", True
        requests.append(Request("amount", r, entity))
        ranking = True
    for r in p.roles:
        if r.role == "measure":
            requests.extend(Request("measure", r, agg=agg) for agg in r.extra_aggs)
            requests.append(Request("measure", r))
        elif r.role == "column_agg":
            requests.append(Request("column_agg", r))
        elif r.role == "count":
            entity = _counted(p, r)
            if entity is not None:
                fact_words = r.distinct or bool(p.of_role("measure"))
                requests.append(Request("count", r, entity, prefer_fact=fact_words))
            else:
                requests.append(Request("count_column", r))
    subject = _entity(p, subject_roles[0]) if subject_roles else None
    if not requests and intent.question_word == "how much" and not p.of_role("dimension"):
        requests.append(Request("default"))  # "how much did Electronics sell": an amount, not rows
    if not requests and intent.question_word == "how many" and not subject:
        # "how many returns" (a value): count the rows of the table that holds it
        for r in p.of_role("filter"):
            table = r.mention.of_kind("value")[0].table
            if model.tables[table].is_entity:
                requests.append(Request("count", r, table))
                break

    if intent.rank_by_count and not requests:
        # "the most common hometown of teachers": count the rows that have each hometown
        dims_now = p.of_role("dimension")
        table = subject or next((lk.table for r in dims_now for lk in r.mention.links[:1]), None)
        if table is not None:
            requests.append(Request("count", None, table))
    if _project_columns(p, requests, subject):
        requests = []  # "the salaries of employees": each employee's salary, not their total

    operands = p.of_role("operand")
    dims = p.of_role("dimension")
    unbound = [c for c in intent.comparisons if all(o.comparison is not c for o in operands)]
    p.implied_filters = []
    for c in [c for c in unbound if c.concept]:
        # "poker players taller than 200": the comparative names the column (height), which
        # is the subject's own or of a table it points at
        # the noun said just before the comparative owns it ("pets of students older than 20")
        before = [r for r in p.roles if r.mention.end <= c.start and r.mention.links[0].kind == "table"]
        owners = [before[-1].mention.links[0].table] if before else []
        owners += [subject] if subject else [lk.table for r in p.roles for lk in r.mention.links[:1]]
        candidates = [t for o in owners if o for t in [o, *model.paths_from(o)]]
        found = next(((t, col) for t in candidates if (col := column_for(model, t, c.concept))), None)
        if found is not None:
            unbound.remove(c)
            p.implied_filters.append((found[0], found[1], c))
    having_mode = False
    for c in [c for c in unbound if c.times and subject is not None]:
        # "products ordered more than 1200 times": the rows of the fact table that point at
        # each product are counted and compared
        child = _counted_child(p, subject)  # type: ignore[arg-type]
        if child is not None:
            unbound.remove(c)
            having_mode = True
            requests.append(Request("count", Role(subject_roles[0].mention, "operand", comparison=c), child))
    for op in operands:
        if op.comparison is not None and op.comparison.op in {"=", "in"} and not p._measure_links(op.mention):
            continue  # "teachers aged 32 or 33": a value of a column, filtered row by row
        if op.comparison is not None and op.comparison.against:
            continue  # "above the average": each row against the column's average
        entity = _counted(p, op)
        if entity is not None and op.mention.links[0].kind == "table":
            having_mode = True  # "at least 3 orders"
            requests.append(Request("count", op, entity))
        elif subject and not any(md.table == subject or p.reach(subject, md.table) is not None
                                 for md, _ in p.measure_options(op.mention)):
            having_mode = True  # "customers with revenue over 1000" (a child table's amounts)
            requests.append(Request("measure", op))
        elif not subject and (dims or ranking) and not requests:
            having_mode = True  # "regions with revenue over 1M"
            requests.append(Request("measure", op))

    if having_mode and not dims and not subject:
        # "grades that have at least 4 students": the column listed is what the rows are
        # grouped by, and the count is compared per value of it
        counted = {req.entity for req in requests if req.kind == "count"}
        for req in [q for q in requests if q.kind == "measure" and q.role is not None and q.role.agg is None
                    and q.role.role == "measure"]:
            if any(lk.kind == "column" and lk.table in counted for lk in req.role.mention.links):  # type: ignore[union-attr]
                req.role.role, req.role.marked = "dimension", True  # type: ignore[union-attr]
                requests.remove(req)
        dims = p.of_role("dimension")
    grain = p.pick_grain()
    marked_dims = [r for r in dims if r.marked]
    plain_dims = [r for r in dims if not r.marked]  # "list customer names", "customer country Germany"
    # "what percentage of orders were cancelled" counts orders; it never lists them
    listing = not requests and not marked_dims and not grain and not ranking and not having_mode \
        and not intent.share \
        and (not plain_dims or intent.wants_list or subject is not None or bool(p.of_role("filter")))
    if not requests and not listing:
        if subject and model.tables[subject].is_entity and not ranking and not (having_mode or unbound):
            requests.append(Request("count", subject_roles[0], subject))  # "orders by month"
            subject_roles[0].role = "counted"
        else:
            requests.append(Request("default"))  # "bottom 3 regions"
    return Draft(requests, subject_roles, subject, dims, operands, unbound, grain, ranking, having_mode, listing)


def _which_entity_listed(p: Planner) -> None:
    """"which customers have never returned an order": with nothing to measure or rank, the
    entity after "which" is what is listed (its rows that meet the existence conditions)."""
    intent = p.intent
    if not (p.of_role("exists", "absent_value", "presence")) or intent.aggs or intent.superlative \
            or intent.rank_n is not None or p.of_role("measure", "count", "operand") or intent.time.grain:
        return
    for r in p.of_role("dimension"):
        if r.marked and not r.marker and _entity(p, r) is not None:
            r.role, r.marked = "subject", False


def _each_entity_listed(p: Planner) -> None:
    """"the age and hometown of every teacher": "every"/"each" after "of" before an entity
    whose own columns are what the question names lists those columns per entity; it is no
    breakdown ("revenue for each region" is one: region is a column, not the entity owning it)."""
    named = [r for r in p.roles if r.role in {"dimension", "measure"} and not r.marked]
    for r in p.of_role("dimension"):
        entity = _entity(p, r)
        start = next((k for k, text in p.intent.markers.items() if text in {"each", "every"}
                      and k + 1 == r.mention.start), None)
        if not r.marked or entity is None or start is None or p.intent.norm(start - 1) != "of" or not named:
            continue
        if all(any(lk.table == entity for lk in n.mention.links if lk.kind in {"column", "measure"}) for n in named):
            r.role, r.marked, r.marker = "subject", False, ""
            del p.intent.markers[start]


def _project_columns(p: Planner, requests: list[Request], subject: str | None) -> bool:
    """Whether the measures the question names are columns to list, not to aggregate.

    A numeric column of the listed entity's own table, named with no aggregation word,
    superlative, breakdown ("by", "per", a time grain), ranking, share, versus or "how
    much/how many", is projected: "list the salaries of employees" shows each employee's
    salary. Aggregates stay for everything else: "total salary of employees", "salary by
    department", "revenue in 2024" (no entity to list), "revenue of customers" (the
    column lives in another table, so it is summed per customer), derived and layer measures.
    When it applies, the measure roles become plain (unmarked) dimensions, so the answer is a
    listing that selects them.
    """
    intent = p.intent
    measured = [r.role for r in requests]
    if subject is None and requests and intent.order_at is not None and p.of_role("dimension") \
            and all(r.role is not None and r.role.mention.start == intent.order_at for r in requests):
        # "sort employee names by their age": only the sort key is a measure; list its table
        subject = next((lk.table for lk in requests[0].role.mention.links if lk.kind == "column"), None)  # type: ignore[union-attr]
    if subject is None or not requests or any(r.kind != "measure" for r in requests) \
            or intent.question_word in {"how much", "how many"} or intent.aggs or intent.share or intent.versus \
            or intent.correlation or intent.rank_n is not None or intent.superlative \
            or intent.time.grain or intent.time.ranked_grain or p.pick_grain() \
            or any(r.marked for r in p.of_role("dimension")):
        return False
    for role in measured:
        if role is None or role.agg is not None or role.superlative or p._is_entity_mention(role.mention):
            return False
        options = p.measure_options(role.mention, subject)
        if not options or options[0][0].derived or options[0][0].column is None \
                or not any(lk.kind == "column" and lk.table == subject for lk in role.mention.links):
            return False
    framed = [r for r in measured if r.mention.start != intent.order_at]  # type: ignore[union-attr]
    if framed and not _named_of_entity(p, framed, subject):  # type: ignore[arg-type]
        return False
    if not framed and not (intent.wants_list or p.of_role("dimension")):
        return False  # only "sorted by X": X orders a listing the question asks for elsewhere
    for role in measured:
        role.role, role.marked = "dimension", False  # type: ignore[union-attr]
    return True


_PROJECTION_LEADS = {"the", "their", "its", "list", "show", "display", "give", "find", "return", "me"}
_PROJECTION_JOINS = {"and", ",", "all", "also"}
_ENTITY_DETERMINERS = {"the", "all", "each", "every", "our", "their", "any", "these", "those"}


def _named_of_entity(p: Planner, measured: list[Role], subject: str) -> bool:
    """The columns are named as a list of the entity's attributes: "(list|the) X(, Y and Z)
    of|for (all|each|the) <entity>". A measure without that frame ("revenue from online
    orders", "freight for orders shipped to Germany") is a KPI and stays aggregated."""
    norm = p.intent.norm
    listed = {k for r in p.roles if r.role in {"measure", "dimension"} for k in range(r.mention.start, r.mention.end)}
    for role in measured:
        k = role.mention.start - 1
        while k >= 0 and (k in listed or norm(k) in _PROJECTION_JOINS):
            k -= 1
        if k < 0 or norm(k) not in _PROJECTION_LEADS:
            return False
    k = max(r.mention.end for r in measured)
    while k in listed or norm(k) in _PROJECTION_JOINS:
        k += 1
    if norm(k) not in {"of", "for"}:
        return False
    k += 1
    while norm(k) in _ENTITY_DETERMINERS:
        k += 1
    return any(r.mention.start == k and _entity(p, r) == subject for r in p.of_role("subject"))


def _add_dimensions(p: Planner, spec: QuerySpec, draft: Draft) -> None:
    """Breakdown columns, entity labels and the time bucket (time first)."""
    model = p.model
    grain = draft.grain
    for r in draft.dims:
        opts = p.dimension_options(r.mention, spec.base)
        if not opts:
            raise PlanError(f'I could not relate "{r.mention.text}" to {model.tables[spec.base].plural}')
        chosen = opts[0]
        p.note_choice(r.mention, chosen, opts)
        column = model.column(chosen.table, chosen.column)  # type: ignore[arg-type]
        if column.role == "date":  # "revenue by order date"
            bucket = grain or "month"
            if not p.intent.time.grain:
                p.assumptions.append(f'Grouped "{r.mention.text}" by {bucket}')
            spec.dimensions.insert(0, DimensionSpec(chosen.table, column.name, bucket, bucket, grain=bucket,
                                                    text_date=column.text_date))
            spec.time_grain, grain = bucket, None
            continue
        dim = dimension_spec(model, chosen)
        owner = model.tables[chosen.table].singular
        if r.mention.norm.startswith(owner + " ") and not dim.alias.startswith(lx.snake(owner)):
            dim.alias = lx.snake(f"{owner} {dim.alias}")  # "supplier country" -> supplier_country
        spec.dimensions.append(dim)
    grouped_by_subject = draft.having_mode or draft.ranking or (draft.unbound and not draft.listing)
    if grouped_by_subject and draft.subject and not spec.dimensions and draft.subject_roles \
            and draft.subject_roles[0].role != "counted":
        spec.dimensions.append(dimension_spec(model, _entity_resolved(p, draft.subject, draft.subject_roles[0])))
    if grain and not spec.time_grain:
        dim = p.time_dimension(spec.base, grain)
        if dim is not None:
            spec.dimensions.insert(0, dim)
            spec.time_grain = grain


def _add_filters(p: Planner, spec: QuerySpec, draft: Draft) -> None:
    """Related rows that must (not) exist, values, flags, quoted text and periods."""
    model = p.model
    existence_filters(p, spec)
    value_filters(p, spec)
    _drop_pinned_dimensions(p, spec, draft.dims)
    if p.intent.share and not spec.dimensions and spec.measures and not draft.listing:
        # "what share of revenue comes from Europe": every region's share, Europe among them
        pinned = next((f for f in spec.filters if f.op in {"=", "in"}), None)
        if pinned is not None and spec.measures[0].formula is None and pinned.table == spec.base:
            pass  # "what percentage of orders were cancelled": one rate (see _rate_within_groups)
        elif pinned is not None:
            spec.filters.remove(pinned)
            label = model.column(pinned.table, pinned.column).human
            spec.dimensions.append(DimensionSpec(pinned.table, pinned.column, lx.snake(label), label))
            p.assumptions.append(f"Showed the share of every {label}, {', '.join(map(str, pinned.values))} included")
    for r in p.of_role("flag"):  # "discontinued products"
        link = p._flag_link(r.mention)
        if link is not None and p.reach(spec.base, link.table) is not None:
            yes = model.yes_values.get((link.table, link.column))  # type: ignore[arg-type]
            spec.filters.append(FilterSpec(link.table, link.column, "is_true" if yes is None else "=",  # type: ignore[arg-type]
                                           [True if yes is None else yes],
                                           label=model.column(link.table, link.column).human))  # type: ignore[arg-type]
    for table, column, c in p.implied_filters:
        if p.reach(spec.base, table) is not None:
            spec.filters.append(FilterSpec(table, column, c.op, c.values, label=model.column(table, column).human))
            p.assumptions.append(f"Compared {table}.{column} {c.op} {', '.join(f'{v:g}' for v in c.values)}")
    for r in p.of_role("presence"):  # "suppliers that don't have a home page": IS NULL
        link = r.mention.links[0]
        if p.reach(spec.base, link.table) is not None:
            label = model.column(link.table, link.column).human  # type: ignore[arg-type]
            spec.filters.append(FilterSpec(link.table, link.column, "is_null" if r.negated else "not_null",  # type: ignore[arg-type]
                                           [], label=label))
            p.assumptions.append(f"Kept rows {'without' if r.negated else 'with'} a {label}")
    for r in p.of_role("literal"):
        literal_filter(p, spec, draft.subject, r)
    strings.apply(p, spec, p.text_conditions, draft.subject)  # "starts with X"
    if not p.time_taken:  # a period that dates related rows is inside their EXISTS
        spec.filters.extend(p.time_filters(spec.base))


def _as_listing(p: Planner, spec: QuerySpec, draft: Draft) -> None:
    """Rows rather than an aggregate: a sensible column selection, newest first, capped."""
    model, base = p.model, spec.base
    extra = [(f.table, f.column) for f in spec.filters if f.op != "date_range"]
    pinned = {(f.table, f.column) for f in spec.filters if f.op in {"=", "in"}}  # a range still varies
    wanted = [(o.table, o.column) for r in draft.dims for o in p.dimension_options(r.mention, base)[:1]
              if (o.table, o.column) not in pinned]
    spec.select = row_select(model, base, wanted, limit=1) if wanted else row_select(model, base, extra)
    shown = [r for r in draft.dims if r.mention.start != p.intent.order_at]
    if wanted and shown and all(r.distinct for r in shown):  # "the different countries of customers"
        spec.select = [s for s in spec.select if (s.table, s.column) in wanted]
        spec.distinct = True
    if p.intent.all_columns and base == draft.subject:
        spec.select = [SelectColumn(base, c, lx.snake(model.column(base, c).human)) for c in model.tables[base].columns]
    spec.dimensions = []
    extreme = p.extreme
    if extreme is not None:
        alias = next((s.alias for s in spec.select if (s.table, s.column) == (extreme.table, extreme.column)), None)
        if alias is None:
            alias = lx.snake(model.column(extreme.table, extreme.column).human)
            spec.select.append(SelectColumn(extreme.table, extreme.column, alias))
        spec.distinct = False
        spec.order = [(alias, extreme.direction)]
        spec.limit = extreme.n
        spec.kind = "list"
        return
    _listing_order(p, spec, draft)
    spec.limit = LIST_LIMIT
    spec.kind = "list"
    if spec.order:
        return
    date = model.default_dates.get(base)
    if date and date[0] == base:
        alias = next((s.alias for s in spec.select if s.column == date[1] and s.table == base), None)
        if alias:
            spec.order = [(alias, "desc")]
    if not spec.order and spec.select:
        spec.order = [(spec.select[0].alias, "asc")]


def _listing_order(p: Planner, spec: QuerySpec, draft: Draft) -> None:
    """The order a listing was asked in: the column after "sorted by" / "in order of", else,
    with only a direction ("the salaries of employees in descending order"), the first
    numeric or date column the question names ("alphabetically": the first text column),
    else the label."""
    intent, model = p.intent, p.model
    direction = intent.list_dir or "asc"
    alphabetical = intent.alphabetical

    def alias_of(table: str, column: str) -> str | None:
        return next((s.alias for s in spec.select if (s.table, s.column) == (table, column)), None)

    if intent.order_at is not None:
        role = next((r for r in draft.dims if r.mention.start == intent.order_at), None)
        opts = p.dimension_options(role.mention, spec.base)[:1] if role is not None else []
        alias = alias_of(opts[0].table, opts[0].column) if opts else None  # type: ignore[arg-type]
        if alias:
            spec.order = [(alias, direction)]
            return
    if intent.list_dir is None or not spec.select:
        return
    named = [(o.table, o.column) for r in draft.dims for o in p.dimension_options(r.mention, spec.base)[:1]]
    kinds = {"text"} if alphabetical else {"number", "date"}
    target = next((tc for tc in named if model.column(*tc).kind in kinds), None)  # type: ignore[arg-type]
    if target is None and alphabetical:
        label = model.tables[spec.base].label_column
        target = (spec.base, label) if label else None
    alias = alias_of(*target) if target else None
    spec.order = [(alias or spec.select[0].alias, direction)]


def _average_per_entity(p: Planner, spec: QuerySpec, dims: list[Role]) -> None:
    """"average revenue per order" is total revenue over the number of orders, not a
    breakdown by order: rewrite an averaged measure plus "per <entity>" that way (other
    breakdowns stay: "average revenue per customer by segment")."""
    per = [r for r in dims if r.marker == "per" and _entity(p, r) is not None]
    averaged = [m for m in spec.measures if m.agg == "avg" and m.formula is not None]
    if len(per) != 1 or not averaged or p.of_role("qualifier"):
        return  # "average order quantity per category": the unit is the order, "per" breaks down
    entity = _entity(p, per[0])
    info = p.model.tables[entity]  # type: ignore[index]
    grouped = next((d for d in spec.dimensions if d.table == entity and not d.grain), None)
    if not info.primary_key or grouped is None:
        return
    spec.dimensions.remove(grouped)
    for m in averaged:
        m.agg = "avg_per"
        m.per = (entity, info.primary_key[0])  # type: ignore[assignment]
        m.alias = f"{m.alias}_per_{lx.snake(info.singular)}"
        m.label = f"{m.label} per {info.singular}"
    if spec.base != entity:
        path = p.model.paths_from(spec.base).get(entity, [])  # type: ignore[arg-type]
        if len(path) == 1 and path[0][1]:  # count the foreign key, no join needed
            for m in averaged:
                m.per = (spec.base, path[0][0].child_cols[0])
    p.assumptions.append(f"Averaged per {info.singular}: the total divided by the number of {info.plural}")


def _drop_pinned_dimensions(p: Planner, spec: QuerySpec, dims: list[Role]) -> None:
    """"revenue for the online channel": a dimension pinned to one value by a filter is not
    a breakdown (unless the user asked for it with "by")."""
    pinned = {(f.table, f.column) for f in spec.filters if f.op == "="}
    asked = {(o.table, o.column) for r in dims if r.marked for o in p.dimension_options(r.mention, spec.base)[:1]}
    spec.dimensions = [d for d in spec.dimensions
                       if d.grain or (d.table, d.column) not in pinned or (d.table, d.column) in asked]


def _entity(p: Planner, role: Role) -> str | None:
    return entity_of(p.model, role)


def _counted_child(p: Planner, entity: str) -> str | None:
    """The table whose rows say how many times something happened to ``entity``: the fact
    table when it points at it, else the biggest table that points at it directly."""
    model = p.model
    children = [e.child for e in model.children(entity)]
    if model.fact_table in children or (model.fact_table and model.fact_table != entity
                                         and entity in model.paths_from(model.fact_table)):
        return model.fact_table
    if not children:
        return None
    return max(children, key=lambda t: model.tables[t].row_count or 0)


def _counted(p: Planner, role: Role) -> str | None:
    """The table whose rows a count counts: an entity, or any table the mention names first
    ("the most friends" counts rows of a ``friend`` link table, which is no entity)."""
    entity = _entity(p, role)
    if entity is None and role.mention.links and role.mention.links[0].kind == "table":
        return role.mention.links[0].table
    return entity


def _entity_resolved(p: Planner, table: str, role: Role) -> Resolved:
    link = next(lk for lk in role.mention.links if lk.kind == "table" and lk.table == table)
    info = p.model.tables[table]
    column = info.label_column or info.primary_key[0]
    return Resolved(link, link.score, table, column)


def _listing_base(p: Planner) -> str | None:
    for r in p.roles:
        for link in r.mention.links:
            if link.kind in {"value", "column"}:
                return link.table
    return None


def _pick_base(p: Planner, requests: list[Request]) -> str:
    candidates: set[str] = set()
    for req in requests:
        candidates |= req.bases(p)
    best, best_score = None, float("-inf")
    for base in sorted(candidates):
        total = 0.0
        for req in requests:
            score = req.score(p, base)
            total += -2.0 if score is None else score
        total += p.context_score(base)
        if total > best_score:
            best, best_score = base, total
    if best is None:
        raise PlanError("I could not find a table that answers this")
    return best


def _resolve_request(p: Planner, req: Request, base: str) -> MeasureSpec | None:
    model = p.model
    if req.kind == "count":
        entity = req.entity
        assert entity is not None
        if base != entity and model.distance(base, entity) is None:
            return None
        spec = count_spec(model, entity, base)
        if base != entity:
            p.assumptions.append(f"Counted {model.tables[entity].plural} that appear in {model.tables[base].plural}")
            p.alternatives.append(f"How many {model.tables[entity].plural} are there?")
        return spec
    if req.kind == "count_column":
        opts = p.dimension_options(req.role.mention, base)  # type: ignore[union-attr]
        if not opts:
            return None
        chosen = opts[0]
        col = model.column(chosen.table, chosen.column)  # type: ignore[arg-type]
        label = lx.plural(col.words[-1]) if len(col.words) == 1 else col.human
        return MeasureSpec("count_distinct", chosen.table, ("col", chosen.column), f"{lx.snake(col.human)}_count",
                           f"number of distinct {label}")
    if req.kind in {"avg_entity", "amount"}:
        entity = req.entity
        amount = amount_of(p, entity)  # type: ignore[arg-type]
        if amount is None or amount.table != base or model.distance(base, entity) is None:  # type: ignore[arg-type]
            return None
        spec = measure_spec(amount, "sum", model)
        info = model.tables[entity]  # type: ignore[index]
        p.assumptions.append(f'Measured {info.plural} by {amount.label} ({amount.table}.{amount.column or amount.label})')
        if req.kind == "amount":
            return spec
        spec.agg = "avg_per"
        path = model.paths_from(base).get(entity, [])  # type: ignore[arg-type]
        spec.per = (base, path[0][0].child_cols[0]) if len(path) == 1 else (entity, info.primary_key[0])  # type: ignore[assignment]
        spec.alias = f"avg_{lx.snake(amount.label)}_per_{lx.snake(info.singular)}"
        spec.label = f"average {amount.label} per {info.singular}"
        return spec
    if req.kind == "column_agg":
        opts = p.dimension_options(req.role.mention, base)  # type: ignore[union-attr]
        if not opts:
            return None
        chosen = opts[0]
        col = model.column(chosen.table, chosen.column)  # type: ignore[arg-type]
        agg = req.role.agg or "max"  # type: ignore[union-attr]
        words = "earliest" if agg == "min" else "latest"
        if col.role != "date":
            words = "first" if agg == "min" else "last"
        return MeasureSpec(agg, chosen.table, ("col", chosen.column), f"{agg}_{lx.snake(col.human)}",
                           f"{words} {col.human}")
    if req.kind == "default":
        measure = model.default_measure(base)
        if measure is None:
            return None
        spec = measure_spec(measure, measure.default_agg, model)
        p.assumptions.append(f"Used {spec.label} ({base}.{measure.column or measure.label}) as the measure")
        return spec
    role = req.role
    assert role is not None
    opts = p.measure_options(role.mention, base)
    if not opts:
        p.assumptions.append(f'Ignored "{role.mention.text}": it is not in {base}')
        return None
    measure: MeasureDef = opts[0][0]
    agg = req.agg or role.agg
    if role.superlative and not p.of_role("dimension") and not p.intent.time.ranked_grain and agg is None:
        agg = "max" if p.intent.rank_dir == "desc" else "min"
    if agg == "count":
        agg = "count_distinct" if role.distinct else "count"
    if agg is None:
        agg = measure.default_agg
        if agg == "avg":
            p.assumptions.append(f"Averaged {measure.label} (it does not add up across rows)")
    spec = measure_spec(measure, agg, model)
    said = role.mention.norm or role.mention.text.lower()
    if measure.derived:
        p.assumptions.append(f'Computed {measure.label} as {measure.description} in {measure.table}')
    elif said != measure.label and lx.singular(said) != lx.singular(measure.label):
        p.assumptions.append(f'Took "{role.mention.text}" to mean {measure.table}.{measure.column}')
    others = [md for md, _ in p.measure_options(role.mention) if md.table != measure.table]
    for other in others[:1] if not p._subject_tables() else []:
        p.swaps.append((role.mention, f"{other.label} of {p.model.tables[other.table].plural}"))
    return spec


def _rate_within_groups(p: Planner, spec: QuerySpec) -> None:
    """"share of returned orders by channel": the rate of a kind of row (a value or flag of the
    counted table's own column) within each group, not how those rows split across the groups;
    without groups, one rate ("what percent of products are discontinued")."""
    if spec.measures[0].formula is not None:
        return
    grouped = {(d.table, d.column) for d in spec.dimensions}
    own = [f for f in spec.filters if f.op in {"=", "in", "is_true"} and f.table == spec.base
           and (f.table, f.column) not in grouped]
    if own:
        spec.share, spec.rate_of = True, own
        spec.filters = [f for f in spec.filters if not any(f is o for o in own)]


def _finish(p: Planner, spec: QuerySpec, ranking: bool, having_mode: bool) -> None:
    intent = p.intent
    if ranking or having_mode:
        known_entities_only(p, spec)
    compared_values = spec.kind == "comparison"
    first = spec.measures[0].alias if spec.measures else None
    time_dims = [d for d in spec.dimensions if d.grain]
    other_dims = [d for d in spec.dimensions if not d.grain]
    if intent.share and other_dims and spec.measures:
        spec.share = True
    if intent.share and spec.measures and (other_dims or not spec.dimensions):
        _rate_within_groups(p, spec)
    if intent.growth and time_dims and spec.measures:
        spec.growth = True
    if ranking and first:
        n = intent.rank_n or intent.which_n
        if n is None:  # "which country has the most customers"
            dim_role = next((r for r in p.of_role("dimension")), None)
            said = dim_role.mention.text.split()[-1].lower() if dim_role else ""
            n = 1 if lx.singular(said) == said else 5
        spec.order = [(first, intent.rank_dir or "desc")]
        spec.limit = n
        spec.kind = "top_n"
        if not intent.rank_explicit and intent.rank_n is not None and n > 1:
            p.assumptions.append(f"Showed the {'top' if spec.order[0][1] == 'desc' else 'bottom'} {n}")
    elif time_dims:
        spec.order = [(d.alias, "asc") for d in time_dims]
        if other_dims and first:
            spec.order.append((first, "desc"))
        spec.kind = "trend"
    elif other_dims and first:
        spec.order = [(first, "desc")]
        spec.kind = "breakdown"
        big = [d for d in other_dims if not p.model.column(d.table, d.column).indexed]
        if big and not having_mode:
            spec.limit = BIG_DIMENSION_LIMIT
    if having_mode and spec.kind in {"breakdown", "kpi"}:
        spec.kind = "list"
    if spec.share and spec.kind in {"breakdown", "kpi"}:
        spec.kind = "share"
    if compared_values or (intent.versus and (len(spec.measures) > 1 or len(intent.time.periods) > 1)):
        if spec.kind in {"breakdown", "kpi", "trend"}:
            spec.kind = "comparison"
    if intent.correlation and len(spec.measures) > 1:
        spec.kind = "correlation"
        if not spec.dimensions:  # one point per row of the base table (its label or key)
            info = p.model.tables[spec.base]
            key = info.label_column or (info.primary_key[0] if info.primary_key else None)
            if key is not None:
                keys = tuple(k for k in info.primary_key if k != key)
                alias = lx.snake(p.model.column(spec.base, key).human)
                if p.model.column(spec.base, key).words in {("id",), ("key",)}:
                    alias = lx.snake(info.singular + " id")
                spec.dimensions.append(DimensionSpec(spec.base, key, alias, alias, group_keys=keys))
                spec.limit = CORRELATION_POINTS
                spec.order = []
