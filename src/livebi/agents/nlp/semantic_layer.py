"""The semantic layer: an optional YAML file that teaches the parser a warehouse's own words.

Everything the parser knows comes from the schema; a semantic layer adds what names and types
cannot say: synonyms ("turnover" means ``orders.revenue``), metric definitions (``gross margin:
(SUM(revenue) - SUM(cost)) / SUM(revenue)``), default aggregations, hidden columns, human names,
the date and measure a table is "about", and joins the schema does not declare. The format is
documented in ``docs/semantic-layer.md``.

Two checks, both raising :class:`SemanticLayerError` with the file and the place named:

* :func:`load_semantic_layer` reads the file and checks its shape (known keys, types, metric
  expressions that parse and aggregate). Run at startup, so a typo stops the server at once.
* :func:`bind` checks it against a warehouse's schema (tables and columns exist, metrics are
  safe read-only SQL over one table) and applies it while the semantic model is built.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Iterable

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import SqlglotError

from livebi.warehouse.base import Schema, Table, WarehouseError
from livebi.warehouse.safety import validate_select

from . import lexicon as lx
from .analysis import concept_of
from .elements import Edge, Link, MeasureDef, TableInfo
from .normalize import tokenize

AGGREGATIONS = ("sum", "avg", "min", "max", "count", "count_distinct")
FORMATS = ("money", "percent", "number")
_TOP_KEYS = ("tables", "metrics", "synonyms", "relationships")
_TABLE_KEYS = ("name", "synonyms", "columns", "date", "measure")
_COLUMN_KEYS = ("name", "synonyms", "aggregation", "hidden", "format", "filter")
_METRIC_KEYS = ("expression", "table", "synonyms", "description", "format", "filter")
_AGG_FUNCS: dict[type[exp.Expression], str] = {exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max"}


class SemanticLayerError(ValueError):
    """A semantic-layer file that cannot be used; the message names the file and the place."""

    def __init__(self, path: str, where: str, problem: str) -> None:
        self.path, self.where, self.problem = path, where, problem
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    name: str | None = None
    synonyms: tuple[str, ...] = ()
    aggregation: str | None = None
    hidden: bool = False
    format: str | None = None
    filter: exp.Expression | None = None  # the measure's default filter (a row condition)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    name: str | None = None
    synonyms: tuple[str, ...] = ()
    columns: dict[str, ColumnSpec] = dataclasses.field(default_factory=dict)
    date: str | None = None
    measure: str | None = None


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str
    expression: str
    ast: exp.Expression
    table: str | None = None
    synonyms: tuple[str, ...] = ()
    description: str = ""
    format: str | None = None
    filter: exp.Expression | None = None


@dataclasses.dataclass(frozen=True)
class RelationshipSpec:
    child: str
    child_column: str
    parent: str
    parent_column: str


@dataclasses.dataclass(frozen=True)
class SemanticLayer:
    """A parsed semantic-layer file (names as written; :func:`bind` resolves them)."""

    path: str
    tables: dict[str, TableSpec] = dataclasses.field(default_factory=dict)
    metrics: dict[str, MetricSpec] = dataclasses.field(default_factory=dict)
    synonyms: dict[str, str] = dataclasses.field(default_factory=dict)
    relationships: tuple[RelationshipSpec, ...] = ()


# -- reading ----------------------------------------------------------------------------------


def load_semantic_layer(path: str | Path) -> SemanticLayer:
    """Read and check a semantic-layer YAML file.

    Raises:
        SemanticLayerError: the file is missing, is not YAML, or has an unknown key, a value of
            the wrong type or a metric expression that does not parse or aggregate.
    """
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SemanticLayerError(shown, "", f"cannot read the file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SemanticLayerError(shown, where, f"not valid YAML: {problem}") from None
    return parse_semantic_layer(data, shown)


def parse_semantic_layer(data: Any, path: str = "<semantic layer>") -> SemanticLayer:
    """Check the shape of already-loaded YAML data (see :func:`load_semantic_layer`)."""
    if data is None:
        return SemanticLayer(path)
    _mapping(data, path, "", _TOP_KEYS)
    tables = {str(name): _table_spec(spec, path, f"tables → {name}")
              for name, spec in _mapping(data.get("tables"), path, "tables").items()}
    metrics = {}
    for name, spec in _mapping(data.get("metrics"), path, "metrics").items():
        metrics[str(name)] = _metric_spec(str(name), spec, path)
    synonyms = {}
    for word, target in _mapping(data.get("synonyms"), path, "synonyms").items():
        if not isinstance(target, str) or not target.strip():
            raise SemanticLayerError(path, f"synonyms → {word}",
                                     "expected a table, table.column, table.column = value or a metric name")
        synonyms[str(word)] = target.strip()
    relationships = tuple(_relationship(item, path, i) for i, item in enumerate(_sequence(
        data.get("relationships"), path, "relationships")))
    return SemanticLayer(path, tables, metrics, synonyms, relationships)


def _mapping(value: Any, path: str, where: str, allowed: Iterable[str] | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SemanticLayerError(path, where, f"expected a mapping (key: value), got {_kind(value)}")
    if allowed is not None:
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f'; did you mean "{close[0]}"?' if close else f"; expected one of {', '.join(allowed)}"
                raise SemanticLayerError(path, f"{where} → {key}".lstrip(" →"), f'unknown key "{key}"{hint}')
    return value


def _sequence(value: Any, path: str, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SemanticLayerError(path, where, f"expected a list, got {_kind(value)}")
    return value


def _words(value: Any, path: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else _sequence(value, path, where)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise SemanticLayerError(path, where, "expected words (a string or a list of strings)")
    return tuple(item.strip() for item in items)


def _text(value: Any, path: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SemanticLayerError(path, where, f"expected text, got {_kind(value)}")
    return value.strip()


def _choice(value: Any, path: str, where: str, choices: tuple[str, ...]) -> str | None:
    text = _text(value, path, where)
    if text is not None and text.lower() not in choices:
        raise SemanticLayerError(path, where, f'"{text}" is not one of {", ".join(choices)}')
    return text.lower() if text else None


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "text", bool: "true/false"}.get(type(value), type(value).__name__)


def _table_spec(spec: Any, path: str, where: str) -> TableSpec:
    spec = _mapping(spec, path, where, _TABLE_KEYS)
    columns = {}
    for column, cspec in _mapping(spec.get("columns"), path, f"{where} → columns").items():
        cwhere = f"{where} → columns → {column}"
        cspec = _mapping(cspec, path, cwhere, _COLUMN_KEYS)
        hidden = cspec.get("hidden", False)
        if not isinstance(hidden, bool):
            raise SemanticLayerError(path, f"{cwhere} → hidden", "expected true or false")
        columns[str(column)] = ColumnSpec(
            name=_text(cspec.get("name"), path, f"{cwhere} → name"),
            synonyms=_words(cspec.get("synonyms"), path, f"{cwhere} → synonyms"),
            aggregation=_choice(cspec.get("aggregation"), path, f"{cwhere} → aggregation", AGGREGATIONS),
            hidden=hidden,
            format=_choice(cspec.get("format"), path, f"{cwhere} → format", FORMATS),
            filter=_condition(cspec.get("filter"), path, f"{cwhere} → filter"),
        )
    return TableSpec(
        name=_text(spec.get("name"), path, f"{where} → name"),
        synonyms=_words(spec.get("synonyms"), path, f"{where} → synonyms"),
        columns=columns,
        date=_text(spec.get("date"), path, f"{where} → date"),
        measure=_text(spec.get("measure"), path, f"{where} → measure"),
    )


def _metric_spec(name: str, spec: Any, path: str) -> MetricSpec:
    where = f"metrics → {name}"
    if isinstance(spec, str):
        spec = {"expression": spec}
    spec = _mapping(spec, path, where, _METRIC_KEYS)
    expression = _text(spec.get("expression"), path, f"{where} → expression")
    if expression is None:
        raise SemanticLayerError(path, where, "needs an expression, e.g. SUM(quantity * unit_price)")
    ast = _sql_expression(expression, path, where, "expression", "an expression such as SUM(revenue)")
    if ast.find(exp.Window):
        raise SemanticLayerError(path, where, "window functions (OVER) are not allowed in metrics")
    if not ast.find(exp.AggFunc):
        raise SemanticLayerError(path, where, "a metric must aggregate, e.g. SUM(quantity * unit_price)")
    return MetricSpec(
        name=" ".join(name.split()).lower(),
        expression=expression,
        ast=ast,
        table=_text(spec.get("table"), path, f"{where} → table"),
        synonyms=_words(spec.get("synonyms"), path, f"{where} → synonyms"),
        description=_text(spec.get("description"), path, f"{where} → description") or "",
        format=_choice(spec.get("format"), path, f"{where} → format", FORMATS),
        filter=_condition(spec.get("filter"), path, f"{where} → filter"),
    )


def _sql_expression(text: str, path: str, where: str, kind: str, example: str) -> exp.Expression:
    """``text`` parsed as one SQL expression (not a query), or a SemanticLayerError."""
    try:
        ast = sqlglot.parse_one(text)
    except SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SemanticLayerError(path, where, f"the {kind} does not parse: {first}") from None
    if ast is None or isinstance(ast, (exp.Query, exp.Command)) or ast.find(exp.Query):
        raise SemanticLayerError(path, where, f"write {example}, not a query")
    return ast


def _condition(value: Any, path: str, where: str) -> exp.Expression | None:
    """A default filter: one row condition such as ``status NOT IN ('cancelled', 'returned')``."""
    text = _text(value, path, where)
    if text is None:
        return None
    ast = _sql_expression(text, path, where, "condition", "a condition such as status <> 'cancelled'")
    if ast.find(exp.AggFunc) or ast.find(exp.Window):
        raise SemanticLayerError(path, where, "a filter is a condition on each row: no aggregates or windows")
    if not ast.find(exp.Column):
        raise SemanticLayerError(path, where, "a filter must name a column, e.g. status <> 'cancelled'")
    return ast


def _relationship(item: Any, path: str, i: int) -> RelationshipSpec:
    where = f"relationships → {i + 1}"
    item = _mapping(item, path, where, ("from", "to"))
    ends = []
    for key in ("from", "to"):
        text = _text(item.get(key), path, f"{where} → {key}")
        if text is None or text.count(".") != 1:
            raise SemanticLayerError(path, f"{where} → {key}", "expected table.column")
        ends.append(tuple(part.strip() for part in text.split(".")))
    (child, child_column), (parent, parent_column) = ends
    return RelationshipSpec(child, child_column, parent, parent_column)


# -- binding to a schema ----------------------------------------------------------------------


@dataclasses.dataclass
class BoundLayer:
    """A semantic layer checked against one schema, with names as the schema spells them."""

    layer: SemanticLayer
    schema: Schema
    tables: dict[str, TableSpec]  # declared table name -> spec (column keys declared names too)
    edges: list[Edge]

    def column_options(self, table: str) -> dict[str, Any]:
        """Keyword arguments for :func:`~.analysis.table_info` (names, hidden, aggregations)."""
        spec = self.tables.get(table)
        if spec is None:
            return {}
        return {
            "names": {c: _phrase(s.name) for c, s in spec.columns.items() if s.name},
            "hidden": {c for c, s in spec.columns.items() if s.hidden},
            "aggregations": {c: s.aggregation for c, s in spec.columns.items() if s.aggregation},
        }

    def apply(self, tables: dict[str, TableInfo], dialect: str) -> list[tuple[tuple[str, ...], Link]]:
        """Add metrics, names and defaults to ``tables``; return the extra phrases to index."""
        path = self.layer.path
        links: list[tuple[tuple[str, ...], Link]] = []
        for name, metric in self.layer.metrics.items():
            measure = self._metric(metric, tables, dialect)
            if metric.filter is not None:
                condition = self._condition(measure.table, metric.filter, f"metrics → {metric.name} → filter", dialect)
                _filter(measure, condition, tables[measure.table])
            info = tables[measure.table]
            info.measures = [m for m in info.measures if m.label != measure.label] + [measure]
            for phrase in (measure.label, *metric.synonyms):
                links.append((_phrase(phrase), Link("measure", measure.table, measure=measure.label)))
        for table, spec in self.tables.items():
            info = tables[table]
            where = f"tables → {table}"
            if spec.name:
                links.append((info.words, Link("table", table)))
                info.words = _phrase(spec.name)
            for phrase in spec.synonyms:
                links.append((_phrase(phrase), Link("table", table)))
                # "client segment" names customers.segment as "customer segment" does
                own = tuple(lx.singular(w) for w in _phrase(phrase))
                links.extend((own + col.words, Link("column", table, col.name)) for col in info.columns.values()
                             if col.role not in {"hidden", "key"})
            for column, cspec in spec.columns.items():
                for measure in info.measures:
                    if measure.formula != ("col", column):
                        continue
                    if cspec.format:
                        measure.format, measure.money = cspec.format, cspec.format == "money"
                    if cspec.filter is not None:
                        condition = self._condition(table, cspec.filter, f"{where} → columns → {column} → filter",
                                                    dialect)
                        _filter(measure, condition, info)
                for phrase in cspec.synonyms:
                    links.append((_phrase(phrase), Link("column", table, column)))
                if cspec.name:
                    links.append((tuple(lx.identifier_words(column)), Link("column", table, column)))
            if spec.date:
                column = _column(self.schema.table(table), spec.date, path, f"{where} → date")  # type: ignore[arg-type]
                if info.columns[column].role != "date":
                    raise SemanticLayerError(path, f"{where} → date", f"{table}.{column} is not a date column")
                info.default_date = column
            if spec.measure:
                wanted = spec.measure.lower()
                found = next((m for m in info.measures if m.label == wanted or (m.column or "").lower() == wanted), None)
                if found is None:
                    known = [m.label for m in info.measures]
                    raise SemanticLayerError(path, f"{where} → measure",
                                             _unknown(f'no measure "{spec.measure}" in {table}', spec.measure, known))
                info.default_measure = found.label
        for word, target in self.layer.synonyms.items():
            links.append((_phrase(word), self._target(target, tables, f"synonyms → {word}")))
        return links

    # -- helpers ----------------------------------------------------------------------------

    def _metric(self, metric: MetricSpec, tables: dict[str, TableInfo], dialect: str) -> MeasureDef:
        path, where = self.layer.path, f"metrics → {metric.name}"
        columns = list(metric.ast.find_all(exp.Column))
        if metric.table:
            table = _table(self.schema, metric.table, path, f"{where} → table").name
        else:
            names = {c.name.lower() for c in columns}
            fits = [t.name for t in self.schema.tables if names <= {c.name.lower() for c in t.columns}]
            if len(fits) != 1:
                problem = (f"its columns are in {', '.join(fits)}: say which with table:" if fits
                           else "no table has all its columns: name the table with table:")
                raise SemanticLayerError(path, where, problem)
            table = fits[0]
        schema_table = self.schema.table(table)
        ast = metric.ast.copy()
        for column in ast.find_all(exp.Column):
            if column.table and column.table.lower() != table.lower():
                raise SemanticLayerError(path, where, f"a metric uses the columns of one table ({table}), "
                                                      f"not {column.table}.{column.name}")
            declared = _column(schema_table, column.name, path, where)  # type: ignore[arg-type]
            column.replace(exp.column(declared))
        try:  # the same wall every query passes: read-only, known columns
            validate_select(exp.select(ast.copy()).from_(exp.to_table(table)).sql(dialect=dialect or None),
                            dialect=dialect, schema=self.schema)
        except WarehouseError as exc:
            raise SemanticLayerError(path, where, exc.message) from None
        label = metric.name
        formula, agg = _classify(ast)
        fmt = metric.format or ("percent" if _money_ratio(ast, tables[table]) else None)
        money = fmt == "money" or (fmt is None and bool(set(label.split()) & lx.MONEY_WORDS))
        concept = concept_of(tuple(label.split()))
        return MeasureDef(table, label, formula, agg, money, concept, derived=True,
                          description=metric.description or metric.expression, format=fmt)

    def _condition(self, table: str, condition: exp.Expression, where: str, dialect: str) -> exp.Expression:
        """A default filter checked against ``table``: its columns exist, and it passes the
        validation every query passes."""
        path = self.layer.path
        schema_table = self.schema.table(table)
        condition = condition.copy()
        for column in list(condition.find_all(exp.Column)):
            if column.table and column.table.lower() != table.lower():
                raise SemanticLayerError(path, where, f"a filter uses the columns of the measure's table ({table}), "
                                                      f"not {column.table}.{column.name}")
            column.replace(exp.column(_column(schema_table, column.name, path, where)))  # type: ignore[arg-type]
        try:
            validate_select(exp.select("1").from_(exp.to_table(table)).where(condition.copy())
                            .sql(dialect=dialect or None), dialect=dialect, schema=self.schema)
        except WarehouseError as exc:
            raise SemanticLayerError(path, where, exc.message) from None
        return condition

    def _target(self, target: str, tables: dict[str, TableInfo], where: str) -> Link:
        path = self.layer.path
        metric = self.layer.metrics.get(" ".join(target.split()).lower())
        if metric is not None:
            for info in tables.values():
                if info.measure(metric.name) is not None:
                    return Link("measure", info.name, measure=metric.name)
        if "=" in target:
            left, _, value = target.partition("=")
            table, column = self._table_column(left.strip(), where)
            return Link("value", table, column, value=value.strip().strip("'\""))
        if "." in target:
            table, column = self._table_column(target, where)
            return Link("column", table, column)
        for info in tables.values():  # a metric or measure by its label ("revenue")
            if info.measure(target.lower()) is not None and target.lower() not in {t.lower() for t in tables}:
                return Link("measure", info.name, measure=target.lower())
        return Link("table", _table(self.schema, target, path, where).name)

    def _table_column(self, text: str, where: str) -> tuple[str, str]:
        table_name, _, column_name = text.partition(".")
        table = _table(self.schema, table_name.strip(), self.layer.path, where)
        return table.name, _column(table, column_name.strip(), self.layer.path, where)


def bind(layer: SemanticLayer, schema: Schema) -> BoundLayer:
    """Check ``layer`` against ``schema`` (tables, columns, relationships) and resolve names.

    Raises:
        SemanticLayerError: a table or column the schema does not have (with "did you mean").
    """
    path = layer.path
    tables: dict[str, TableSpec] = {}
    for name, spec in layer.tables.items():
        table = _table(schema, name, path, f"tables → {name}")
        columns = {_column(table, column, path, f"tables → {name} → columns → {column}"): cspec
                   for column, cspec in spec.columns.items()}
        tables[table.name] = dataclasses.replace(spec, columns=columns)
    edges = []
    for i, rel in enumerate(layer.relationships):
        where = f"relationships → {i + 1}"
        child = _table(schema, rel.child, path, where)
        parent = _table(schema, rel.parent, path, where)
        edges.append(Edge(child.name, (_column(child, rel.child_column, path, where),),
                          parent.name, (_column(parent, rel.parent_column, path, where),), declared=False))
    return BoundLayer(layer, schema, tables, edges)


def _table(schema: Schema, name: str, path: str, where: str) -> Table:
    found = schema.table(name)
    if found is None:
        raise SemanticLayerError(path, where, _unknown(f'no table "{name}"', name, [t.name for t in schema.tables]))
    return found


def _column(table: Table, name: str, path: str, where: str) -> str:
    found = table.column(name)
    if found is None:
        raise SemanticLayerError(path, where, _unknown(f'no column "{name}" in {table.name}', name,
                                                       [c.name for c in table.columns]))
    return found.name


def _unknown(problem: str, name: str, candidates: list[str]) -> str:
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    return f"{problem}; did you mean {', '.join(by_lower[c] for c in close)}?" if close else problem


def _filter(measure: MeasureDef, condition: exp.Expression, info: TableInfo) -> None:
    """Make ``measure`` count only the rows that meet ``condition``, wherever it is used."""
    if measure.formula[0] == "agg_expr":  # each aggregate inside the metric skips the other rows
        def only_kept(node: exp.Expression) -> exp.Expression:
            if not isinstance(node, exp.AggFunc) or node.find_ancestor(exp.AggFunc):
                return node
            node = node.copy()
            inner = node.this
            if isinstance(inner, exp.Distinct):
                inner.set("expressions", [exp.Case(ifs=[exp.If(this=condition.copy(), true=e)])
                                          for e in inner.expressions])
            elif isinstance(inner, exp.Star) or inner is None:
                node.set("this", exp.Case(ifs=[exp.If(this=condition.copy(), true=exp.Literal.number(1))]))
            else:
                node.set("this", exp.Case(ifs=[exp.If(this=condition.copy(), true=inner)]))
            return node

        measure.formula = ("agg_expr", measure.formula[1].transform(only_kept))
    elif measure.formula[0] == "ratio":
        measure.formula = ("ratio", ("where", condition, measure.formula[1]), ("where", condition, measure.formula[2]))
    else:
        measure.formula = ("where", condition, measure.formula)
    measure.filter_note = f"{measure.label[:1].upper()}{measure.label[1:]} {filter_words(condition, info)}"


def filter_words(condition: exp.Expression, info: TableInfo) -> str:
    """A default filter in words: ``status NOT IN ('cancelled', 'returned')`` on orders ->
    "excludes cancelled and returned orders"; a condition without a simple reading is quoted."""
    rows = info.plural

    def values(node: exp.Expression) -> list[str] | None:
        items = node.expressions if isinstance(node, exp.In) else [node.expression]
        if not items or not all(isinstance(v, exp.Literal) for v in items):
            return None
        texts = [str(v.this) for v in items]
        return texts

    def joined(texts: list[str]) -> str:
        return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + f" and {texts[-1]}"

    node = condition.unnest() if isinstance(condition, exp.Paren) else condition
    negated = isinstance(node, exp.Not)
    if negated:
        node = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
    if isinstance(node, (exp.In, exp.EQ, exp.NEQ)) and isinstance(node.this, exp.Column):
        found = values(node)
        if found is not None:
            excluded = negated != isinstance(node, exp.NEQ)
            return f"{'excludes' if excluded else 'counts only'} {joined(found)} {rows}"
    return f"counts only {rows} where {condition.sql()}"


def _money_ratio(ast: exp.Expression, info: TableInfo) -> bool:
    """Whether a metric divides money by money (``(SUM(revenue) - SUM(cost)) / SUM(revenue)``):
    a ratio read as a percentage, unlike money per order (``SUM(revenue) / COUNT(*)``)."""
    node = ast.unnest() if isinstance(ast, exp.Paren) else ast
    if not isinstance(node, exp.Div):
        return False

    def money_only(side: exp.Expression) -> bool:
        names = [c.name for c in side.find_all(exp.Column)]
        if not names or side.find(exp.Count):
            return False
        return all(info.columns[n].money for n in names if n in info.columns)

    return money_only(node.this) and money_only(node.expression)


def _phrase(text: str) -> tuple[str, ...]:
    """Words as the linker sees them (normalized like question tokens)."""
    return tuple(t.norm for t in tokenize(text) if t.kind in {"word", "number"})


def _classify(ast: exp.Expression) -> tuple[tuple, str]:
    """``SUM(x * y)`` -> (("expr", x * y), "sum"): the aggregation can then be swapped ("average
    list revenue"); anything else (``SUM(a) / SUM(b)``) is used as written."""
    if isinstance(ast, exp.Paren):
        ast = ast.unnest()
    inner = ast.this if isinstance(ast, exp.AggFunc) else None
    if type(ast) in _AGG_FUNCS and inner is not None and not inner.find(exp.AggFunc):
        return ("expr", inner), _AGG_FUNCS[type(ast)]
    if isinstance(ast, exp.Count) and isinstance(inner, exp.Distinct) and len(inner.expressions) == 1:
        value = inner.expressions[0]
        if not value.find(exp.AggFunc):
            return ("expr", value), "count_distinct"
    if isinstance(ast, exp.Count) and inner is not None and not isinstance(inner, exp.Star) \
            and not inner.find(exp.AggFunc):
        return ("expr", inner), "count"
    return ("agg_expr", ast), "ratio"
