"""Planning: intent + linked mentions -> a :class:`~.query.QuerySpec`.

The planner decides what each mention *does* in the question (a measure, a breakdown, a
filter, the thing being counted or listed, an operand of a comparison) from its position
relative to the structure words found by intent extraction, then resolves ambiguous mentions
jointly: it tries each plausible base table (the table whose rows are aggregated) and keeps
the reading where every dimension and filter is reachable over many-to-one joins with the best
total match score. Every choice a person could disagree with becomes an assumption; the
runner-up readings become alternative questions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import lexicon as lx
from .existence import existence_of, route
from .intent import Comparison, Intent
from .linker import Mention
from .model import Link, MeasureDef, SemanticModel
from .query import DimensionSpec, FilterSpec, MeasureSpec, QuerySpec, SelectColumn
from .timeexpr import Period

LIST_LIMIT = 100
BIG_DIMENSION_LIMIT = 100
_NEGATION_GAP = {"the", "a", "an", "any", "all", "that", "which", "were", "was", "are", "is", "been", "be",
                 "and", "or", ",", "in", "from", "of", "for", "to"}
_SKIP_BACK = {"the", "a", "an", "all", "its", "their", "and", ",", "of", "each"}


class PlanError(Exception):
    """No sensible query: ``message`` says why; ``words`` are the unknown words, if any."""

    def __init__(self, message: str, words: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.words = words or []


@dataclasses.dataclass
class Role:
    """What one mention does in the question."""

    mention: Mention
    role: str  # measure | dimension | count | filter | subject | operand | flag | literal
    comparison: Comparison | None = None
    marked: bool = False  # introduced by a breakdown marker ("by", "per") or a ranking
    marker: str = ""  # the marker's words ("per", "by", "for each")
    agg: str | None = None
    agg_at: int | None = None  # token index of the aggregation word
    distinct: bool = False
    superlative: bool = False
    negated: bool = False  # "excluding cancelled orders": the filter keeps the other values
    extra_aggs: list[str] = dataclasses.field(default_factory=list)  # "minimum and maximum share": min


@dataclasses.dataclass
class Resolved:
    """A mention resolved to one schema thing, with its score."""

    link: Link
    score: float
    table: str
    column: str | None = None


class Planner:
    """Builds the query for one question; use once."""

    def __init__(self, model: SemanticModel, intent: Intent, mentions: list[Mention]) -> None:
        self.model = model
        self.intent = intent
        self.mentions = mentions
        self.assumptions: list[str] = []
        self.alternatives: list[str] = []  # other readings, already phrased as questions
        self.swaps: list[tuple[Mention, str]] = []  # (mention, phrase to put in its place)
        # decided while composing, read when the query is finished:
        self.extreme: Any = None  # extremes.Extreme: the row holding an extreme value
        self.implied_filters: list[tuple[str, str, Comparison]] = []  # "taller than 200": (table, column, c)
        self.text_conditions: list[Any] = []  # strings.TextCondition: "starts with X" (set by the parser)
        self.time_taken = False  # the question's period dates an EXISTS's related rows, not the base
        self.roles = self._assign_roles()

    # -- roles ----------------------------------------------------------------------------

    def _assign_roles(self) -> list[Role]:
        """Give each mention one role, first match wins:

        quoted literal > operand of a comparison > thing counted ("how many X") > value
        filter > target of a superlative ("the most X") > entity ranked by its size ("the 3
        biggest orders") > column aggregated as such ("first order date") > dimension (after
        "by"/"per", a ranking or "which") > measure > flag ("discontinued") > subject entity
        > dimension. The aggregation word, if any, is the one right before the mention
        (skipping "the", "of", "distinct", ...).
        """
        intent = self.intent
        marker_tokens: set[int] = set(intent.time.grain_tokens)
        for start, text in intent.markers.items():
            marker_tokens.update(range(start, start + len(text.split())))
        agg_by_end = {end: (start, intent.aggs[start]) for start, end in intent.agg_ends.items()}
        roles: list[Role] = []
        dim_ends: set[int] = set()
        for index, m in enumerate(self.mentions):
            kinds = {link.kind for link in m.links}
            role = Role(m, "subject")
            nxt = self.mentions[index + 1] if index + 1 < len(self.mentions) else None
            j = m.start - 1
            while True:
                if j + 1 in agg_by_end:  # "number of unique customers", "the average price"
                    role.agg_at, role.agg = agg_by_end[j + 1]
                    break
                if j >= 0 and (self.intent.norm(j) in _SKIP_BACK or j in intent.distinct_at
                               or j in dim_ends or j == intent.which_n_at) and j not in marker_tokens:
                    role.distinct = role.distinct or j in intent.distinct_at
                    j -= 1
                    continue
                break
            k = role.agg_at - 1 if role.agg_at is not None else -1
            while k > 0 and self.intent.norm(k) in {"and", ",", "or"} and k in agg_by_end:
                start, agg = agg_by_end[k]  # "the average and maximum age": both of the age
                role.extra_aggs.insert(0, agg)
                k = start - 1
            if role.agg in {"avg", "sum", "min", "max", "median"} and nxt is not None and nxt.start == m.end \
                    and self._is_entity_mention(m) and self._measure_links(nxt) and not self._is_entity_mention(nxt) \
                    and not nxt.of_kind("value") and self._comparison_for(nxt) is None:
                # "average order quantity": the entity only says whose quantity; the
                # aggregation belongs to the measure after it
                role.role, role.agg = "qualifier", None
                dim_ends.update(range(m.start, m.end))
                roles.append(role)
                continue
            after_marker = j in marker_tokens
            if after_marker:
                role.marker = next((text for start, text in intent.markers.items()
                                    if start <= j < start + len(text.split())), "by")
            after_rank = intent.rank_at is not None and intent.rank_at <= m.start and \
                all(self.intent.norm(k) in _SKIP_BACK for k in range(intent.rank_at, m.start))
            after_which = self.intent.norm(j) in {"which", "what"} and intent.question_word == "which"
            role.superlative = intent.rank_superlative is not None and intent.rank_superlative <= m.start and \
                all(self.intent.norm(k) in _SKIP_BACK for k in range(intent.rank_superlative, m.start)) \
                or m.end == intent.rank_superlative_before
            comparison = self._comparison_for(m)
            measure_like = bool(self._measure_links(m))
            date_verb = kinds == {"column"} and not after_marker and not set(m.norm.split()) & lx.DATE_NAME_WORDS \
                and all(self.model.column(lk.table, lk.column).role == "date" for lk in m.links)  # type: ignore[arg-type]
            if any(c.against and m.start == c.end for c in intent.comparisons):
                role.role = "qualifier"  # "above the average number of products": the same column again
            elif "literal" in kinds:
                role.role = "literal"
            elif date_verb:
                # "orders shipped in 2013" filters on the ship date; in "orders shipped to Germany
                # in 2013" the verb does not hold the period, and the default date does
                role.role = "date" if m.end in intent.time.consumed else "qualifier"
            elif comparison is not None and (measure_like or "table" in kinds
                                             or (comparison.op in {"=", "in"} and self._column_links(m))):
                role.role, role.comparison = "operand", comparison
            elif role.agg == "count" and kinds != {"value"} and (not measure_like or "table" in kinds):
                role.role = "count"
            elif (lacking := self._existence(index, m)) is not None:
                role.role, role.negated = "exists", lacking  # "students with no friends"
            elif self._is_value(m) and self._absent_value(index, m):
                role.role, role.negated = "absent_value", True  # "customers who never bought Furniture"
            elif self._is_value(m):
                role.role = "filter"
            elif (lacking := self._has_column(m)) is not None:
                role.role, role.negated = "presence", lacking  # "customers who have a fax number"
            elif role.superlative and intent.rank_by_sales and (self._is_entity_mention(m) or not measure_like):
                role.role, role.marked = "dimension", True  # "the best-selling product"
            elif role.superlative and intent.rank_by_count and not self._is_entity_mention(m):
                role.role, role.marked = "dimension", True  # "the most common hometown": grouped, counted
            elif role.superlative:
                counted = self._is_entity_mention(m) or (m.links[0].kind == "table" and not measure_like)
                role.role = "count" if counted else "measure"
                role.agg = role.agg or ("count" if role.role == "count" else None)
            elif role.agg in {"min", "max"} and self._is_entity_mention(m):
                role.role = "ranked_entity"  # "the 3 biggest orders", "smallest customer"
            elif role.agg in {"min", "max"} and not measure_like and self._column_links(m):
                role.role = "column_agg"  # "first order date", "latest signup date"
            elif (after_marker or after_rank or after_which) and not (measure_like and self._prefers_measure(m)):
                role.role = "dimension"
                role.marked = True
            elif measure_like and not self._is_entity_mention(m):
                role.role = "measure"
            elif self._flag_link(m) is not None:
                role.role = "flag"
            elif "table" in kinds:
                role.role = "subject"
            else:
                role.role = "dimension"
            if role.role == "dimension" and roles and roles[-1].role == "dimension" and self._is_entity_mention(m) \
                    and self.intent.norm(m.start - 1) == "of" and roles[-1].mention.end == m.start - 1 \
                    and any(lk.table == m.links[0].table for lk in roles[-1].mention.of_kind("column")):
                role.role = "qualifier"  # "each type of pet": whose type, not a second breakdown
            if role.role == "filter":
                role.negated = self._negated(m, dim_ends)
            if role.role in {"dimension", "filter"}:
                # "number of cancelled orders": the aggregation reaches over value words
                dim_ends.update(range(m.start, m.end))
            roles.append(role)
        return roles

    def _existence(self, index: int, m: Mention) -> bool | None:
        """For a table mention after another table's mention: whether it is an existence
        condition on the earlier one's rows (see :mod:`.existence`), and if so negated."""
        best = m.links[0]
        if best.kind != "table" or index == 0:
            return None
        earlier = [lk.table for other in self.mentions[:index] for lk in other.links[:1]
                   if lk.kind == "table" and lk.table != best.table]
        if not earlier or route(self.model, best.table, earlier) is None:
            return None
        norms = [t.norm for t in self.intent.tokens]
        # values said with the related noun ("never returned an order") do not end the scan
        starts = {k for other in self.mentions if other is not m and not self._value_only(other)
                  for k in range(other.start, other.end)}
        return existence_of(norms, m.start, starts, self.intent.negations)

    def _value_only(self, m: Mention) -> bool:
        return bool(m.links) and all(lk.kind == "value" for lk in m.links)

    def _absent_value(self, index: int, m: Mention) -> bool:
        """"customers who never bought Furniture": a value negated through a verb, of a table
        other than the entity named before it, and with no related noun after it that would
        carry the condition; it asks for the entity's rows that have no such related row."""
        if not self._value_only(m) or index == 0:
            return False
        value_tables = {lk.table for lk in m.links}
        earlier = [lk.table for other in self.mentions[:index] for lk in other.links[:1]
                   if lk.kind == "table" and self.model.tables[lk.table].is_entity and lk.table not in value_tables]
        if not earlier:
            return False
        norms = [t.norm for t in self.intent.tokens]
        starts = {k for other in self.mentions if other is not m for k in range(other.start, other.end)}
        if existence_of(norms, m.start, starts, self.intent.negations) is not True:
            return False
        k = m.start - 1  # the negation must reach over a verb: "not Furniture" is a plain exclusion
        while k >= 0 and norms[k] in {"a", "an", "the", "any"}:
            k -= 1
        if k < 0 or k in self.intent.negations or norms[k] in {"no", "not", "without"}:
            return False
        nxt = self.mentions[index + 1] if index + 1 < len(self.mentions) else None
        if nxt is not None and nxt.start <= m.end + 2 and any(lk.kind == "table" for lk in nxt.links):
            return False  # "never returned an order": the order noun carries it
        return route(self.model, next(iter(value_tables)), earlier) is not None

    def _has_column(self, m: Mention) -> bool | None:
        """For a column mention said as something a row has or lacks ("have a fax number",
        "don't have a home page", "don't report to anyone"): whether it is lacking (NULL), or
        None when the column is not said that way."""
        best = m.links[0]
        if best.kind != "column" or self.model.column(best.table, best.column).role in {"measure", "flag"}:  # type: ignore[arg-type]
            return None
        norms = [t.norm for t in self.intent.tokens]
        k = m.start - 1
        while k >= 0 and norms[k] in {"a", "an", "any", "some", "their", "its", "his", "her"}:
            k -= 1
        pronoun = self.intent.norm(m.end) in {"anyone", "anybody", "anything", "someone", "somebody"}
        if not pronoun and (k < 0 or norms[k] not in {"have", "has", "had", "having", "with", "without"}):
            return None
        if not pronoun and k == m.start - 1 and norms[k] == "with":
            return None  # "customers with fax": a breakdown column, not a presence
        starts = {j for other in self.mentions if other is not m for j in range(other.start, other.end)}
        said = existence_of(norms, m.start, starts, self.intent.negations)
        if said is None and norms[k] in {"without"}:
            return True
        return said if said is not None else (None if pronoun else False)

    def _negated(self, m: Mention, filter_tokens: set[int]) -> bool:
        """A negation word before the value, across "the", "were", other values and "and"/"or"
        ("excluding cancelled and returned orders", "orders that were not returned")."""
        k = m.start - 1
        while k >= 0 and (self.intent.norm(k) in _NEGATION_GAP or k in filter_tokens) \
                and k not in self.intent.negations:
            k -= 1
        return k in self.intent.negations

    def _comparison_for(self, m: Mention) -> Comparison | None:
        """The comparison this mention is the operand of, if any.

        "at least 3 orders" binds the noun after the number (a count); "quantity over 15"
        binds a measure before the comparator. An entity before the comparator ("orders over
        500") is the subject, not the operand: the comparison then applies to its amount.
        """
        for c in self.intent.comparisons:
            if self._binds_after(m, c):
                return c
        for c in self.intent.comparisons:
            if any(other.start in {c.end, c.end + 1} and other is not m and self._binds_after(other, c)
                   for other in self.mentions):
                continue
            gap = [self.intent.norm(k) for k in range(m.end, c.start)]
            if m.end <= c.start and len(gap) <= 2 and all(
                    w in {"of", "is", "was", "with", "that", "are", "has", "have", "where"} for w in gap) \
                    and (self._measure_links(m) or (c.op in {"=", "in"} and self._column_links(m))) \
                    and not self._is_entity_mention(m):
                return c
        return None

    def _binds_after(self, m: Mention, c: Comparison) -> bool:
        # "at least 3 orders", "in at least 50 different orders", "more than 2 of the orders"
        return c.against is None and (m.start == c.end or (m.start == c.end + 1 and (
            self.intent.norm(c.end) in {"in", "of"} or c.end in self.intent.distinct_at)))

    def _measure_links(self, m: Mention) -> list[Link]:
        out = []
        for link in m.links:
            if link.kind == "measure":
                out.append(link)
            elif link.kind == "column" and self.model.column(link.table, link.column).role == "measure":  # type: ignore[arg-type]
                out.append(link)
            elif link.kind == "table" and not self.model.tables[link.table].is_entity \
                    and self.model.default_measure(link.table) is not None:
                out.append(link)
        return out

    def _column_links(self, m: Mention) -> list[Link]:
        return [lk for lk in m.of_kind("column")
                if self.model.column(lk.table, lk.column).role in {"date", "dimension"}]  # type: ignore[arg-type]

    def _prefers_measure(self, m: Mention) -> bool:
        """After "by": "top 5 products by revenue" ranks by a measure, it does not group by it."""
        best = m.links[0]
        if self.intent.rank_n is None and best.kind == "column" and self._counts_something(m):
            return False  # "how many pupils in each grade", "which grade has the most pupils": grouped
        return bool(self._measure_links(m)) and (self.intent.rank_n is not None or best.kind == "measure"
                                                 or self._measure_links(m)[0].score >= best.score)

    def _counts_something(self, m: Mention) -> bool:
        """Whether the question counts rows of the table that holds ``m`` (a table named after
        "how many"/"number of", a superlative or a comparison): then a numeric column after
        "each"/"by"/"which" is what the rows are grouped by, not a total."""
        table = m.links[0].table
        counted = {k for k, agg in self.intent.aggs.items() if agg == "count"}
        for other in self.mentions:
            if other is m or not other.links or other.links[0].kind != "table" or other.links[0].table != table:
                continue
            if any(other.start - 3 <= k < other.start for k in counted) or self.intent.superlative \
                    or any(c.end == other.start for c in self.intent.comparisons):
                return True
        return False

    def _is_entity_mention(self, m: Mention) -> bool:
        best = m.links[0]
        return best.kind == "table" and self.model.tables[best.table].is_entity

    def _is_value(self, m: Mention) -> bool:
        """Whether a mention that matches a value is a filter ("Sales" the department) or a
        schema name ("sales" the measure): a measure word is a value only when the question
        already names another measure ("budget for Sales")."""
        values = m.of_kind("value")
        if not values:
            return False
        schema = [lk for lk in m.links if lk.kind != "value"]
        if not schema:
            return True
        if self._measure_links(m):
            return any(other is not m and self._measure_links(other) and not other.of_kind("value")
                       for other in self.mentions)
        return max(lk.score for lk in schema) < 1.0

    def _flag_link(self, m: Mention) -> Link | None:
        for link in m.of_kind("column"):
            if self.model.column(link.table, link.column).role == "flag":  # type: ignore[arg-type]
                return link
        return None

    def _subject_tables(self) -> set[str]:
        roles = getattr(self, "roles", [])
        return {lk.table for r in roles if r.role == "subject" for lk in r.mention.of_kind("table")}

    def of_role(self, *names: str) -> list[Role]:
        return [r for r in self.roles if r.role in names]

    # -- reachability scoring ---------------------------------------------------------------

    def reach(self, base: str, table: str, *, fanout: bool = False) -> float | None:
        """Score penalty for joining ``table`` into a query over ``base`` (None: impossible)."""
        if table == base:
            return 0.0
        d = self.model.distance(base, table)
        if d is not None:
            return -0.1 * d
        if fanout and table in self.model.paths_from(base, directed=False):
            return -0.6
        return None

    def owner_bonus(self, table: str) -> float:
        words = {lx.singular(w) for w in self.model.tables[table].words}
        bonus = 0.05 if words & lx.PREFERRED_OWNERS else 0.0
        if any(r.role == "subject" and any(lk.table == table for lk in r.mention.of_kind("table"))
               for r in self.roles):
            bonus += 0.2
        return bonus

    def dimension_options(self, m: Mention, base: str, fanout: bool = False) -> list[Resolved]:
        options = []
        for link in m.links:
            if link.kind == "table":
                info = self.model.tables[link.table]
                column = info.label_column or (info.primary_key[0] if info.primary_key else None)
                if column is None:
                    continue
            elif link.kind == "column":
                column = link.column
            else:
                continue
            penalty = self.reach(base, link.table, fanout=fanout)
            if penalty is None:
                continue
            role = self.model.column(link.table, column).role  # type: ignore[arg-type]
            fit = -0.3 if role == "measure" else 0.0
            options.append(Resolved(link, link.score + penalty + fit + self.owner_bonus(link.table),
                                    link.table, column))
        return sorted(options, key=lambda r: -r.score)

    def value_options(self, m: Mention, base: str, fanout: bool = False) -> list[Resolved]:
        named = {(lk.table, lk.column) for other in self.mentions if other is not m
                 for lk in other.of_kind("column")}
        options = []
        for link in m.of_kind("value"):
            penalty = self.reach(base, link.table, fanout=fanout)
            if penalty is not None:
                # "customer country Germany": the column named next to the value wins
                hint = 1.0 if (link.table, link.column) in named else 0.0
                options.append(Resolved(link, link.score + penalty + hint + self.owner_bonus(link.table),
                                        link.table, link.column))
        return sorted(options, key=lambda r: -r.score)

    def measure_options(self, m: Mention, base: str | None = None) -> list[tuple[MeasureDef, float]]:
        out: list[tuple[MeasureDef, float]] = []
        for link in self._measure_links(m):
            if link.kind == "measure":
                measure = self.model.measure(link.table, link.measure)  # type: ignore[arg-type]
            elif link.kind == "table":
                measure = self.model.default_measure(link.table)  # type: ignore[assignment]
            else:
                measure = next(md for md in self.model.tables[link.table].measures if md.column == link.column)
            if base is not None and measure.table != base:
                continue
            score = link.score + (0.3 if measure.table == self.model.fact_table else 0.0)
            if self._subject_tables() & {measure.table}:  # "average unit price of products"
                score += 0.5
            if all(measure is not existing for existing, _ in out):
                out.append((measure, score))
        return sorted(out, key=lambda ms: -ms[1])

    def context_score(self, base: str, fanout: bool = False) -> float:
        """How well every dimension, filter and operand mention fits a query over ``base``."""
        total = 0.0
        for r in self.roles:
            if r.role == "dimension":
                opts = self.dimension_options(r.mention, base, fanout)
            elif r.role == "filter":
                opts = self.value_options(r.mention, base, fanout)
            elif r.role == "subject" and r.mention.links[0].kind == "table":
                # "the name of the course with the most students": the course must be reachable;
                # "how many departments offer degrees": counted where the degrees are
                table = r.mention.links[0].table
                if self.reach(base, table, fanout=fanout) is None:
                    total -= 1.5
                elif base == table:
                    total += 0.1
                continue
            else:
                continue
            total += opts[0].score if opts else -3.0
        if self.intent.time.periods or self.intent.time.grain or self.intent.time.trend:
            total += 0.0 if self.model.default_dates.get(base) else -1.0
        return total

    # -- time -------------------------------------------------------------------------------

    def date_column(self, base: str) -> tuple[str, str] | None:
        """An explicitly mentioned date column reachable from ``base``, else the default."""
        for r in self.roles:
            for link in r.mention.of_kind("column"):
                if self.model.column(link.table, link.column).role == "date" \
                        and self.reach(base, link.table) is not None and r.role not in {"dimension", "qualifier"}:
                    r.role = "date"
                    return (link.table, link.column)  # type: ignore[return-value]
        return self.model.default_dates.get(base)

    def time_filters(self, base: str) -> list[FilterSpec]:
        periods = self.intent.time.periods
        if not periods:
            return []
        where = self.date_column(base)
        if where is None:
            texts = ", ".join(f'"{p.text}"' for p in periods)
            self.assumptions.append(f"Ignored {texts}: {self.model.tables[base].plural} have no date to filter on")
            return []
        table, column = where
        info = self.model.column(table, column)
        period = _merge(periods)
        apart = _apart(periods)  # "2024 vs 2022": those two years, not 2023 between them
        values = [v for p in apart for v in (p.start, p.end)] if apart else [period.start, period.end]
        described = " and ".join(p.describe() for p in apart) if apart else period.describe()
        self.assumptions.append(
            f'Took "{period.text}" to mean {described} (by {self._qualified(table, column)})')
        return [FilterSpec(table, column, "date_range", values, label=described, text_date=info.text_date)]

    def time_dimension(self, base: str, grain: str) -> DimensionSpec | None:
        where = self.date_column(base)
        if where is None:
            self.assumptions.append(f"Ignored the time grain: {self.model.tables[base].plural} have no date")
            return None
        table, column = where
        info = self.model.column(table, column)
        return DimensionSpec(table, column, grain, grain, grain=grain, text_date=info.text_date)

    def pick_grain(self) -> str | None:
        t = self.intent.time
        if t.grain:
            return t.grain
        if t.trend or (self.intent.versus and len(t.periods) > 1):
            if len(t.periods) > 1:
                return t.periods[0].grain if t.periods[0].grain in {"year", "quarter", "month"} else "month"
            period = _merge(t.periods) if t.periods else None
            if period and period.start and period.end and (period.end - period.start).days <= 92:
                return "day"
            return "month"
        return None

    # -- helpers ----------------------------------------------------------------------------

    def _qualified(self, table: str, column: str) -> str:
        return f"{table}.{column}"

    def note_choice(self, m: Mention, chosen: Resolved, options: list[Resolved]) -> None:
        """Record an assumption when other readings were close, and remember them."""
        others = [o for o in options[1:] if (o.table, o.column) != (chosen.table, chosen.column)
                  and o.score >= chosen.score - 0.35]
        if not others and m.text.lower() == (chosen.column or "").lower():
            return
        target = self._qualified(chosen.table, chosen.column) if chosen.column else chosen.table
        if chosen.link.kind == "value":
            if others or len(self.model.phrases.get(tuple(w.lower() for w in m.text.split()), [])) > 1:
                self.assumptions.append(f'Took "{m.text}" to mean {target} = \'{chosen.link.value}\'')
        elif others:
            self.assumptions.append(f'Took "{m.text}" to mean {target}')
        for other in others[:2]:
            words = self.model.tables[other.table].singular
            col_words = self.model.column(other.table, other.column).human if other.column else ""
            before = self.intent.norm(m.start - 1)
            qualified = col_words.startswith(words) or lx.singular(before) == words
            phrase = col_words if qualified else f"{words} {col_words}".strip()
            if other.link.kind == "value":
                phrase = f"{phrase} {m.text}"  # "customer country Germany"
            self.swaps.append((m, phrase))


def _merge(periods: list[Period]) -> Period:
    if len(periods) == 1:
        return periods[0]
    starts = [p.start for p in periods]
    ends = [p.end for p in periods]
    start = None if any(s is None for s in starts) else min(s for s in starts if s)
    end = None if any(e is None for e in ends) else max(e for e in ends if e)
    return Period(start, end, " and ".join(p.text for p in periods), periods[0].grain)


def _apart(periods: list[Period]) -> list[Period]:
    """Closed periods in date order when a gap separates some of them, else []: their date
    filter is then one range per period (``date_range`` values ``[s1, e1, s2, e2, ...]``)."""
    if len(periods) < 2 or any(p.start is None or p.end is None for p in periods):
        return []
    ordered = sorted(periods, key=lambda p: p.start)  # type: ignore[arg-type, return-value]
    if all(b.start <= a.end for a, b in zip(ordered, ordered[1:])):  # type: ignore[operator]
        return []
    return ordered


def entity_of(model: SemanticModel, role: Role) -> str | None:
    """The entity table a mention names first, if its first table link is an entity."""
    for link in role.mention.links:
        if link.kind == "table" and model.tables[link.table].is_entity:
            return link.table
        if link.kind == "table":
            return None
    return None


def measure_spec(measure: MeasureDef, agg: str, model: SemanticModel) -> MeasureSpec:
    """A :class:`MeasureSpec` with a readable alias (``total_revenue``, ``avg_unit_price``)."""
    label = measure.label
    base = lx.snake(label)
    if measure.default_agg == "ratio":  # a ratio of sums ("profit margin") is never re-aggregated
        agg = "ratio"
    prefix = {"sum": "total", "avg": "avg", "min": "min", "max": "max", "count": "count",
              "count_distinct": "distinct", "median": "median", "ratio": ""}[agg]
    alias = base if base.startswith(prefix) else f"{prefix}_{base}".strip("_")
    if agg == "count_distinct":
        alias = f"distinct_{base}_count"
    words = {"sum": "total", "avg": "average", "min": "minimum", "max": "maximum", "count": "count of",
             "count_distinct": "number of distinct", "median": "median", "ratio": ""}[agg]
    return MeasureSpec(agg, measure.table, measure.formula, alias, f"{words} {label}".strip(), measure.money,
                       measure.description)


def count_spec(model: SemanticModel, entity: str, base: str) -> MeasureSpec:
    """Count the ``entity`` table's rows in a query over ``base``."""
    info = model.tables[entity]
    alias = f"{lx.snake(info.singular)}_count"
    label = f"number of {info.plural}"
    if base == entity:
        return MeasureSpec("count", entity, None, alias, label)
    path = model.paths_from(base)[entity]
    if len(path) == 1 and path[0][1]:
        edge = path[0][0]
        return MeasureSpec("count_distinct", base, ("col", edge.child_cols[0]), alias, label)
    return MeasureSpec("count_distinct", entity, ("col", info.primary_key[0]), alias, label)


def dimension_spec(model: SemanticModel, resolved: Resolved) -> DimensionSpec:
    table, column = resolved.table, resolved.column
    assert column is not None
    info = model.tables[table]
    col = model.column(table, column)
    keys: tuple[str, ...] = ()
    if resolved.link.kind == "table" or column == info.label_column:
        keys = tuple(k for k in info.primary_key if k != column)
    if column == info.label_column and not col.words[: len(info.singular.split())] == tuple(info.singular.split()) \
            and resolved.link.kind == "table":
        alias = lx.snake(info.singular)
    elif column in info.primary_key and col.words in {("id",), ("key",)}:
        alias = lx.snake(info.singular + " id")
    else:
        alias = lx.snake(col.human)
    return DimensionSpec(table, column, alias, col.human, group_keys=keys, text_date=col.text_date)


def with_unique_aliases(spec: QuerySpec) -> QuerySpec:
    seen: dict[str, int] = {}
    for item in [*spec.dimensions, *spec.select, *spec.measures]:
        alias = item.alias
        if alias in seen:
            seen[alias] += 1
            item.alias = f"{alias}_{seen[alias]}"
        else:
            seen[alias] = 1
    return spec


def row_select(model: SemanticModel, table: str, extra: list[tuple[str, str]] | None = None,
               limit: int = 8) -> list[SelectColumn]:
    """A sensible column selection for listing rows: the label, then informative columns."""
    info = model.tables[table]
    chosen: list[str] = []
    if info.label_column:
        chosen.append(info.label_column)
    elif info.primary_key:
        chosen.extend(info.primary_key)
    for col in info.columns.values():
        if len(chosen) >= limit:
            break
        if col.name not in chosen and col.role in {"dimension", "date", "measure", "flag"}:
            chosen.append(col.name)
    out = [SelectColumn(table, c, _column_alias(model, table, c)) for c in chosen]
    # name the rows an order refers to (its customer, its product) rather than their keys
    parents = []
    for edge in model.parents(table):
        parent = model.tables[edge.parent]
        if parent.label_column and len(parents) < 2 and limit > 1:
            words = model.column(parent.name, parent.label_column).human
            alias = lx.snake(words if words.startswith(parent.singular) else parent.singular)
            parents.append(SelectColumn(parent.name, parent.label_column, alias))
    out[1:1] = parents
    for t, c in extra or []:
        if all((s.table, s.column) != (t, c) for s in out):
            out.append(SelectColumn(t, c, lx.snake(model.column(t, c).human)))
    return out


def _column_alias(model: SemanticModel, table: str, column: str) -> str:
    """``Id`` of ``Order`` reads better as ``order_id``."""
    col = model.column(table, column)
    if col.words in {("id",), ("key",)}:
        return lx.snake(model.tables[table].singular + " id")
    return lx.snake(col.human)
