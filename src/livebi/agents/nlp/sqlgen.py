"""SQL generation: a :class:`~.query.QuerySpec` -> one SELECT in the warehouse's dialect.

The statement is built as a sqlglot AST and rendered with ``.sql(dialect=...)``; no text from
the question is ever pasted into SQL. Identifiers come from the schema (quoted when they need
it: ``"Order"``, ``"OrderDate"``), values become sqlglot literals, which sqlglot escapes.

Dialect differences handled here rather than left to sqlglot's transpiler:

* time buckets: ``CAST(DATE_TRUNC('month', col) AS DATE)`` for DuckDB and PostgreSQL (both
  return a timestamp otherwise); ``strftime`` / ``date()`` expressions for SQLite, which has
  no ``DATE_TRUNC`` and stores dates as ISO text;
* date literals: ``CAST('2024-01-01' AS DATE)`` for DuckDB and PostgreSQL, a plain ISO string
  for SQLite (where ``CAST(... AS DATE)`` would yield the number 2024);
* dates stored as text in DuckDB/PostgreSQL are cast to ``DATE`` before use.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from sqlglot import exp
from sqlglot.tokens import Tokenizer

from .model import Edge, SemanticModel
from .query import DimensionSpec, ExistsSpec, FilterSpec, MeasureSpec, QuerySpec

_SIMPLE = re.compile(r"[a-z_][a-z0-9_]*")
_EXTRA_RESERVED = {"ORDER", "GROUP", "USER", "TABLE", "SELECT", "FROM", "WHERE", "LIMIT", "OFFSET",
                   "VALUE", "VALUES", "KEY", "INDEX", "DATE", "TIME", "TIMESTAMP", "MONTH",
                   "YEAR", "DAY", "WEEK", "QUARTER", "HOUR", "MINUTE", "SECOND", "END", "CASE",
                   "RANGE", "ROWS", "ROW", "DESC", "ASC", "CHECK", "DEFAULT", "COLUMN", "ALL",
                   "ANY", "SOME", "BETWEEN", "LIKE", "IN", "IS", "NOT", "NULL", "TRUE", "FALSE",
                   "AND", "OR", "ON", "AS", "BY", "TO", "WITH", "CAST", "UNION", "WINDOW"}


@functools.lru_cache(maxsize=1)
def _reserved() -> frozenset[str]:
    words = {w for key in Tokenizer.KEYWORDS for w in key.split()}
    return frozenset(words | _EXTRA_RESERVED)


def ident(name: str) -> exp.Identifier:
    """An identifier, quoted when the name is not plain lowercase or is a keyword."""
    quoted = not _SIMPLE.fullmatch(name) or name.upper() in _reserved()
    return exp.to_identifier(name, quoted=quoted)


def col(table: str, column: str) -> exp.Column:
    return exp.Column(this=ident(column), table=ident(table))


def _num(value: float) -> exp.Expression:
    if float(value).is_integer() and abs(value) < 1e15:
        return exp.Literal.number(int(value))
    return exp.Literal.number(repr(float(value)))


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, (int, float)):
        return _num(value)
    return exp.Literal.string(str(value))


def _date_literal(day: dt.date, dialect: str) -> exp.Expression:
    text = exp.Literal.string(day.isoformat())
    return text if dialect == "sqlite" else exp.cast(text, "DATE")


def _date_value(table: str, column: str, text_date: bool, dialect: str) -> exp.Expression:
    ref = col(table, column)
    if text_date and dialect != "sqlite":
        return exp.cast(ref, "DATE")
    return ref


def _strftime(fmt: str, value: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="STRFTIME", expressions=[exp.Literal.string(fmt), value])


def time_bucket(table: str, column: str, grain: str, *, text_date: bool, dialect: str) -> exp.Expression:
    """The start of the ``grain`` period containing the column's date, as a date."""
    value = _date_value(table, column, text_date, dialect)
    if dialect == "sqlite":
        if grain == "day":
            return exp.Anonymous(this="DATE", expressions=[value])
        if grain == "week":  # Monday on or before the date, like DATE_TRUNC('week')
            return exp.Anonymous(this="DATE", expressions=[value, exp.Literal.string("-6 days"),
                                                            exp.Literal.string("weekday 1")])
        if grain == "month":
            return _strftime("%Y-%m-01", value)
        if grain == "year":
            return _strftime("%Y-01-01", value)
        month = exp.cast(_strftime("%m", value.copy()), "INTEGER")
        case = exp.Case()
        for upper, start in ((3, "-01-01"), (6, "-04-01"), (9, "-07-01")):
            case = case.when(exp.LTE(this=month.copy(), expression=_num(upper)), exp.Literal.string(start))
        case = case.else_(exp.Literal.string("-10-01"))
        return exp.DPipe(this=_strftime("%Y", value), expression=case, safe=True)
    if grain == "day":
        return exp.cast(value, "DATE")
    trunc = exp.Anonymous(this="DATE_TRUNC", expressions=[exp.Literal.string(grain), value])
    return exp.cast(trunc, "DATE")


def formula_sql(table: str, formula: tuple) -> exp.Expression:
    """Render a measure formula tree (see :class:`~.model.MeasureDef`)."""
    op = formula[0]
    if op == "col":
        return col(table, formula[1])
    if op in {"expr", "agg_expr"}:  # a semantic-layer metric: qualify its columns
        return formula[1].transform(lambda node: col(table, node.name) if isinstance(node, exp.Column) else node)
    if op == "where":  # a default filter: the value where the row meets it, else NULL
        condition = formula[1].transform(lambda node: col(table, node.name) if isinstance(node, exp.Column) else node)
        return exp.Case(ifs=[exp.If(this=condition, true=formula_sql(table, formula[2]))])
    if op == "one_minus":
        return exp.Paren(this=exp.Sub(this=_num(1), expression=formula_sql(table, formula[1])))
    left, right = formula_sql(table, formula[1]), formula_sql(table, formula[2])
    if op == "mul":
        return exp.Mul(this=left, expression=right)
    if op == "sub":
        return exp.Paren(this=exp.Sub(this=left, expression=right))
    raise ValueError(f"unknown formula operator {op!r}")


def measure_sql(measure: MeasureSpec, dialect: str = "duckdb") -> exp.Expression:
    if measure.formula is None:
        return exp.Count(this=exp.Star())
    if measure.formula[0] == "ratio":
        top = exp.Mul(this=exp.Literal.number("1.0"), expression=exp.Sum(this=formula_sql(measure.table, measure.formula[1])))
        bottom = exp.Sum(this=formula_sql(measure.table, measure.formula[2]))
        return exp.Div(this=top, expression=exp.Nullif(this=bottom, expression=_num(0)))
    if measure.formula[0] == "agg_expr":
        return formula_sql(measure.table, measure.formula)
    value = formula_sql(measure.table, measure.formula)
    if measure.agg == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[value]))
    if measure.agg == "count":
        return exp.Count(this=value)
    if measure.agg == "avg_per" and measure.per:
        # the average per entity (order, customer): total over number of distinct entities;
        # the 1.0 factor keeps integer division out of SQLite and PostgreSQL
        per = exp.Count(this=exp.Distinct(expressions=[col(*measure.per)]))
        total = exp.Mul(this=exp.Literal.number("1.0"), expression=exp.Sum(this=value))
        return exp.Div(this=total, expression=exp.Nullif(this=per, expression=_num(0)))
    if measure.agg == "median":
        # DuckDB has MEDIAN, PostgreSQL PERCENTILE_CONT (sqlglot renders either); SQLite has
        # neither, so it gets the average and the parser says so
        return exp.Avg(this=value) if dialect == "sqlite" else exp.Median(this=value)
    func = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[measure.agg]
    return func(this=value)


def dialect_notes(spec: QuerySpec, dialect: str) -> list[str]:
    """Assumptions forced by the dialect (features the engine lacks)."""
    notes = []
    if dialect == "sqlite" and any(m.agg == "median" for m in spec.measures):
        notes.append("SQLite has no median: used the average instead")
    return notes


def dimension_sql(dim: DimensionSpec, dialect: str) -> exp.Expression:
    if dim.grain:
        return time_bucket(dim.table, dim.column, dim.grain, text_date=dim.text_date, dialect=dialect)
    return col(dim.table, dim.column)


def filter_sql(flt: FilterSpec, dialect: str) -> exp.Expression:
    if flt.op == "date_range" and len(flt.values) > 2:  # periods apart: "2024 vs 2022"
        pairs = [flt.values[i:i + 2] for i in range(0, len(flt.values), 2)]
        return exp.Paren(this=exp.or_(*(filter_sql(FilterSpec(flt.table, flt.column, "date_range", pair,
                                                                text_date=flt.text_date), dialect)
                                         for pair in pairs)))
    if flt.op == "date_range":
        value = _date_value(flt.table, flt.column, flt.text_date, dialect)
        start, end = flt.values
        parts: list[exp.Expression] = []
        if start is not None:
            parts.append(exp.GTE(this=value.copy(), expression=_date_literal(start, dialect)))
        if end is not None:
            parts.append(exp.LT(this=value.copy(), expression=_date_literal(end, dialect)))
        return exp.and_(*parts) if len(parts) > 1 else parts[0]
    ref = col(flt.table, flt.column)
    if flt.op == "in":
        return exp.In(this=ref, expressions=[_literal(v) for v in flt.values])
    if flt.op == "is_null":
        return exp.Is(this=ref, expression=exp.Null())
    if flt.op == "not_null":
        return exp.Not(this=exp.Is(this=ref, expression=exp.Null()))
    if flt.op == "not_in":  # NULLs are "not" the excluded values either
        return exp.or_(exp.Not(this=exp.In(this=ref, expressions=[_literal(v) for v in flt.values])),
                       exp.Is(this=ref.copy(), expression=exp.Null()))
    if flt.op == "!=":
        return exp.or_(exp.NEQ(this=ref, expression=_literal(flt.values[0])),
                       exp.Is(this=ref.copy(), expression=exp.Null()))
    if flt.op == "between":
        return exp.Between(this=ref, low=_literal(flt.values[0]), high=_literal(flt.values[1]))
    if flt.op == "is_true":
        return exp.EQ(this=ref, expression=_num(1)) if dialect == "sqlite" else exp.EQ(
            this=exp.cast(ref, "INTEGER"), expression=_num(1))
    if flt.op == "ieq":  # a quoted name: equal whatever its case
        return exp.EQ(this=exp.Lower(this=ref), expression=exp.Literal.string(str(flt.values[0]).lower()))
    if flt.op == "like":
        return exp.Like(this=exp.Lower(this=ref), expression=exp.Literal.string(f"%{str(flt.values[0]).lower()}%"))
    if flt.op in {"matches", "not_matches"}:  # a LIKE pattern built by .strings, compared lowercased
        like = exp.Like(this=exp.Lower(this=ref), expression=exp.Literal.string(str(flt.values[0]).lower()))
        return like if flt.op == "matches" else exp.Not(this=like)
    return _compare(flt.op, ref, _literal(flt.values[0]))


def _compare(op: str, left: exp.Expression, right: exp.Expression) -> exp.Expression:
    cls = {"=": exp.EQ, "!=": exp.NEQ, ">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE}[op]
    return cls(this=left, expression=right)


class NoJoinPath(LookupError):
    """The query needs a table that no chain of keys connects to its base table."""

    def __init__(self, base: str, table: str) -> None:
        super().__init__(f"no join path from {base} to {table}")
        self.base = base
        self.table = table


def join_plan(model: SemanticModel, spec: QuerySpec) -> list[tuple[Edge, bool]]:
    """The joins that connect every table the query uses to its base table.

    Walks the BFS tree of shortest paths from the base table (many-to-one steps only, unless
    the spec allows fan-out), so the union of paths is itself a tree: each table is joined once.
    """
    paths = model.paths_from(spec.base, directed=not spec.allow_fanout)
    steps: list[tuple[Edge, bool]] = []
    seen: set[tuple[str, tuple[str, ...], str]] = set()
    for table in sorted(spec.tables() - {spec.base}, key=lambda t: (len(paths.get(t, ())), t)):
        if table not in paths:
            raise NoJoinPath(spec.base, table)
        for edge, forward in paths[table]:
            key = (edge.child, edge.child_cols, edge.parent)
            if key not in seen:
                seen.add(key)
                steps.append((edge, forward))
    return steps


def growth_sql(spec: QuerySpec, time: DimensionSpec, dialect: str) -> exp.Expression:
    """100.0 * (x - LAG(x)) / LAG(x) over ``time``, within each value of the other dimensions:
    the first measure's change against the previous period, in percent (NULL for the first)."""
    first = measure_sql(spec.measures[0], dialect)
    others = [dimension_sql(d, dialect) for d in spec.dimensions if d is not time]
    order = exp.Order(expressions=[exp.Ordered(this=dimension_sql(time, dialect))])

    def previous() -> exp.Expression:
        return exp.Window(this=exp.Anonymous(this="LAG", expressions=[first.copy()]),
                          partition_by=[o.copy() for o in others] or None, order=order.copy())

    change = exp.Paren(this=exp.Sub(this=first.copy(), expression=previous()))
    return exp.Div(this=exp.Mul(this=exp.Literal.number("100.0"), expression=change),
                   expression=exp.Nullif(this=previous(), expression=_num(0)))


def build_select(model: SemanticModel, spec: QuerySpec, dialect: str) -> exp.Select:
    """The sqlglot AST of the query."""
    projections: list[exp.Expression] = []
    group: list[exp.Expression] = []
    for dim in spec.dimensions:
        expr = dimension_sql(dim, dialect)
        projections.append(exp.alias_(expr, ident(dim.alias)))
        group.append(expr.copy())
        group.extend(col(dim.table, key) for key in dim.group_keys)
    for sel in spec.select:
        projections.append(exp.alias_(col(sel.table, sel.column), ident(sel.alias)))
    rate_of = exp.and_(*[filter_sql(f, dialect) for f in spec.rate_of]) if spec.rate_of else None
    counted = None  # with rate_of: COUNT(CASE WHEN <kind> THEN 1 END), the rows the rate counts
    for measure in spec.measures:
        value = measure_sql(measure, dialect)
        if rate_of is not None and counted is None:
            value = counted = exp.Count(this=exp.Case(ifs=[exp.If(this=rate_of, true=exp.Literal.number(1))]))
        projections.append(exp.alias_(value, ident(measure.alias)))
    if counted is not None:
        # 100.0 * counted / COUNT(*): the kind's rate within each group
        rate = exp.Div(this=exp.Mul(this=exp.Literal.number("100.0"), expression=counted.copy()),
                       expression=exp.Nullif(this=measure_sql(spec.measures[0], dialect), expression=_num(0)))
        if not spec.dimensions:  # one rate: the count beside it would only repeat the question
            projections = []
        projections.append(exp.alias_(rate, ident("share_pct")))
    elif spec.share and spec.measures and spec.dimensions:
        # 100.0 * x / SUM(x) OVER (): the 100.0 keeps integer counts out of integer division
        first = measure_sql(spec.measures[0], dialect)
        total = exp.Window(this=exp.Sum(this=first.copy()))
        share = exp.Div(this=exp.Mul(this=exp.Literal.number("100.0"), expression=first),
                        expression=exp.Nullif(this=total, expression=_num(0)))
        projections.append(exp.alias_(share, ident("share_pct")))
    time_dims = [d for d in spec.dimensions if d.grain]
    if spec.growth and spec.measures and time_dims:
        projections.append(exp.alias_(growth_sql(spec, time_dims[-1], dialect), ident("growth_pct")))
    # The AST is assembled directly (not through the builder methods, which copy and re-parse
    # their arguments) because parsing must stay within a few milliseconds.
    query = exp.Select(expressions=projections)
    if spec.distinct and spec.select and not spec.measures:
        query.set("distinct", exp.Distinct())
    query.set("from_", exp.From(this=exp.Table(this=ident(spec.base))))
    joins = []
    for edge, forward in join_plan(model, spec):
        target = edge.parent if forward else edge.child
        condition = exp.and_(*[
            exp.EQ(this=col(edge.child, c), expression=col(edge.parent, p))
            for c, p in zip(edge.child_cols, edge.parent_cols)
        ], copy=False)
        joins.append(exp.Join(this=exp.Table(this=ident(target)), side="LEFT", on=condition))
    if joins:
        query.set("joins", joins)
    conditions = [filter_sql(f, dialect) for f in spec.filters]
    conditions += [exists_sql(model, e, dialect) for e in spec.exists]
    if conditions:
        query.set("where", exp.Where(this=exp.and_(*conditions, copy=False)))
    if group and spec.measures:
        query.set("group", exp.Group(expressions=group))
    if spec.having:
        havings = []
        for h in spec.having:
            agg = measure_sql(h.measure, dialect)
            if h.op == "between":
                havings.append(exp.Between(this=agg, low=_num(h.values[0]), high=_num(h.values[1])))
            elif h.op == "in":
                havings.append(exp.In(this=agg, expressions=[_num(v) for v in h.values]))
            else:
                havings.append(_compare(h.op, agg, _num(h.values[0])))
        query.set("having", exp.Having(this=exp.and_(*havings, copy=False)))
    if spec.order:
        query.set("order", exp.Order(expressions=[
            exp.Ordered(this=exp.Column(this=ident(alias)), desc=direction == "desc")
            for alias, direction in spec.order
        ]))
    if spec.limit is not None:
        query.set("limit", exp.Limit(expression=_num(spec.limit)))
    return query


def exists_sql(model: SemanticModel, spec: ExistsSpec, dialect: str) -> exp.Expression:
    """``[NOT] EXISTS (SELECT 1 FROM related ... WHERE <key> = outer.<key> AND <filters>)``.

    The related table and the tables between it and the outer one are joined inside the
    subquery along the key path; the last edge of the path correlates it with the outer row.
    Tables its filters need (parents of the related table) are joined inside too."""
    *inner_path, (last, _) = spec.path
    joined = {spec.table}
    joins: list[exp.Join] = []

    def join(edge: Edge) -> None:
        if edge.parent in joined or edge.parent == spec.outer:
            return
        joined.add(edge.parent)
        on = exp.and_(*[exp.EQ(this=col(edge.child, c), expression=col(edge.parent, p))
                        for c, p in zip(edge.child_cols, edge.parent_cols)], copy=False)
        joins.append(exp.Join(this=exp.Table(this=ident(edge.parent)), on=on))

    for edge, _forward in inner_path:
        join(edge)
    paths = model.paths_from(spec.table)
    for f in spec.filters:
        for edge, _forward in paths.get(f.table, []):
            join(edge)
    where = [exp.EQ(this=col(last.child, c), expression=col(last.parent, p))
             for c, p in zip(last.child_cols, last.parent_cols)]
    where += [filter_sql(f, dialect) for f in spec.filters]
    sub = exp.Select(expressions=[exp.Literal.number(1)])
    sub.set("from_", exp.From(this=exp.Table(this=ident(spec.table))))
    if joins:
        sub.set("joins", joins)
    sub.set("where", exp.Where(this=exp.and_(*where, copy=False)))
    found = exp.Exists(this=sub)
    return exp.Not(this=found) if spec.negated else found


def generate(model: SemanticModel, spec: QuerySpec, dialect: str) -> str:
    """Render the query for ``dialect`` (``duckdb``, ``sqlite``, ``postgres``)."""
    return build_select(model, spec, dialect).sql(dialect=dialect)
