"""The pieces of a semantic model: tables, columns, measures, links and join edges.

Plain data, shared by the schema analysis (:mod:`.analysis`) that creates them, the semantic
layer (:mod:`.semantic_layer`) that adjusts them and the :class:`~.model.SemanticModel` that
indexes them.
"""

from __future__ import annotations

import dataclasses

from . import lexicon as lx


@dataclasses.dataclass
class ColumnInfo:
    table: str
    name: str
    type: str
    kind: str  # the schema's kind
    words: tuple[str, ...]
    role: str  # key | measure | dimension | date | flag | other | hidden (semantic layer)
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
    ``("col", name)``, ``("mul", a, b)``, ``("sub", a, b)``, ``("one_minus", a)``,
    ``("expr", e)`` (a row-level sqlglot expression over the table's columns, from a metric of
    the semantic layer), ``("where", condition, f)`` (``f`` where the row meets ``condition``,
    else NULL: a semantic layer's default filter, which aggregates then skip), and at the top only ``("ratio", a, b)``: SUM(a) / SUM(b), or
    ``("agg_expr", e)``: a sqlglot expression that aggregates by itself. Those two are used as
    they are, whatever aggregation was asked for (``default_agg`` is then ``"ratio"``).
    """

    table: str
    label: str  # human words, e.g. "revenue"
    formula: tuple
    default_agg: str = "sum"
    money: bool = False
    concept: str | None = None
    derived: bool = False
    description: str = ""  # e.g. "UnitPrice * Quantity * (1 - Discount)"
    format: str | None = None  # money | percent | number, when the semantic layer says or a ratio shows
    filter_note: str = ""  # the default filter in words ("excludes cancelled and returned orders")

    @property
    def key(self) -> str:
        return f"{self.table}.{self.label}"

    @property
    def column(self) -> str | None:
        """The stored column this measure totals (seen through a default filter), else None."""
        formula = self.formula[2] if self.formula[0] == "where" else self.formula
        return formula[1] if formula[0] == "col" else None


@dataclasses.dataclass
class TableInfo:
    name: str
    words: tuple[str, ...]
    columns: dict[str, ColumnInfo]
    primary_key: tuple[str, ...]
    label_column: str | None = None
    measures: list[MeasureDef] = dataclasses.field(default_factory=list)
    row_count: int | None = None
    default_measure: str | None = None  # a measure label chosen by the semantic layer
    default_date: str | None = None  # a date column chosen by the semantic layer

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
