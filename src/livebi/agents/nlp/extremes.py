"""The row holding an extreme value ("the hometown of the youngest teacher", "the first
student to register", "the money rank of the player with the highest earnings").

Such a question asks for a row (or the n rows) ordered by one column, with the columns it
names, not for an aggregate. :func:`extreme_row` recognises it from the planner's roles and
records an :class:`Extreme` on the planner, which the listing honours (ORDER BY ... LIMIT n).
Split from :mod:`.compose`.
"""

from __future__ import annotations

import dataclasses

from . import lexicon as lx
from .conditions import amount_of
from .model import SemanticModel
from .planner import Planner, Role, entity_of


@dataclasses.dataclass
class Extreme:
    """The row holding an extreme value: ORDER BY ``column`` ``direction`` LIMIT ``n``."""

    table: str
    column: str
    direction: str
    n: int


def extreme_row(p: Planner, subject_roles: list[Role]) -> tuple[str, list[Role]] | None:
    """"the hometown of the youngest teacher", "the money rank of the player with the highest
    earnings", "the production code of the most recent cartoon": the answer is the row (or
    the n rows) holding the extreme value of a column of the entity's own table, with the
    columns the question names, not an aggregate. Only when nothing is broken down ("by",
    "per", "each"), counted or aggregated, and the ranked column lives in the row's table
    (otherwise "the customer with the highest revenue" totals a child table, which the
    superlative ranking does)."""
    intent, model = p.intent, p.model
    ranked_entities = p.of_role("ranked_entity")
    if intent.markers or intent.time.grain or intent.question_word in {"how many", "how much"} \
            or any(r.role in {"count", "operand", "column_agg"} for r in p.roles) or intent.share \
            or len(ranked_entities) > 1:
        return None
    tables = [t for r in subject_roles if (t := entity_of(model, r))]
    tables += [lk.table for r in p.roles if r.role in {"filter", "dimension", "measure"} for lk in r.mention.links[:1]
               if lk.kind in {"value", "column", "measure"}]
    target: tuple[str, str, str] | None = None
    ranked_role: Role | None = None
    if ranked_entities:
        # "the first student to register", "the last transcript": an entity ranked by its own
        # date when it has no amount to rank by ("the 3 biggest orders" has one)
        ranked_role = ranked_entities[0]
        entity = entity_of(model, ranked_role)
        temporal = ranked_role.agg_at is not None and intent.norm(ranked_role.agg_at) in _TEMPORAL_RANKS
        if entity is None or (amount_of(p, entity) is not None and not temporal):
            return None
        column = date_by_verb(p, entity, ranked_role.mention.end)
        if column is None:
            return None
        target = (entity, column, "asc" if ranked_role.agg == "min" else "desc")
        ranked_role.role, ranked_role.marked = "subject", False
        subject_roles = [ranked_role, *subject_roles]
    elif intent.extreme is not None:
        if intent.aggs:
            return None
        words, direction = lx.EXTREME_ADJECTIVES[intent.extreme[1]]
        # the row's own table first, then the tables it points at ("the tallest poker player":
        # the height of the person the player is)
        candidates = list(dict.fromkeys(tables))
        candidates += [t for base in list(candidates) for t in model.paths_from(base) if t not in candidates]
        for table in candidates:
            column = column_for(model, table, words)
            if column is not None:
                flip = "birth" in model.column(table, column).words
                target = (table, column, {"asc": "desc", "desc": "asc"}[direction] if flip else direction)
                break
    elif intent.superlative and intent.rank_n is None and not intent.rank_by_sales:
        ranked = [r for r in p.roles if r.superlative and r.role in {"measure", "dimension"}]
        if len(ranked) != 1 or any(r.role == "dimension" and r.marked and not r.superlative for r in p.roles) \
                or any(agg for k, agg in intent.aggs.items()):
            return None
        ranked_role = ranked[0]
        link = next((lk for lk in ranked_role.mention.links if lk.kind == "column"), None)
        if link is None or model.column(link.table, link.column).role not in {"measure", "date"}:  # type: ignore[arg-type]
            return None
        own = [t for t in dict.fromkeys(tables) if t == link.table]
        if not own:
            return None
        target = (link.table, link.column, intent.rank_dir or "desc")  # type: ignore[assignment]
    if target is None:
        return None
    table, column, direction = target
    for r in p.roles:
        if r is ranked_role:
            r.role, r.marked = "dimension", False
        elif r.role == "measure":
            r.role, r.marked = "dimension", False  # "the money rank of ...": a column to show
    n = intent.which_n or 1
    p.extreme = Extreme(table, column, direction, n)
    said = model.column(table, column).human
    # the rows listed are the entity's, which reach the ranked column's table many-to-one
    subject = next((t for t in tables if t == table or p.reach(t, table) is not None), table)
    p.assumptions.append(f"Showed the {model.tables[subject].singular} with the "
                         f"{'highest' if direction == 'desc' else 'lowest'} {said}")
    return subject, subject_roles


_TEMPORAL_RANKS = {"first", "last", "earliest", "latest", "newest"}


def date_by_verb(p: Planner, table: str, after: int) -> str | None:
    """The date column of ``table`` that the words after the entity name ("the first student
    to *register*": ``date_first_registered``), else the table's own default date."""
    model = p.model
    dates = [c for c in model.tables[table].columns.values() if c.role == "date"]
    said = [p.intent.norm(k) for k in range(after, after + 3) if len(p.intent.norm(k)) >= 5]
    for col in dates:
        if any(w[:6] == word[:6] for w in said for word in col.words if len(word) >= 5):
            return col.name
    default = model.default_dates.get(table)
    if default and default[0] == table:
        return default[1]
    return dates[0].name if len(dates) == 1 else None


def column_for(model: SemanticModel, table: str, words: tuple[str, ...]) -> str | None:
    """The column of ``table`` an extreme adjective ranks by: one whose name holds one of
    ``words`` (in their order of preference), or its own date for "@date"."""
    info = model.tables[table]
    for word in words:
        if word == "@date":
            date = model.default_dates.get(table)
            if date and date[0] == table:
                return date[1]
            continue
        for col in info.columns.values():
            if word in col.words:
                return col.name
    return None
