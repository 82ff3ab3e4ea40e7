"""Schema analysis: a warehouse :class:`~livebi.warehouse.base.Schema` -> tables and joins.

Roles of columns (key, measure, dimension, date, flag), each table's label column and
measures (including derived ones such as revenue = unit price x quantity x (1 - discount)),
and the foreign-key graph, declared or inferred from naming. Only names and types are used:
nothing here knows any particular database.
"""

from __future__ import annotations

from typing import Collection, Mapping

from livebi.warehouse.base import Schema, Table

from . import lexicon as lx
from .elements import ColumnInfo, Edge, MeasureDef, TableInfo


def table_info(
    table: Table,
    fk_columns: set[tuple[str, str]],
    *,
    names: Mapping[str, tuple[str, ...]] | None = None,
    hidden: Collection[str] = (),
    aggregations: Mapping[str, str] | None = None,
) -> TableInfo:
    """What one table holds.

    Args:
        table: the table as the warehouse describes it.
        fk_columns: ``(table, column)`` pairs that are foreign keys (declared or inferred).
        names: human words for columns, replacing the ones derived from identifiers.
        hidden: columns the parser must never use (role ``hidden``: not named, listed,
            measured or indexed).
        aggregations: the default aggregation of numeric columns (``sum``, ``avg``, ...).
    """
    words = tuple(lx.identifier_words(table.name)) or (table.name.lower(),)
    columns: dict[str, ColumnInfo] = {}
    own = tuple(lx.singular(w) for w in words)
    for col in table.columns:
        cwords = tuple(lx.identifier_words(col.name)) or (col.name.lower(),)
        info = _column_info(table, col.name, col.type, col.kind, cwords, (table.name, col.name) in fk_columns, own)
        if names and col.name in names:
            info.words = names[col.name]
        if col.name in hidden:
            info.role = "hidden"
        columns[col.name] = info
    info = TableInfo(table.name, words, columns, tuple(table.primary_key), row_count=table.row_count)
    info.label_column = _label_column(info)
    info.measures = _measures(info)
    for measure in info.measures:
        agg = (aggregations or {}).get(measure.column or "")
        if agg:
            measure.default_agg = agg
            info.columns[measure.column].additive = agg == "sum"  # type: ignore[index]
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


def concept_of(words: tuple[str, ...]) -> str | None:
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
        concept = concept_of(col.words)
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


def foreign_keys(schema: Schema) -> list[Edge]:
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
    edges += _keys_by_role_or_name(schema, seen)
    return edges


def _keys_by_role_or_name(schema: Schema, seen: set[tuple[str, tuple[str, ...]]]) -> list[Edge]:
    """Undeclared keys that ``<table>_id`` naming misses: a column named exactly like another
    table's one-column key (``PetID`` -> ``Pets.PetID``), and role-named keys whose first word
    starts a table's name (``ShipVia`` -> ``Shipper``, ``handled_by`` -> ``Handler``)."""
    keyed = [t for t in schema.tables if len(t.primary_key) == 1]
    by_key: dict[str, list[Table]] = {}
    for t in keyed:
        by_key.setdefault(t.primary_key[0].lower(), []).append(t)
    edges = []
    for table in schema.tables:
        for col in table.columns:
            if (table.name, (col.name,)) in seen or tuple(table.primary_key) == (col.name,):
                continue
            parents = [t for t in by_key.get(col.name.lower(), ()) if t.name != table.name]
            if col.name.lower() in {"id", "key", "code"}:
                parents = []
            if not parents and col.kind == "number":
                words = lx.identifier_words(col.name)
                if len(words) >= 2 and words[-1] in lx.ROLE_KEY_WORDS:
                    first = words[0]
                    stems = {first, first[:-2] if first.endswith("ed") else first, first[:-1] if first.endswith("d") else first}
                    parents = [t for t in keyed if t.name != table.name and any(
                        len(stem) >= 4 and "".join(lx.singular(w) for w in lx.identifier_words(t.name)).startswith(stem)
                        for stem in stems)]
            if not parents and col.kind == "number":
                parents = _role_parent(table, col.name, keyed)
            if len(parents) != 1:
                continue
            parent = parents[0]
            key = next((c for c in parent.columns if c.name == parent.primary_key[0]), None)
            if key is None or key.kind != col.kind:
                continue
            edges.append(Edge(table.name, (col.name,), parent.name, (key.name,), declared=False))
            seen.add((table.name, (col.name,)))
    return edges


def _role_parent(table: Table, column: str, keyed: list[Table]) -> list[Table]:
    """The people table a hierarchy key points at: ``ReportsTo`` / ``parent_id`` in its own table,
    ``manager_id`` in its own table when it holds people, else in the one people table."""
    words = lx.identifier_words(column)
    role = tuple(words[:-1]) if words[-1] in {"id", "key", "no", "number"} and len(words) > 1 else tuple(words)
    if role not in lx.SELF_KEY_ROLES:
        return []

    def people(t: Table) -> bool:
        names = lx.identifier_words(t.name)
        return bool(names) and lx.singular(names[-1].lower()) in lx.PEOPLE_TABLE_WORDS

    if role[0] in {"reports", "report", "parent", "superior"} or people(table):
        return [table] if len(table.primary_key) == 1 else []
    return [t for t in keyed if people(t)]


def _parent_key(parent: Table, child_column: str) -> str | None:
    if len(parent.primary_key) == 1:
        return parent.primary_key[0]
    for col in parent.columns:
        if col.name.lower() in {"id", child_column.lower()}:
            return col.name
    return None
