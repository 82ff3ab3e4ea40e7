"""The semantic model: what the parser knows about one warehouse, derived from its schema.

Built once per warehouse (the NLP agent caches it) from a :class:`~livebi.warehouse.base.Schema`
and an optional value index (distinct values of low-cardinality text columns). It holds:

* human names for tables and columns (``BillingCountry`` -> "billing country") and the phrase
  index the linker matches questions against (names, singular/plural forms, measure concepts,
  values);
* each column's role (key, measure, dimension, date, flag) and each table's label column,
  default date column and default measure, including measures the schema does not store but
  that follow from its columns (revenue = unit price x quantity x (1 - discount); profit =
  revenue - cost);
* the foreign-key graph, declared and inferred from naming (``customer_id`` -> ``customers``),
  with shortest join paths between tables;
* the default fact table (the table with most foreign keys, measures and rows).

Nothing here is specific to a particular database: every fact comes from names and types.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Iterable

from livebi.warehouse.base import Schema, Table

from . import lexicon as lx
from .normalize import tokenize

Phrase = tuple[str, ...]


@dataclasses.dataclass
class ColumnInfo:
    table: str
    name: str
    type: str
    kind: str  # the schema's kind
    words: tuple[str, ...]
    role: str  # key | measure | dimension | date | flag | other
    text_date: bool = False  # a date stored as text (e.g. SQLite '2012-07-04')
    additive: bool = True
    money: bool = False
    indexed: bool = False  # its values are in the value index
    distinct_count: int = 0  # how many values the index holds for it

    @property
    def human(self) -> str:
        return " ".join(self.words)


@dataclasses.dataclass
class MeasureDef:
    """A measure: a stored numeric column or a formula over a table's columns.

    ``formula`` is a tiny expression tree rendered to SQL by :mod:`.sqlgen`:
    ``("col", name)``, ``("mul", a, b)``, ``("sub", a, b)``, ``("one_minus", a)``, and at the top
    only ``("ratio", a, b)``: SUM(a) / SUM(b), whatever aggregation was asked for.
    """

    table: str
    label: str  # human words, e.g. "revenue"
    formula: tuple
    default_agg: str = "sum"
    money: bool = False
    concept: str | None = None
    derived: bool = False
    description: str = ""  # e.g. "UnitPrice * Quantity * (1 - Discount)"

    @property
    def key(self) -> str:
        return f"{self.table}.{self.label}"

    @property
    def column(self) -> str | None:
        return self.formula[1] if self.formula[0] == "col" else None


@dataclasses.dataclass
class TableInfo:
    name: str
    words: tuple[str, ...]
    columns: dict[str, ColumnInfo]
    primary_key: tuple[str, ...]
    label_column: str | None = None
    measures: list[MeasureDef] = dataclasses.field(default_factory=list)
    row_count: int | None = None

    @property
    def human(self) -> str:
        return " ".join(self.words)

    @property
    def singular(self) -> str:
        return " ".join(self.words[:-1] + (lx.singular(self.words[-1]),))

    @property
    def plural(self) -> str:
        return " ".join(self.words[:-1] + (lx.plural(lx.singular(self.words[-1])),))

    @property
    def is_entity(self) -> bool:
        """Rows are things you count ("how many orders"), not periodic measurements."""
        return len(self.primary_key) == 1

    def measure(self, label: str) -> MeasureDef | None:
        return next((m for m in self.measures if m.label == label), None)


@dataclasses.dataclass(frozen=True)
class Link:
    """One thing a phrase can mean."""

    kind: str  # table | column | measure | value
    table: str
    column: str | None = None
    measure: str | None = None  # MeasureDef.label
    value: str | None = None
    score: float = 1.0  # how exactly the phrase names it (1 = its full name)


@dataclasses.dataclass(frozen=True)
class Edge:
    """A many-to-one join: ``child.child_cols = parent.parent_cols``."""

    child: str
    child_cols: tuple[str, ...]
    parent: str
    parent_cols: tuple[str, ...]
    declared: bool = True


class SemanticModel:
    """Schema-derived knowledge used by the parser; immutable once built."""

    def __init__(self, schema: Schema, tables: dict[str, TableInfo], edges: list[Edge]) -> None:
        self.schema = schema
        self.tables = tables
        self.edges = edges
        self.phrases: dict[Phrase, list[Link]] = collections.defaultdict(list)
        self.vocabulary: set[str] = set()
        self.schema_words: set[str] = set()  # words of table and column names (not values)
        self.max_phrase_len = 1
        self._parents: dict[str, list[Edge]] = collections.defaultdict(list)
        self._children: dict[str, list[Edge]] = collections.defaultdict(list)
        for edge in edges:
            self._parents[edge.child].append(edge)
            self._children[edge.parent].append(edge)
        self._paths: dict[tuple[str, bool], dict[str, list[tuple[Edge, bool]]]] = {}
        self.fact_table = self._pick_fact_table()
        self.default_dates: dict[str, tuple[str, str] | None] = {
            name: self._pick_date(name) for name in tables
        }

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_schema(
        cls, schema: Schema, values: dict[tuple[str, str], list[str]] | None = None
    ) -> "SemanticModel":
        """Derive the model from a schema and, optionally, a value index.

        Args:
            schema: the warehouse's tables, columns and keys.
            values: ``{(table, column): [distinct values]}`` for low-cardinality text columns
                (see :meth:`value_columns`); enables filters such as "revenue in Europe".
        """
        edges = _foreign_keys(schema)
        fk_columns = {(e.child, c) for e in edges for c in e.child_cols}
        tables = {t.name: _table_info(t, fk_columns) for t in schema.tables}
        model = cls(schema, tables, edges)
        model._index_names()
        if values:
            model._index_values(values)
        from .linker import vocabulary_by_length  # warm the spelling corrector's index

        vocabulary_by_length(model)
        return model

    @staticmethod
    def value_columns(schema: Schema) -> list[tuple[str, str]]:
        """Text columns whose distinct values are worth indexing (not keys, notes, phones)."""
        edges = _foreign_keys(schema)
        fk_columns = {(e.child, c) for e in edges for c in e.child_cols}
        found = []
        for table in schema.tables:
            info = _table_info(table, fk_columns)
            for col in info.columns.values():
                if col.role == "dimension" and col.kind == "text":
                    found.append((table.name, col.name))
        return found

    def _add(self, words: Iterable[str], link: Link) -> None:
        phrase = tuple(w for w in words if w)
        if not phrase:
            return
        existing = self.phrases[phrase]
        for i, old in enumerate(existing):
            if dataclasses.replace(old, score=link.score) == link:
                if link.score > old.score:
                    existing[i] = link
                return
        existing.append(link)
        self.max_phrase_len = max(self.max_phrase_len, len(phrase))
        self.vocabulary.update(phrase)
        if link.kind in {"table", "column"}:
            self.schema_words.update(phrase)

    def _index_names(self) -> None:
        for table in self.tables.values():
            for variant in lx.phrase_variants(list(table.words)):
                self._add(variant, Link("table", table.name, score=1.0))
            own = tuple(lx.singular(w) for w in table.words)
            for col in table.columns.values():
                words = list(col.words)
                for variant in lx.phrase_variants(words):
                    self._add(variant, Link("column", table.name, col.name, score=1.0))
                # "segment" of customers is also "customer segment" (qualified by its table)
                if tuple(lx.singular(w) for w in words[: len(own)]) != own and col.role != "key":
                    for variant in lx.phrase_variants(list(own) + words):
                        self._add(variant, Link("column", table.name, col.name, score=1.0))
                # "customer name" in customers is also just "name"
                if tuple(lx.singular(w) for w in words[: len(own)]) == own and len(words) > len(own):
                    for variant in lx.phrase_variants(words[len(own):]):
                        self._add(variant, Link("column", table.name, col.name, score=0.6))
                # "budget amount" is also "budget"; "category name" is also "category"
                if len(words) > 1 and words[-1] in {"amount", "value", "total", "name", "count",
                                                     "number", "qty", "sum"}:
                    for variant in lx.phrase_variants(words[:-1]):
                        self._add(variant, Link("column", table.name, col.name, score=0.8))
                # "ship country" is also "country", "unit price" also "price"
                if len(words) > 1 and col.role != "key":
                    for variant in lx.phrase_variants(words[-1:]):
                        self._add(variant, Link("column", table.name, col.name, score=0.5))
            for measure in table.measures:
                if measure.derived:
                    for variant in lx.phrase_variants(measure.label.split()):
                        self._add(variant, Link("measure", table.name, measure=measure.label, score=0.95))
                if measure.concept:
                    for word in lx.CONCEPT_WORDS.get(measure.concept, ()):
                        self._add(word.split(), Link("measure", table.name, measure=measure.label, score=0.9))

    def _index_values(self, values: dict[tuple[str, str], list[str]]) -> None:
        for (table_name, column), items in values.items():
            table = self.tables.get(table_name)
            col = table.columns.get(column) if table else None
            if col is None:
                continue
            col.indexed = True
            col.distinct_count = len(items)
            for value in items:
                if not isinstance(value, str) or len(value.strip()) < 2:
                    continue
                words = tuple(t.norm for t in tokenize(value) if t.kind != "quoted")
                if not words or (len(words) == 1 and (words[0] in lx.STOPWORDS or words[0].isdigit())):
                    continue
                self._add(words, Link("value", table_name, column, value=value, score=0.95))
                if len(words) > 1 and words[0] == "the":
                    self._add(words[1:], Link("value", table_name, column, value=value, score=0.9))

    # -- facts --------------------------------------------------------------------------------

    def column(self, table: str, column: str) -> ColumnInfo:
        return self.tables[table].columns[column]

    def measure(self, table: str, label: str) -> MeasureDef:
        found = self.tables[table].measure(label)
        if found is None:
            raise KeyError(f"{table}.{label}")
        return found

    def default_measure(self, table: str) -> MeasureDef | None:
        """The measure a table is "about": revenue if any, else an amount, else the first."""
        measures = self.tables[table].measures
        for concept in ("revenue", "amount", "quantity"):
            for m in measures:
                if m.concept == concept:
                    return m
        money = [m for m in measures if m.money and m.default_agg == "sum"]
        if money:
            return money[0]
        additive = [m for m in measures if m.default_agg == "sum"]
        return additive[0] if additive else (measures[0] if measures else None)

    def parents(self, table: str) -> list[Edge]:
        return self._parents.get(table, [])

    def children(self, table: str) -> list[Edge]:
        return self._children.get(table, [])

    def paths_from(self, base: str, *, directed: bool = True) -> dict[str, list[tuple[Edge, bool]]]:
        """Shortest join paths from ``base`` to every reachable table (BFS over the FK graph).

        With ``directed`` only many-to-one steps (child -> parent) are taken, so joining never
        multiplies the base table's rows. Each step is ``(edge, forward)``: ``forward`` is True
        when walking child -> parent.
        """
        key = (base, directed)
        if key in self._paths:
            return self._paths[key]
        paths: dict[str, list[tuple[Edge, bool]]] = {base: []}
        queue = collections.deque([base])
        while queue:
            current = queue.popleft()
            steps = [(e, True, e.parent) for e in self.parents(current)]
            if not directed:
                steps += [(e, False, e.child) for e in self.children(current)]
            for edge, forward, nxt in sorted(steps, key=lambda s: s[2]):
                if nxt not in paths:
                    paths[nxt] = paths[current] + [(edge, forward)]
                    queue.append(nxt)
        self._paths[key] = paths
        return paths

    def distance(self, base: str, table: str) -> int | None:
        path = self.paths_from(base).get(table)
        return None if path is None else len(path)

    def _pick_fact_table(self) -> str | None:
        best, best_score = None, -1.0
        for name, info in self.tables.items():
            score = 3 * len(self.parents(name)) + min(len(info.measures), 5)
            score += 2 * sum(1 for m in info.measures if m.concept == "revenue")
            if info.row_count:
                score += math.log10(info.row_count + 1)
            if score > best_score:
                best, best_score = name, score
        return best

    def _pick_date(self, table: str) -> tuple[str, str] | None:
        """The date a table's rows are "on": its own best date column or a parent's."""
        own = self._own_date(table)
        if own:
            return (table, own)
        for target, path in sorted(self.paths_from(table).items(), key=lambda kv: len(kv[1])):
            if target != table and (col := self._own_date(target)):
                return (target, col)
        return None

    def _own_date(self, table: str) -> str | None:
        info = self.tables[table]
        best, best_score = None, -99.0
        own = {lx.singular(w) for w in info.words}
        for i, col in enumerate(info.columns.values()):
            if col.role != "date":
                continue
            score = -0.01 * i
            score += 3 if own & set(col.words) else 0
            score += 1 if "date" in col.words else 0
            score -= 4 if set(col.words) & lx.DATE_PENALTY_WORDS else 0
            if score > best_score:
                best, best_score = col.name, score
        return best

    # -- suggestions --------------------------------------------------------------------------

    def example_questions(self, n: int = 5) -> list[str]:
        """Questions this model can answer, for empty states and "not understood" errors."""
        out: list[str] = []
        fact = self.fact_table
        measure = self.default_measure(fact) if fact else None
        if fact and measure:
            label = measure.label
            out.append(f"Total {label}")
            dims = self._example_dimensions(fact)
            if dims:
                out.append(f"{label.capitalize()} by {dims[0]}")
            if self.default_dates.get(fact):
                out.append(f"Monthly {label}")
            entities = [t for t in self.paths_from(fact) if t != fact and self.tables[t].label_column]
            if entities:
                out.append(f"Top 5 {self.tables[entities[0]].plural} by {label}")
            value = self._example_value(fact)
            if value:
                out.append(f"{label.capitalize()} in {value}")
            if len(dims) > 1:
                out.append(f"{label.capitalize()} by {dims[1]}")
        for name in sorted(self.tables, key=lambda t: -(self.tables[t].row_count or 0)):
            info = self.tables[name]
            if info.is_entity:
                out.append(f"How many {info.plural} are there?")
            if len(out) >= n + 2:
                break
        deduped = list(dict.fromkeys(out))
        return deduped[:n]

    def _example_dimensions(self, fact: str) -> list[str]:
        """Reachable dimensions with few distinct values (good bar charts), best first."""
        found = []
        for table in self.paths_from(fact):
            info = self.tables[table]
            for col in info.columns.values():
                if col.role == "dimension" and col.indexed and 1 < col.distinct_count <= 30 \
                        and col.name != info.label_column:
                    owner = bool({lx.singular(w) for w in info.words} & lx.PREFERRED_OWNERS)
                    found.append((not owner, col.distinct_count, col.human))
        return [human for _, _, human in sorted(found)][:3]

    def _example_value(self, fact: str) -> str | None:
        reachable = set(self.paths_from(fact))
        for phrase, links in self.phrases.items():
            for link in links:
                if link.kind == "value" and link.table in reachable and link.value and len(link.value) > 3:
                    return link.value
        return None


# -- schema analysis --------------------------------------------------------------------------


def _table_info(table: Table, fk_columns: set[tuple[str, str]]) -> TableInfo:
    words = tuple(lx.identifier_words(table.name)) or (table.name.lower(),)
    columns: dict[str, ColumnInfo] = {}
    own = tuple(lx.singular(w) for w in words)
    for col in table.columns:
        cwords = tuple(lx.identifier_words(col.name)) or (col.name.lower(),)
        columns[col.name] = _column_info(table, col.name, col.type, col.kind, cwords,
                                         (table.name, col.name) in fk_columns, own)
    info = TableInfo(table.name, words, columns, tuple(table.primary_key), row_count=table.row_count)
    info.label_column = _label_column(info)
    info.measures = _measures(info)
    return info


def _column_info(table: Table, name: str, type_: str, kind: str, words: tuple[str, ...],
                 is_fk: bool, own: tuple[str, ...]) -> ColumnInfo:
    info = ColumnInfo(table.name, name, type_, kind, words, role="other")
    type_upper = type_.upper()
    last = words[-1]
    sole_key = tuple(table.primary_key) == (name,)  # in a composite key, columns are dimensions
    if sole_key or is_fk or last in {"id", "key", "uuid", "guid"}:
        info.role = "key"
    elif kind == "date" or (kind in {"text", "other"} and (
            last in lx.DATE_NAME_WORDS or name.lower().endswith(lx.DATE_NAME_SUFFIXES))):
        info.role = "date"
        info.text_date = kind != "date" or any(w in type_upper for w in ("CHAR", "TEXT", "STRING", "CLOB"))
    elif kind == "bool" or (kind == "number" and ("INT" in type_upper or "BOOL" in type_upper or "BIT" in type_upper)
                            and (words[0] in {"is", "has", "can"} or (len(words) == 1 and last.endswith("ed"))
                                 or last in {"flag", "active", "enabled"})):
        info.role = "flag"
    elif kind == "number":
        info.role = "measure"
        info.additive = not (set(words) & lx.NON_ADDITIVE_WORDS)
        info.money = bool(set(words) & lx.MONEY_WORDS)
    elif kind == "text" and (not (set(words) & lx.UNINDEXED_WORDS) or words == own + ("description",)):
        info.role = "dimension"  # "RegionDescription" names a region; other descriptions are prose
    return info


def _label_column(info: TableInfo) -> str | None:
    """The column that names a row (``customer_name``, ``CompanyName``, ``LastName``)."""
    candidates = [c for c in info.columns.values() if c.kind == "text" and c.role == "dimension"]
    own = tuple(lx.singular(w) for w in info.words)
    preferences = [
        lambda w: w in {own + ("name",), own + ("title",), own + ("description",)},
        lambda w: w == ("name",),
        *[lambda w, p=prefix: w == (p, "name") for prefix in lx.LABEL_NAME_PREFIXES],
        lambda w: w in lx.LABEL_WORDS,
    ]
    for wanted in preferences:
        for col in candidates:
            if wanted(col.words):
                return col.name
    return None


def _concept(words: tuple[str, ...]) -> str | None:
    """Which measure concept a numeric column carries: exact names first, then a key word."""
    for concept, patterns in lx.CONCEPT_COLUMN_WORDS.items():
        if any(words == p for p in patterns):
            return concept
    for concept, patterns in lx.CONCEPT_COLUMN_WORDS.items():  # "net_revenue_usd"
        if concept != "amount" and any(len(p) == 1 and p[0] in words for p in patterns):
            return concept
    if words[-1] in {"amount", "value", "total"}:  # "budget_amount"
        return "amount"
    return None


def _measures(info: TableInfo) -> list[MeasureDef]:
    measures: list[MeasureDef] = []
    by_concept: dict[str, ColumnInfo] = {}
    for col in info.columns.values():
        if col.role != "measure":
            continue
        concept = _concept(col.words)
        if concept and concept not in by_concept:
            by_concept[concept] = col
        measures.append(MeasureDef(info.name, col.human, ("col", col.name),
                                   "sum" if col.additive else "avg", col.money, concept))
    if "revenue" not in by_concept and "quantity" in by_concept and "price" in by_concept:
        qty, price = by_concept["quantity"], by_concept["price"]
        formula: tuple = ("mul", ("col", price.name), ("col", qty.name))
        text = f"{price.name} * {qty.name}"
        if "discount" in by_concept:
            disc = by_concept["discount"]
            formula = ("mul", formula, ("one_minus", ("col", disc.name)))
            text += f" * (1 - {disc.name})"
        revenue = MeasureDef(info.name, "revenue", formula, "sum", True, "revenue", True, text)
        measures.insert(0, revenue)
        by_concept["revenue"] = ColumnInfo(info.name, "", "", "number", ("revenue",), "measure")
    if "revenue" in by_concept and "cost" in by_concept:
        rev = next(m for m in measures if m.concept == "revenue")
        cost = by_concept["cost"]
        formula = ("sub", rev.formula, ("col", cost.name))
        text = f"({rev.description}) - {cost.name}" if rev.derived else f"{rev.column} - {cost.name}"
        measures.append(MeasureDef(info.name, "profit", formula, "sum", True, "profit", True, text))
        margin = ("ratio", formula, rev.formula)
        measures.append(MeasureDef(info.name, "profit margin", margin, "ratio", False, "margin", True,
                                   f"({text}) / {rev.description or rev.column}"))
    return measures


def _foreign_keys(schema: Schema) -> list[Edge]:
    """Declared foreign keys plus ones inferred from ``<table>_id`` / ``<Table>Id`` naming."""
    edges: list[Edge] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for table in schema.tables:
        for fk in table.foreign_keys:
            if schema.table(fk.ref_table) is None:
                continue
            ref = schema.table(fk.ref_table)
            edges.append(Edge(table.name, tuple(fk.columns), ref.name, tuple(fk.ref_columns), fk.declared))  # type: ignore[union-attr]
            seen.add((table.name, tuple(fk.columns)))
    by_words: dict[tuple[str, ...], Table] = {}
    for table in schema.tables:
        words = lx.identifier_words(table.name)
        if words:
            by_words.setdefault(tuple(lx.singular(w) for w in words), table)
    for table in schema.tables:
        for col in table.columns:
            if (table.name, (col.name,)) in seen or col.name in table.primary_key and len(table.primary_key) == 1:
                continue
            words = lx.identifier_words(col.name)
            if len(words) < 2 or words[-1] not in {"id", "key", "code", "no", "number"}:
                continue
            prefix = tuple(lx.singular(w) for w in words[:-1])
            parent = by_words.get(prefix)
            if parent is None and len(prefix) > 1:  # "ship_customer_id" -> customer
                parent = by_words.get(prefix[-1:])
            if parent is None or parent.name == table.name:
                continue
            key = _parent_key(parent, col.name)
            if key is None:
                continue
            edges.append(Edge(table.name, (col.name,), parent.name, (key,), declared=False))
            seen.add((table.name, (col.name,)))
    return edges


def _parent_key(parent: Table, child_column: str) -> str | None:
    if len(parent.primary_key) == 1:
        return parent.primary_key[0]
    for col in parent.columns:
        if col.name.lower() in {"id", child_column.lower()}:
            return col.name
    return None

