"""Validate generated or user-written SQL before it reaches a warehouse.

Every query the data agent runs passes :func:`validate_select` first. It accepts exactly one
read-only query and rejects, with a protocol error code:

- ``invalid_sql``: the text does not parse in the warehouse's dialect;
- ``multiple_statements``: more than one statement (``SELECT 1; DROP TABLE t``);
- ``forbidden_sql``: anything that is not a pure query or that could write, change settings or
  reach outside the warehouse, wherever it hides in the tree (a ``DELETE`` inside a CTE,
  ``SELECT ... INTO``, ``FOR UPDATE``, ``PRAGMA``, ``ATTACH``, file readers such as
  ``read_csv`` or DuckDB's ``FROM 'file.csv'``, ``pg_read_file``, ``set_config``...);
- ``unknown_table`` / ``unknown_column``: a name the schema does not have, with "did you mean"
  suggestions (close matches by spelling) in :attr:`UnsafeSQL.suggestions`.

The connectors add defense in depth (read-only connections and transactions, DuckDB without
external access), so validation is the first wall, not the only one.

Name checks are case-insensitive and deliberately lenient where the schema cannot tell
(struct field access, table functions without column lists, engine pseudo-columns): a false
"unknown column" would block a valid question, while a real mistake still fails in the engine.
"""

from __future__ import annotations

import difflib
import re
import weakref
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from livebi.warehouse.base import Schema, WarehouseError


class UnsafeSQL(WarehouseError):
    """SQL that must not run; ``code`` says why and ``suggestions`` offers close names."""

    def __init__(self, code: str, message: str, *, suggestions: list[str] | None = None) -> None:
        super().__init__(code, message)
        self.suggestions: list[str] = list(suggestions or [])


# Statement and clause types that write, change state or leave the database, looked up by
# name so that a sqlglot release without one of them still imports.
_FORBIDDEN_NODE_NAMES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterColumn", "Command",
    "Copy", "Pragma", "Set", "Attach", "Detach", "Export", "Install", "LoadData", "Into", "Lock",
    "Grant", "Revoke", "Transaction", "Commit", "Rollback", "Use", "Analyze", "Cache", "Uncache",
    "Refresh", "Kill", "Execute", "ExecuteSql", "Declare", "TruncateTable", "Describe", "Show",
    "Summarize", "Comment", "ReadCSV", "ReadParquet", "ToFile", "MultitableInserts",
    "LockingStatement", "Undrop",
)
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name) for name in _FORBIDDEN_NODE_NAMES if isinstance(getattr(exp, name, None), type)
)

# Functions that read files or other databases, change settings or sequences, or signal other
# sessions. Names are matched in lower case; prefixes and suffixes catch whole families.
_FORBIDDEN_FUNCTIONS = frozenset(
    {
        "glob", "query", "query_table", "sniff_csv", "st_read", "st_read_meta", "which_secret",
        "load_extension", "readfile", "writefile", "edit", "fts_main", "set_config", "nextval",
        "setval", "currval", "lastval", "dblink", "pg_sleep_for", "pg_sleep_until",
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
        "pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_notify", "pg_stat_file",
        "pg_file_write", "pg_logdir_ls", "txid_current", "pg_current_xact_id", "copy",
        "getenv", "current_setting_all", "shell", "system", "sys_exec", "sys_eval",
        # run SQL given as text, or read other sessions' activity / server paths
        "ts_stat", "current_setting", "fts3_tokenizer", "inet_server_addr", "inet_server_port",
    }
)
_FORBIDDEN_PREFIXES = (
    "read_", "parquet_", "iceberg_", "delta_", "postgres_", "mysql_", "sqlite_", "duckdb_",
    "pg_", "lo_", "dblink", "icu_", "json_execute", "txid_",
)
_FORBIDDEN_SUFFIXES = (
    "_scan", "_attach", "_query", "_execute", "_export", "_import",
    "_to_xml", "_to_xmlschema", "_to_xml_and_xmlschema",  # query_to_xml & co. run SQL given as text
)
_ALLOWED_DESPITE_PATTERN = frozenset({"sqlite_version", "sqlite_source_id"})

# Table-valued functions that only generate values.
_ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range", "generate_series", "unnest", "explode", "generate_subscripts", "json_each",
        "json_tree", "jsonb_each", "jsonb_each_text", "json_each_text", "json_array_elements",
        "jsonb_array_elements", "json_array_elements_text", "jsonb_array_elements_text",
        "regexp_split_to_table", "exploding_generate_series",
    }
)

# Schemas whose tables are engine catalogues, never business data.
_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "temp", "system"})

# Columns every row has without the schema listing them.
_PSEUDO_COLUMNS = frozenset(
    {"rowid", "_rowid_", "oid", "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"}
)

# A quoted "table" that is really a file path or URL (DuckDB's replacement scans read those).
_PATH_LIKE = re.compile(r"[/\\*?]|://|\.(csv|tsv|parquet|json|jsonl|ndjson|txt|xlsx?|arrow|db|sqlite|duckdb|gz|zst)$", re.I)


def validate_select(sql: str, *, dialect: str, schema: Schema) -> str:
    """Check that ``sql`` is one safe read-only query over ``schema``; return it normalised.

    Args:
        sql: the query text.
        dialect: the sqlglot dialect of the target warehouse (``duckdb``, ``sqlite``, ``postgres``).
        schema: the warehouse's schema; every table and column named must exist in it.

    Returns:
        The query regenerated by sqlglot in ``dialect``, without comments.

    Raises:
        UnsafeSQL: with ``code`` one of ``invalid_sql``, ``multiple_statements``,
            ``forbidden_sql``, ``unknown_table``, ``unknown_column``.
    """
    if not sql or not sql.strip():
        raise UnsafeSQL("invalid_sql", "the SQL is empty")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as exc:
        raise UnsafeSQL("invalid_sql", f"the SQL does not parse: {_first_line(exc)}") from None
    if not statements:
        raise UnsafeSQL("invalid_sql", "the SQL holds no statement")
    if len(statements) > 1:
        raise UnsafeSQL(
            "multiple_statements", f"send exactly one statement, not {len(statements)}"
        )
    root = statements[0]
    if not isinstance(root, exp.Query):
        raise UnsafeSQL("forbidden_sql", f"only read-only queries may run, not {_describe(root)}")

    index = _index_for(schema)
    cte_names = {cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)}
    _check_nodes(root, index, cte_names)
    _check_columns(root, index, cte_names)
    try:
        return root.sql(dialect=dialect, comments=False)
    except SqlglotError as exc:  # pragma: no cover - parsed trees regenerate
        raise UnsafeSQL("invalid_sql", f"the SQL cannot be regenerated: {_first_line(exc)}") from None


# --------------------------------------------------------------------------------------------
# schema index (built once per Schema object: validation runs on every query)


@dataclass
class _Index:
    tables: dict[str, str] = field(default_factory=dict)  # lower name -> declared name
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # lower table -> lower col -> col


_indexes: dict[int, tuple[weakref.ref, _Index]] = {}


def _index_for(schema: Schema) -> _Index:
    entry = _indexes.get(id(schema))
    if entry is not None and entry[0]() is schema:
        return entry[1]
    index = _Index()
    for table in schema.tables:
        key = table.name.lower()
        index.tables.setdefault(key, table.name)
        index.columns.setdefault(key, {c.name.lower(): c.name for c in table.columns})
    key = id(schema)
    _indexes[key] = (weakref.ref(schema, lambda _ref, key=key: _indexes.pop(key, None)), index)
    return index


# --------------------------------------------------------------------------------------------
# forbidden constructs and table names


def _check_nodes(root: exp.Expression, index: _Index, cte_names: set[str]) -> None:
    for node in root.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeSQL("forbidden_sql", f"{_describe(node)} is not allowed in a read-only query")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if _is_forbidden_function(name):
                raise UnsafeSQL("forbidden_sql", f"function {name}() is not allowed")
        if isinstance(node, exp.Table):
            _check_table(node, index, cte_names)


def _check_table(node: exp.Table, index: _Index, cte_names: set[str]) -> None:
    target = node.this
    if isinstance(target, exp.Func):
        name = _function_name(target)
        if name not in _ALLOWED_TABLE_FUNCTIONS:
            raise UnsafeSQL("forbidden_sql", f"table function {name}() is not allowed")
        return
    if not isinstance(target, exp.Identifier):
        if isinstance(target, exp.Literal) or target is None:
            raise UnsafeSQL("forbidden_sql", "reading from a file or literal is not allowed")
        return  # e.g. a VALUES list or a nested construct checked on its own
    name = target.name
    lowered = name.lower()
    db = node.text("db").lower()
    if db in _SYSTEM_SCHEMAS:
        raise UnsafeSQL("unknown_table", f"system table {db}.{name} is not available to queries")
    if not db and lowered in cte_names:
        return
    if lowered in index.tables:
        return
    if _PATH_LIKE.search(name):
        raise UnsafeSQL("forbidden_sql", f"reading files or URLs ({name!r}) is not allowed")
    raise _unknown("unknown_table", f"unknown table {name!r}", name, [*index.tables.values(), *sorted(cte_names)])


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    names = type(node).sql_names()
    return (names[0] if names else type(node).__name__).lower()


def _is_forbidden_function(name: str) -> bool:
    if name in _ALLOWED_DESPITE_PATTERN:
        return False
    return (
        name in _FORBIDDEN_FUNCTIONS
        or name.startswith(_FORBIDDEN_PREFIXES)
        or name.endswith(_FORBIDDEN_SUFFIXES)
    )


# --------------------------------------------------------------------------------------------
# column resolution


_UNKNOWN = None  # a source whose output columns we cannot know (table function without list)


def _check_columns(root: exp.Query, index: _Index, cte_names: set[str]) -> None:
    try:
        scopes = traverse_scope(root)
    except SqlglotError:
        return  # exotic syntax the scope builder rejects: tables were checked, the engine decides
    outputs_cache: dict[int, set[str] | None] = {}
    for scope in scopes:
        for column in scope.columns:
            # A scope also lists the columns its subqueries use from outside; check each
            # column once, in the query that contains it.
            if column.find_ancestor(exp.Select, exp.SetOperation) is scope.expression:
                _check_column(column, scope, index, outputs_cache)
        if isinstance(scope.expression, exp.Select):
            for projection in scope.expression.expressions:  # t.* is not among scope.columns
                if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                    _check_column(projection, scope, index, outputs_cache)


def _check_column(column: exp.Column, scope: Scope, index: _Index, cache: dict[int, set[str] | None]) -> None:
    name = column.name
    lowered = name.lower()
    qualifier = column.table
    is_star = isinstance(column.this, exp.Star)
    if qualifier:
        q = qualifier.lower()
        db = column.text("db").lower()
        if db and any(db == a.lower() for v in _visible_scopes(scope) for a in v.sources):
            return  # alias.struct_column.field: nested field access, not checked further
        for visible in _visible_scopes(scope):
            for alias, source in visible.sources.items():
                if alias.lower() != q:
                    continue
                if is_star:
                    return
                outputs = _source_outputs(source, index, cache)
                if outputs is _UNKNOWN or lowered in outputs or lowered in _PSEUDO_COLUMNS:
                    return
                raise _unknown(
                    "unknown_column", f"unknown column {qualifier}.{name}", name, _display(source, index, cache)
                )
        # Not a table alias: DuckDB/PostgreSQL struct field access (``address.city``) when
        # the qualifier is itself a column; otherwise an unknown table alias.
        if column.args.get("db") is None and _column_visible(q, scope, index, cache):
            return
        aliases = sorted({a for s in _visible_scopes(scope) for a in s.sources})
        raise _unknown("unknown_table", f"unknown table or alias {qualifier!r} in {qualifier}.{name}", qualifier, aliases)
    if is_star or lowered in _PSEUDO_COLUMNS:
        return
    if _column_visible(lowered, scope, index, cache):
        return
    if isinstance(scope.expression, exp.SetOperation):
        # ORDER BY of a UNION names the union's output columns.
        outputs = _scope_outputs(scope, index, cache)
        if outputs is _UNKNOWN or lowered in outputs:
            return
    # An output alias used in WHERE / GROUP BY / HAVING / ORDER BY, or by a later projection
    # (DuckDB and SQLite allow both) - but not inside the projection that defines it.
    if isinstance(scope.expression, exp.Select):
        for projection in scope.expression.expressions:
            if (
                isinstance(projection, exp.Alias)
                and projection.alias.lower() == lowered
                and not _is_within(column, projection)
            ):
                return
    candidates: list[str] = []
    for visible in _visible_scopes(scope):
        for source in visible.selected_sources.values():
            candidates.extend(_display(source[1], index, cache))
    raise _unknown("unknown_column", f"unknown column {name!r}", name, candidates)


def _is_within(node: exp.Expression, ancestor: exp.Expression) -> bool:
    current = node.parent
    while current is not None:
        if current is ancestor:
            return True
        current = current.parent
    return False


def _visible_scopes(scope: Scope):
    """This scope, then the enclosing ones (correlated subqueries see outer columns)."""
    current: Scope | None = scope
    while current is not None:
        yield current
        current = current.parent


def _column_visible(lowered: str, scope: Scope, index: _Index, cache) -> bool:
    for visible in _visible_scopes(scope):
        for _node, source in visible.selected_sources.values():
            outputs = _source_outputs(source, index, cache)
            if outputs is _UNKNOWN or lowered in outputs:
                return True
    return False


def _source_outputs(source, index: _Index, cache: dict[int, set[str] | None]) -> set[str] | None:
    """Lower-case output column names of a FROM source, or None when they cannot be known."""
    key = id(source)
    if key in cache:
        return cache[key]
    cache[key] = _UNKNOWN  # guards recursive CTEs while we compute
    result: set[str] | None
    if isinstance(source, exp.Table):
        alias_columns = _alias_columns(source)
        if alias_columns is not None:
            result = alias_columns
        elif isinstance(source.this, exp.Identifier):
            result = set(index.columns.get(source.name.lower(), {})) or _UNKNOWN
        else:
            result = _UNKNOWN
    elif isinstance(source, Scope):
        result = _scope_outputs(source, index, cache)
    else:
        result = _UNKNOWN
    cache[key] = result
    return result


def _scope_outputs(scope: Scope, index: _Index, cache) -> set[str] | None:
    defining = scope.expression.parent  # the CTE or Subquery that names this scope
    if defining is not None:
        alias_columns = _alias_columns(defining)
        if alias_columns is not None:
            return alias_columns
    expression = scope.expression
    while isinstance(expression, exp.SetOperation):
        expression = expression.this  # a UNION's columns are named by its first branch
    if isinstance(expression, exp.Subquery):
        expression = expression.unnest()
    if not isinstance(expression, exp.Select):
        return _UNKNOWN
    outputs: set[str] = set()
    for projection in expression.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            qualifier = projection.table.lower() if isinstance(projection, exp.Column) else ""
            inner = scope if isinstance(scope.expression, exp.Select) else None
            if inner is None:
                return _UNKNOWN
            for alias, (_node, source) in inner.selected_sources.items():
                if qualifier and alias.lower() != qualifier:
                    continue
                expanded = _source_outputs(source, index, cache)
                if expanded is _UNKNOWN:
                    return _UNKNOWN
                outputs |= expanded
        elif isinstance(projection, (exp.Columns, exp.Unnest)) or projection.find(exp.Columns):
            return _UNKNOWN  # DuckDB COLUMNS(...) names its outputs at run time
        else:
            outputs.add(projection.alias_or_name.lower())
    return outputs


def _alias_columns(node: exp.Expression) -> set[str] | None:
    alias = node.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.columns:
        return {c.name.lower() for c in alias.columns}
    return None


def _display(source, index: _Index, cache) -> list[str]:
    """Column names of a source in their declared spelling, for suggestions."""
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        declared = index.columns.get(source.name.lower())
        if declared:
            return list(declared.values())
    outputs = _source_outputs(source, index, cache)
    return sorted(outputs) if outputs else []


# --------------------------------------------------------------------------------------------
# messages


def _suggest(name: str, candidates: list[str]) -> list[str]:
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
    if not matches:
        # substring matches catch "revenue" for "total_revenue" and vice versa
        matches = [c for c in by_lower if name.lower() in c or (len(c) > 2 and c in name.lower())][:5]
    return [by_lower[m] for m in matches]


def _unknown(code: str, message: str, name: str, candidates: list[str]) -> UnsafeSQL:
    suggestions = _suggest(name, candidates)
    if suggestions:
        message = f"{message}; did you mean {', '.join(suggestions)}?"
    return UnsafeSQL(code, message, suggestions=suggestions)


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return f"{str(node.this).upper()} statement"
    return f"{type(node).__name__.upper()}"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
