"""The semantic model: what the parser knows about one warehouse, derived from its schema.

Built once per warehouse (the NLP agent caches it) from a :class:`~livebi.warehouse.base.Schema`
and an optional value index (distinct values of low-cardinality text columns). It holds:

* human names for tables and columns (``BillingCountry`` -> "billing country") and the phrase
  index the linker matches questions against (names, singular/plural forms, measure concepts,
  values), with lower-scored aliases: the role of a key names its table (``Friend.student_id``
  -> "student"), participle columns their agent ("director"), unit columns their meaning
  ("weight" for ``weight_kg``), ``ref_``/``dim_`` tables their content; and, in the value
  index, codes (typed in capitals), genders ("female" -> 'F'), camel-case values, yes/no text
  columns as flags, and names of large tables (:meth:`SemanticModel.value_limit`);
* each column's role (key, measure, dimension, date, flag) and each table's label column,
  default date column and default measure, including measures the schema does not store but
  that follow from its columns (revenue = unit price x quantity x (1 - discount); profit =
  revenue - cost);
* the foreign-key graph, declared and inferred from naming (``customer_id`` -> ``customers``,
  ``ShipVia`` -> ``Shipper``, ``ReportsTo`` -> its own table), with shortest join paths between
  tables (of two keys to one table, the one on the earlier column);
* the default fact table (the table with most foreign keys, measures and rows).

Nothing here is specific to a particular database: every fact comes from names and types.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
import re
from typing import Iterable

from livebi.warehouse.base import Schema

from . import lexicon as lx
from .analysis import foreign_keys, table_info
from .elements import ColumnInfo, Edge, Link, MeasureDef, TableInfo
from .normalize import tokenize
from .semantic_layer import SemanticLayer, bind

__all__ = ["ColumnInfo", "Edge", "Link", "MeasureDef", "Phrase", "SemanticModel", "TableInfo"]

Phrase = tuple[str, ...]

#: distinct values indexed per text column (a column with more is left out: ids, notes)
VALUES_PER_COLUMN = 200
#: ... and per name column ("orders of Maria Anders" on a table of thousands of customers); a
#: single word of such a value links only when typed capitalized ("Rose", not "rose")
NAME_VALUES_PER_COLUMN = 2000


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
        self.layer: SemanticLayer | None = None
        self.values: dict[tuple[str, str], list[str]] = {}  # the value index, by column
        self.code_columns: set[tuple[str, str]] = set()  # indexed key columns holding codes ('CV')
        self.yes_values: dict[tuple[str, str], str] = {}  # text yes/no flags -> their "yes" value
        self.name_columns: set[tuple[str, str]] = set()  # indexed with more than VALUES_PER_COLUMN values
        #: the last date of each date column whose data had ended (before yesterday) when the
        #: model was built: relative periods count from there when the present has no data
        self.data_ends: dict[tuple[str, str], dt.date] = {}
        self._parents: dict[str, list[Edge]] = collections.defaultdict(list)
        self._children: dict[str, list[Edge]] = collections.defaultdict(list)
        for edge in edges:
            self._parents[edge.child].append(edge)
            self._children[edge.parent].append(edge)
        # two keys to the same table (Friend.student_id and friend_id, current_ and permanent_
        # address_id): joins take the one whose column comes first, the row's main role
        for child, parents in self._parents.items():
            order = {c.name: i for i, c in enumerate(schema.table(child).columns)} if schema.table(child) else {}
            parents.sort(key=lambda e: order.get(e.child_cols[0], len(order)))
        self._paths: dict[tuple[str, bool], dict[str, list[tuple[Edge, bool]]]] = {}
        self.fact_table = self._pick_fact_table()
        self.default_dates: dict[str, tuple[str, str] | None] = {
            name: self._pick_date(name) for name in tables
        }

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_schema(
        cls,
        schema: Schema,
        values: dict[tuple[str, str], list[str]] | None = None,
        *,
        layer: SemanticLayer | None = None,
        dialect: str = "duckdb",
    ) -> "SemanticModel":
        """Derive the model from a schema and, optionally, a value index and a semantic layer.

        Args:
            schema: the warehouse's tables, columns and keys.
            values: ``{(table, column): [distinct values]}`` for low-cardinality text columns
                (see :meth:`value_columns`); enables filters such as "revenue in Europe".
            layer: a semantic layer (synonyms, metrics, hidden columns...), checked against
                ``schema`` here.
            dialect: the warehouse's SQL dialect (metrics are checked as SQL in it).

        Raises:
            SemanticLayerError: the layer names something the schema lacks, or a metric is not
                a safe aggregate over one table.
        """
        bound = bind(layer, schema) if layer is not None else None
        edges = foreign_keys(schema)
        if bound is not None:
            taken = {(e.child, e.child_cols) for e in edges}
            edges += [e for e in bound.edges if (e.child, e.child_cols) not in taken]
        fk_columns = {(e.child, c) for e in edges for c in e.child_cols}
        tables = {t.name: table_info(t, fk_columns, **(bound.column_options(t.name) if bound else {}))
                  for t in schema.tables}
        extra = bound.apply(tables, dialect) if bound is not None else []
        model = cls(schema, tables, edges)
        model.layer = layer
        model._index_names()
        if values:
            model._index_values(values)
        for words, link in extra:  # the layer's words win over derived ones
            for variant in lx.phrase_variants(list(words)):
                model._add(variant, dataclasses.replace(link, score=1.05))
        from .linker import vocabulary_by_length  # warm the spelling corrector's index

        vocabulary_by_length(model)
        return model

    @staticmethod
    def value_columns(schema: Schema, layer: SemanticLayer | None = None) -> list[tuple[str, str]]:
        """Text columns whose distinct values are worth indexing (not keys, notes, phones, or
        columns the semantic layer hides)."""
        edges = foreign_keys(schema)
        fk_columns = {(e.child, c) for e in edges for c in e.child_cols}
        bound = bind(layer, schema) if layer is not None else None
        found = []
        for table in schema.tables:
            info = table_info(table, fk_columns, **(bound.column_options(table.name) if bound else {}))
            for col in info.columns.values():
                if col.role == "dimension" and col.kind == "text" or is_code_column(col):
                    found.append((table.name, col.name))
        return found

    @staticmethod
    def value_limit(column: str) -> int:
        """How many distinct values of ``column`` the value index takes (see :meth:`value_columns`)."""
        words = lx.identifier_words(column)
        return NAME_VALUES_PER_COLUMN if {"name", "title"} & set(words) else VALUES_PER_COLUMN

    def _add(self, words: Iterable[str], link: Link) -> None:
        phrase = tuple(w for w in words if w)
        if not phrase:
            return
        existing = self.phrases[phrase]
        same = (link.kind, link.table, link.column, link.measure, link.value)
        for i, old in enumerate(existing):  # the same meaning: keep the best score
            if (old.kind, old.table, old.column, old.measure, old.value) == same:
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
            # "order lines" / "order items" name an OrderDetail table
            for other in lx.TABLE_WORD_ALTERNATIVES.get(own[-1], ()):
                for variant in lx.phrase_variants(list(own[:-1]) + [other]):
                    self._add(variant, Link("table", table.name, score=0.95))
            for col in table.columns.values():
                if col.role == "hidden":
                    continue
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
                # "ship country" is also "country", "unit price" also "price" (and "product price")
                if len(words) > 1 and col.role != "key":
                    for variant in lx.phrase_variants(words[-1:]):
                        self._add(variant, Link("column", table.name, col.name, score=0.5))
                    if tuple(lx.singular(w) for w in words[: len(own)]) != own:
                        for variant in lx.phrase_variants(list(own) + words[-1:]):
                            self._add(variant, Link("column", table.name, col.name, score=0.8))
            for measure in table.measures:
                if measure.derived:
                    for variant in lx.phrase_variants(measure.label.split()):
                        self._add(variant, Link("measure", table.name, measure=measure.label, score=0.95))
                if measure.concept:
                    for word in lx.CONCEPT_WORDS.get(measure.concept, ()):
                        self._add(word.split(), Link("measure", table.name, measure=measure.label, score=0.9))

        self._index_aliases()
        # "shipped in 2013", "hired before 2010": the verb of a date column names it
        for table in self.tables.values():
            for col in table.columns.values():
                verb = tuple(w for w in col.words if w not in lx.DATE_NAME_WORDS)
                if col.role != "date" or not verb or len(verb) == len(col.words) or len(verb) > 2:
                    continue
                forms = {verb} | ({verb[:-1] + (verb[-1] + "d",)} if verb[-1].endswith("e") else set())
                for form in forms:
                    if not any(lk.kind == "table" for lk in self.phrases.get(form, ())):
                        self._add(form, Link("column", table.name, col.name, score=0.7))
        # "product category" is the category a product points to (a many-to-one join)
        for edge in self.edges:
            child = tuple(lx.singular(w) for w in self.tables[edge.child].words)
            for variant in lx.phrase_variants(list(child) + list(self.tables[edge.parent].words)):
                if len(variant) > len(child):
                    self._add(variant, Link("table", edge.parent, score=0.9))

    def _index_aliases(self) -> None:
        """Names a column has beyond its own words, scored below them: the agent of a
        participle column ("director" for ``Directed_by``), the column without its unit
        ("weight" for ``weight_kg``), what a unit or a common measure means ("length" of a track
        for ``milliseconds``, "old" for ``age``)."""
        for table in self.tables.values():
            own = [lx.singular(w) for w in table.words]
            for col in table.columns.values():
                if col.role == "hidden":
                    continue
                for words, score in _column_aliases(col.words, "code" if is_code_column(col) else col.role):
                    link = Link("column", table.name, col.name, score=score)
                    for variant in lx.phrase_variants(list(words)):
                        if not any(lk.kind == "table" for lk in self.phrases.get(variant, ())):
                            self._add(variant, link)
                    if tuple(own) != tuple(words[: len(own)]):  # "track length", "cartoon director"
                        for variant in lx.phrase_variants(own + list(words)):
                            self._add(variant, dataclasses.replace(link, score=min(score + 0.1, 0.9)))
            if len(own) > 1 and own[0] in lx.TABLE_KIND_PREFIXES:  # "template types" of Ref_Template_Types
                for variant in lx.phrase_variants(list(table.words[1:])):
                    if not self._names_table(variant):
                        self._add(variant, Link("table", table.name, score=0.95))
            heads = [tuple(own[:1])] if len(own) == 2 and own[0] not in lx.TABLE_KIND_PREFIXES else []
            for head in heads:  # "degrees" of Degree_Programs, when nothing else is called "degree"
                if not any(head == tuple(lx.singular(w) for w in other.words[:1]) for other in self.tables.values()
                           if other is not table):
                    for variant in lx.phrase_variants(list(head)):
                        if variant not in self.phrases and variant[0] not in lx.STOPWORDS:
                            self._add(variant, Link("table", table.name, score=0.6))
            last = own[-1]
            synonyms = [head + other for word, others in lx.TABLE_SYNONYMS.items() if last.endswith(word)
                        for head in [last[: len(last) - len(word)]] if not head or len(head) >= 3
                        for other in others]
            for synonym in synonyms:  # "stores" of a shop table, "bookstores" of a Bookshop table
                for variant in lx.phrase_variants(own[:-1] + [synonym]):
                    if not self._names_table(variant):
                        self._add(variant, Link("table", table.name, score=0.85))
                for col in table.columns.values():  # "store locations" of a shop table
                    if col.role not in {"hidden", "key"}:
                        for variant in lx.phrase_variants(own[:-1] + [synonym] + list(col.words)):
                            self._add(variant, Link("column", table.name, col.name, score=0.85))
        # "student" for Friend.student_id -> Highschooler, "current address" for
        # current_address_id -> Addresses: a key's role names the table it points to
        for edge in self.edges:
            if len(edge.child_cols) != 1 or edge.child == edge.parent:
                continue
            col = self.tables[edge.child].columns[edge.child_cols[0]]
            role = list(col.words[:-1]) if col.words[-1] in {"id", "key", "no", "code", "number"} else list(col.words)
            if set(role) & lx.ROLE_KEY_WORDS:  # "ship via": the parent's own name says it ("shipper")
                continue
            if not role or tuple(lx.singular(w) for w in role) == tuple(lx.singular(w) for w in self.tables[edge.parent].words):
                continue
            for variant in lx.phrase_variants(role):
                if not self._names_table(variant) and variant not in self.phrases:
                    self._add(variant, Link("table", edge.parent, score=0.85))

    def _names_table(self, phrase: tuple[str, ...]) -> bool:
        return any(lk.kind == "table" for lk in self.phrases.get(phrase, ()))

    def _index_values(self, values: dict[tuple[str, str], list[str]]) -> None:
        for (table_name, column), items in values.items():
            table = self.tables.get(table_name)
            col = table.columns.get(column) if table else None
            if col is None or col.role == "hidden":
                continue
            self.values[(table_name, column)] = list(items)
            col.indexed = True
            col.distinct_count = len(items)
            if is_code_column(col):
                self.code_columns.add((table_name, column))
            if len(items) > VALUES_PER_COLUMN:
                self.name_columns.add((table_name, column))
            for value in items:
                if not isinstance(value, str) or len(value.strip()) < 2:
                    continue
                words = tuple(t.norm for t in tokenize(value) if t.kind != "quoted")
                if not words or (len(words) == 1 and (words[0] in lx.STOPWORDS or words[0].isdigit())):
                    continue
                self._add(words, Link("value", table_name, column, value=value, score=0.95))
                if len(words) > 1 and words[0] == "the":
                    self._add(words[1:], Link("value", table_name, column, value=value, score=0.9))
                camel = _CAMEL_VALUE.findall(value) if " " not in value.strip() else []
                if len(camel) > 1:  # "NorthCarolina" is "north carolina"
                    self._add(tuple(w.lower() for w in camel), Link("value", table_name, column, value=value, score=0.9))
            if set(col.words) & lx.GENDER_COLUMNS:
                self._index_genders(table_name, column, items)
            yes = [v for v in items if isinstance(v, str) and v.strip().lower() in lx.YES_VALUES]
            if col.kind == "text" and col.role == "dimension" and yes and all(
                    isinstance(v, str) and v.strip().lower() in lx.YES_VALUES | lx.NO_VALUES for v in items):
                col.role = "flag"  # "channels that have high definition TV": = 'yes'
                self.yes_values[(table_name, column)] = yes[0]
                for phrase, links in list(self.phrases.items()):  # "TV" alone does not say "has high definition TV"
                    links[:] = [lk for lk in links if not (lk.kind == "column" and lk.table == table_name
                                                          and lk.column == column and lk.score <= 0.6)]
                    if not links:
                        del self.phrases[phrase]

    def _index_genders(self, table: str, column: str, items: list[str]) -> None:
        """"female students" with a sex column holding 'F' (or 'Female'): the words of a gender
        link to the stored value that starts with the same letter."""
        by_letter: dict[str, str] = {}
        for value in items:
            if isinstance(value, str) and value.strip():
                letter = value.strip()[0].lower()
                if letter in {"f", "m"} and (len(value.strip()) == 1 or letter not in by_letter):
                    by_letter[letter] = value
        for word, letter in lx.GENDER_WORDS.items():
            if letter in by_letter and not any(lk.kind == "table" for lk in self.phrases.get((word,), ())):
                self._add((word,), Link("value", table, column, value=by_letter[letter], score=0.9))

    # -- facts --------------------------------------------------------------------------------

    def column(self, table: str, column: str) -> ColumnInfo:
        return self.tables[table].columns[column]

    def measure(self, table: str, label: str) -> MeasureDef:
        found = self.tables[table].measure(label)
        if found is None:
            raise KeyError(f"{table}.{label}")
        return found

    def default_measure(self, table: str) -> MeasureDef | None:
        """The measure a table is "about": the semantic layer's choice, revenue if any, else an
        amount, else the first."""
        info = self.tables[table]
        measures = info.measures
        if info.default_measure and (chosen := info.measure(info.default_measure)) is not None:
            return chosen
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
            for edge, forward, nxt in sorted(steps, key=lambda s: (s[2], _names_the_other(s[0]))):
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
        if info.default_date:
            return info.default_date
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


def _names_the_other(edge: Edge) -> bool:
    """Whether a foreign key's column repeats its own table's name: in ``friend(student_id,
    friend_id)`` both point at ``student``, and a friend row belongs to its ``student_id``;
    ``friend_id`` names the other one. Among keys to the same table, the owner's comes first."""
    own = edge.child.lower().rstrip("s")
    return any(own and own in col.lower() for col in edge.child_cols)


_CAMEL_VALUE = re.compile(r"[A-Z][a-z]+|[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def is_code_column(col: ColumnInfo) -> bool:
    """A text key that holds codes people type ('CV', 'PPT', 'USD'): worth a value index
    entry, unlike ids. Codes of three letters or fewer only link when typed in capitals."""
    return col.role == "key" and col.kind == "text" and col.words[-1] in {"code", "type", "status", "abbreviation"}


def _agent_nouns(participle: str) -> list[str]:
    """"directed" -> director, "edited" -> editor, "produced" -> producer, "written" -> writer."""
    if participle in lx.AGENT_NOUNS:
        return [lx.AGENT_NOUNS[participle]]
    if not participle.endswith("ed") or len(participle) < 5:
        return []
    stem = participle[:-2]
    nouns = [stem + "or", stem + "er"]
    if participle[-3] == "e" or stem[-1] in "cgsvz":  # "produced" -> produce -> producer
        nouns.append(participle[:-1] + "r")
    return nouns


def _column_aliases(words: tuple[str, ...], role: str) -> list[tuple[tuple[str, ...], float]]:
    """Other names of a column with these words (see :meth:`SemanticModel._index_aliases`)."""
    out: list[tuple[tuple[str, ...], float]] = []
    if len(words) >= 2 and words[-1] == "by":  # "directed by" -> "director"
        out += [((noun,), 0.8) for noun in _agent_nouns(words[-2])]
    if len(words) == 3 and words[1] == "of" and role != "key":  # "level of membership" -> "membership level"
        out.append(((words[2], words[0]), 0.85))
    if len(words) == 2 and words[0] in {"number", "count", "total", "amount"} and role == "measure":
        out.append(((words[0], "of", words[1]), 0.95))  # Number_products is "the number of products"
    for i, word in enumerate(words):  # "zip code" for zip_postcode
        for other in lx.COLUMN_WORD_SYNONYMS.get(word, ()):
            out.append((words[:i] + other + words[i + 1:], 0.8))
            if len(words) > 1:
                out.append((other, 0.6))
    if role == "code" and len(words) > 1:  # "template type code" -> "template type", "type"
        out += [(words[:-1], 0.8), (words[-2:-1], 0.6)]
    if len(words) >= 3 and role != "key" and words[-1] not in lx.UNIT_MEANINGS \
            and not set(words) & lx.STOPWORDS:  # "original air date" -> "air date"
        out.append((words[-2:], 0.7))
    for i, word in enumerate(words):  # "nationality" -> "nation"
        if word.endswith("ality") and len(word) > 8:
            out.append((words[:i] + (word[:-5],) + words[i + 1:], 0.7))
    if role in {"measure", "dimension", "other"}:
        units = [w for w in words if w in lx.UNIT_MEANINGS]
        rest = tuple(w for w in words if w not in lx.UNIT_MEANINGS)
        if units and rest:
            out.append((rest, 0.85))  # "weight kg" -> "weight"
        for unit in units:
            out += [((meaning,), 0.7) for meaning in lx.UNIT_MEANINGS[unit]]
        for word in words[-1:]:
            out += [((meaning,), 0.6) for meaning in lx.MEASURE_MEANINGS.get(word, ())]
    return out
