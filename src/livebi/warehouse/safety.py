"""Validate generated or user-written SQL before it reaches a warehouse.

Every query the data agent runs passes :func:`validate_select` first. It accepts exactly one
read-only query and rejects, with a protocol error code:

- ``invalid_sql``: the text does not parse in the warehouse's dialect, or is longer or nests
  deeper than the limits (``max_sql_chars``, ``max_sql_depth``; checked before parsing, so a
  hostile statement costs a scan, not a recursion error);
- ``multiple_statements``: more than one statement (``SELECT 1; DROP TABLE t``);
- ``forbidden_sql``: anything that is not a pure query or that could write, change settings or
  reach outside the warehouse, wherever it hides in the tree (a ``DELETE`` inside a CTE,
  ``SELECT ... INTO``, ``FOR UPDATE``, ``PRAGMA``, ``ATTACH``, DuckDB's ``FROM 'file.csv'``),
  and every function call not on the dialect's allow-list (:mod:`livebi.warehouse.functions`):
  functions are allowed by name, never denied by pattern, because engines ship built-ins that
  run SQL given as text (``query_to_xml``), write indexes or signal other sessions;
- ``unknown_table`` / ``unknown_column``: a name the schema does not have, with "did you mean"
  suggestions (close matches by spelling) in :attr:`UnsafeSQL.suggestions`.

Table names resolve fully. ``[catalog.][schema.]table`` must name the warehouse's own database
(or none), a schema it exposes (:attr:`Schema.schemas`; system schemas never) and a table that
exists there; an unqualified name resolves through the exposed schemas in order, as the engine
does (PostgreSQL's ``search_path`` is pinned to the same list). The returned SQL qualifies any
table that resolved outside the engine's default schema, so what runs is what was checked.

Function names are checked as the engine will run them: the statement is parsed with sqlglot's
typed function classes switched off (``f(x)`` stays ``f`` as written, never renamed by a
transpilation rule) and regenerated the same way.

The connectors add defense in depth (read-only connections and transactions, DuckDB without
external access), so validation is the first wall, not the only one.

Name checks of tables and columns are case-insensitive and deliberately lenient where the
schema cannot tell (struct field access, table functions without column lists, engine
pseudo-columns): a false "unknown column" would block a valid question, while a real mistake
still fails in the engine. Schema and catalog names are compared the way the engine folds them
(PostgreSQL: quoted names exactly), because there a near miss would read another namespace.
"""

from __future__ import annotations

import difflib
import functools
import re
import weakref
from dataclasses import dataclass, field
from typing import Callable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from livebi.warehouse import functions
from livebi.warehouse.base import DEFAULT_SCHEMAS, SYSTEM_SCHEMAS, Schema, Table, WarehouseError

#: Defaults of the ``max_sql_chars`` and ``max_sql_depth`` settings.
MAX_SQL_CHARS = 100_000
MAX_SQL_DEPTH = 100
#: Name resolution (sqlglot's scopes, ours) walks from each column up to its query, so its cost
#: is the sum of the columns' depths in the tree: quadratic in a chain like ``a OR b OR c ...``
#: (each operator is one level, no bracket shows it). About a second of CPU at most.
MAX_RESOLUTION_STEPS = 1_000_000


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
    "Operator",  # OPERATOR(schema.op): an operator from any schema, i.e. any function behind it
)
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name) for name in _FORBIDDEN_NODE_NAMES if isinstance(getattr(exp, name, None), type)
)

# Calls that only special syntax can express keep sqlglot's parser for that syntax; their
# node classes map to the name listed under "syntax" in the allow-lists. Every other call
# parses as exp.Anonymous with the name written.
_SYNTAX_PARSERS = frozenset({"CAST", "TRY_CAST", "EXTRACT", "SUBSTRING", "POSITION", "TRIM", "OVERLAY"})
_SYNTAX_NAMES: dict[type[exp.Expression], str] = {
    cls: name
    for cls_name, name in (
        ("Cast", "cast"), ("TryCast", "try_cast"), ("Extract", "extract"), ("Substring", "substring"),
        ("StrPosition", "position"), ("Trim", "trim"), ("Overlay", "overlay"), ("Case", "case"),
        ("If", "if"), ("Array", "array"), ("Struct", "struct"), ("Map", "map"), ("ToMap", "map"),
        ("VarMap", "map"), ("CurrentDate", "current_date"), ("CurrentTime", "current_time"),
        ("CurrentTimestamp", "current_timestamp"), ("Localtime", "localtime"),
        ("Localtimestamp", "localtimestamp"), ("Unnest", "unnest"), ("Abs", "abs"), ("Exists", "exists"),
        ("Sqrt", "sqrt"), ("StartsWith", "starts_with"),
    )
    if isinstance(cls := getattr(exp, cls_name, None), type)
}

# Columns every row has without the schema listing them.
_PSEUDO_COLUMNS = frozenset(
    {"rowid", "_rowid_", "oid", "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"}
)

# PostgreSQL's object identifier types: casting a number or a name to one looks the object up
# in the catalogues without any privilege check (``g::regclass`` over generate_series lists
# every table of every schema, ``::regrole`` every role), whatever the role may read.
_CATALOGUE_TYPES = frozenset({
    "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
    "regoperator", "regproc", "regprocedure", "regrole", "regtype",
})

# Keywords that read as a bare name but are calls of a session function (PostgreSQL's
# ``user`` is ``current_user``, even over a table that has a ``user`` column); quoted, they are
# ordinary names.
_SESSION_KEYWORDS = {
    "postgres": frozenset({"user", "current_user", "current_role", "session_user", "system_user",
                           "current_catalog", "current_schema"}),
    "duckdb": frozenset({"current_schema"}),  # sqlglot quotes the others: then they are names
}

# A quoted "table" that is really a file path or URL (DuckDB's replacement scans read those).
_PATH_LIKE = re.compile(r"[/\\*?]|://|\.(csv|tsv|parquet|json|jsonl|ndjson|txt|xlsx?|arrow|db|sqlite|duckdb|gz|zst)$", re.I)


def validate_select(
    sql: str,
    *,
    dialect: str,
    schema: Schema,
    max_chars: int = MAX_SQL_CHARS,
    max_depth: int = MAX_SQL_DEPTH,
    inspect: Callable[[exp.Expression], None] | None = None,
) -> str:
    """Check that ``sql`` is one safe read-only query over ``schema``; return it normalised.

    CPU-bound (about a millisecond per kilobyte): call it from a worker thread in async code.

    Args:
        sql: the query text.
        dialect: the sqlglot dialect of the target warehouse (``duckdb``, ``sqlite``, ``postgres``).
        schema: what the warehouse exposes; every table and column named must exist in it.
        max_chars: longest statement accepted.
        max_depth: deepest nesting of brackets accepted (checked before parsing).
        inspect: called with the checked tree (functions as written, ``exp.Anonymous``) before
            it is regenerated, for callers that need more from it than the text (the tables
            it reads); it must not change the tree.

    Returns:
        The query regenerated by sqlglot in ``dialect``, without comments, with tables that
        resolved outside the engine's default schema qualified.

    Raises:
        UnsafeSQL: with ``code`` one of ``invalid_sql``, ``multiple_statements``,
            ``forbidden_sql``, ``unknown_table``, ``unknown_column``.
    """
    if not sql or not sql.strip():
        raise UnsafeSQL("invalid_sql", "the SQL is empty")
    if len(sql) > max_chars:
        raise UnsafeSQL(
            "invalid_sql", f"the SQL is {len(sql):,} characters long; at most {max_chars:,} are accepted (max_sql_chars)"
        )
    if nesting_depth(sql, stop_above=max_depth) > max_depth:
        raise UnsafeSQL(
            "invalid_sql", f"the SQL nests brackets more than {max_depth} levels deep (max_sql_depth)"
        )
    try:
        return _validate(sql, dialect, schema, inspect)
    except RecursionError:
        # Last line: nesting without brackets (a long chain of NOT or unary minus) can still
        # exhaust the parser's recursion; that is bad input, not a server error.
        raise UnsafeSQL("invalid_sql", "the SQL nests too deeply to check (max_sql_depth)") from None


def _validate(sql: str, dialect: str, schema: Schema, inspect: Callable[[exp.Expression], None] | None) -> str:
    try:
        statements = [s for s in sqlglot.parse(sql, read=_as_written(dialect)) if s is not None]
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
    _check_complexity(root)

    check = _Check(_index_for(schema, dialect), dialect, {cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)})
    _check_nodes(root, check)
    _check_columns(root, check)
    _qualify(check)
    if inspect is not None:
        inspect(root)
    try:
        # normalize_functions=False: the names that run are the names that were checked;
        # copy=False: the tree is ours and dropped here (copying it was 15 % of validation)
        return root.sql(dialect=dialect, comments=False, normalize_functions=False, copy=False)
    except SqlglotError as exc:  # pragma: no cover - parsed trees regenerate
        raise UnsafeSQL("invalid_sql", f"the SQL cannot be regenerated: {_first_line(exc)}") from None


@functools.cache
def _as_written(dialect: str) -> type[Dialect]:
    """``dialect`` whose parser keeps every function call as written (exp.Anonymous)."""
    base = type(Dialect.get_or_raise(dialect))

    class Parser(base.parser_class):  # type: ignore[name-defined, misc]
        FUNCTIONS: dict = {}
        FUNCTION_PARSERS = {k: v for k, v in base.parser_class.FUNCTION_PARSERS.items() if k in _SYNTAX_PARSERS}

    return type(f"LivebiAsWritten{base.__name__}", (base,), {"Parser": Parser})


def _check_complexity(root: exp.Expression) -> None:
    """Refuse a tree whose name resolution would cost more than MAX_RESOLUTION_STEPS
    (one iterative pass, so a 50,000-term chain is refused in milliseconds, not minutes)."""
    steps = deepest = 0
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, exp.Column):
            steps += depth
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    if steps > MAX_RESOLUTION_STEPS:
        raise UnsafeSQL(
            "invalid_sql",
            f"the SQL is too complex to check: its expressions nest {deepest} levels deep; "
            "shorten long chains of AND/OR or + (e.g. use IN (...)) or split the query",
        )


# --------------------------------------------------------------------------------------------
# limits checked before parsing

_DOLLAR_TAG = re.compile(r"\$[A-Za-z_0-9]*\$")


def nesting_depth(sql: str, *, stop_above: int | None = None) -> int:
    """Deepest nesting of ``( [ {`` outside string literals, quoted names and comments.

    A linear scan, so that a statement nested thousands of levels deep is refused before the
    (recursive) parser sees it. ``stop_above``: return as soon as the depth passes it.
    """
    depth = deepest = 0
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "([{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch in "'\"`":
            escapes = ch == "'" and i > 0 and sql[i - 1] in "eE"  # PostgreSQL E'...\'...'
            i += 1
            while i < n:
                if escapes and sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == ch:
                    if i + 1 < n and sql[i + 1] == ch:  # doubled quote inside the literal
                        i += 2
                        continue
                    break
                i += 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif ch == "$":
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:  # PostgreSQL $tag$...$tag$ string
                end = sql.find(tag.group(), tag.end())
                i = n if end < 0 else end + len(tag.group()) - 1
        i += 1
    return deepest


# --------------------------------------------------------------------------------------------
# schema index (built once per Schema object and dialect: validation runs on every query)


@dataclass
class _Index:
    schema: Schema
    exposed: dict[str, str]  # folded schema name -> declared name, in resolution order
    default: str  # declared name of the engine's default schema for unqualified names
    catalog: str  # folded catalog name, "" when unknown
    visible: dict[str, Table] = field(default_factory=dict)  # lower name -> table
    qualified: dict[tuple[str, str], Table] = field(default_factory=dict)  # (folded schema, lower name)
    columns: dict[int, dict[str, str]] = field(default_factory=dict)  # id(table) -> lower col -> col

    def schema_of(self, table: Table) -> str:
        return table.schema or next(iter(self.exposed.values()))


_indexes: dict[tuple[int, str], tuple[weakref.ref, _Index]] = {}


def _fold(name: str, dialect: str, *, quoted: bool = False) -> str:
    """A schema or catalog name as the engine compares it: PostgreSQL folds unquoted names to
    lower case and keeps quoted ones; DuckDB and SQLite ignore case."""
    if dialect == "postgres" and quoted:
        return name
    return name.lower()


def _index_for(schema: Schema, dialect: str) -> _Index:
    key = (id(schema), dialect)
    entry = _indexes.get(key)
    if entry is not None and entry[0]() is schema:
        return entry[1]
    # Declared names (from the catalogue or the configuration) are exact: fold them as if quoted.
    declared = schema.schemas or DEFAULT_SCHEMAS.get(dialect, ("main",))
    exposed = {
        _fold(name, dialect, quoted=True): name for name in declared if name.lower() not in SYSTEM_SCHEMAS
    }
    default = declared[0] if dialect == "postgres" else "main"  # PostgreSQL: search_path is pinned
    index = _Index(schema, exposed, default, _fold(schema.catalog, dialect, quoted=True) if schema.catalog else "")
    for table in schema.tables:
        index.visible.setdefault(table.name.lower(), table)
    for table in (*schema.tables, *schema.shadowed):
        folded = _fold(index.schema_of(table), dialect, quoted=True)
        index.qualified.setdefault((folded, table.name.lower()), table)
        index.columns[id(table)] = {c.name.lower(): c.name for c in table.columns}
    # the dict is bound as a default: at interpreter exit the module global may already be None
    _indexes[key] = (weakref.ref(schema, lambda _ref, key=key, cache=_indexes: cache.pop(key, None)), index)
    return index


@dataclass
class _Check:
    """One validation: the index, the dialect, the CTE names, and where each table resolved."""

    index: _Index
    dialect: str
    cte_names: set[str]
    resolved: dict[int, tuple[exp.Table, Table]] = field(default_factory=dict)  # id(node) -> (node, table)

    def columns_of(self, node: exp.Table) -> dict[str, str] | None:
        found = self.resolved.get(id(node))
        return self.index.columns.get(id(found[1])) if found else None


# --------------------------------------------------------------------------------------------
# forbidden constructs, functions and table names


def _check_nodes(root: exp.Expression, check: _Check) -> None:
    for node in root.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeSQL("forbidden_sql", f"{_describe(node)} is not allowed in a read-only query")
        if isinstance(node, exp.Func):
            _check_function(node, check.dialect)
        elif isinstance(node, exp.Table):
            _check_table(node, check)
        elif isinstance(node, exp.DataType):
            _check_type(node, check.dialect)
        elif isinstance(node, exp.Column):
            _check_session_keyword(node, check.dialect)


def _check_type(node: exp.DataType, dialect: str) -> None:
    """Refuse a cast to a type that reads the catalogues (``x::regclass``, ``x::pg_catalog.regrole``)."""
    kind = node.args.get("kind")  # a user-defined or qualified type: a name, maybe schema.name
    name = kind.sql(dialect=dialect) if isinstance(kind, exp.Expression) else str(kind or getattr(node.this, "value", node.this))
    if name.rsplit(".", 1)[-1].strip('"').lower() in _CATALOGUE_TYPES:
        raise UnsafeSQL(
            "forbidden_sql",
            f"casting to {node.sql(dialect=dialect)} is not allowed: it looks objects up in the system catalogues",
        )


def _check_session_keyword(node: exp.Column, dialect: str) -> None:
    """Refuse ``user``, ``current_role``... written as a bare, unquoted name: the engine runs
    them as session functions, which the allow-list does not admit."""
    identifier = node.this
    if (
        node.table == ""
        and isinstance(identifier, exp.Identifier)
        and not identifier.quoted
        and identifier.name.lower() in _SESSION_KEYWORDS.get(dialect, ())
    ):
        raise UnsafeSQL(
            "forbidden_sql", f"{identifier.name} is not allowed: it reads the session (not on the {dialect} allow-list)"
        )


def _check_function(node: exp.Func, dialect: str) -> None:
    parent = node.parent
    if isinstance(parent, exp.Dot) and node is parent.expression:
        # pg_catalog.f(), public.f() (a user function named like a built-in) or DuckDB's
        # x.f() method syntax: the plain name is the only one we can vouch for.
        raise UnsafeSQL(
            "forbidden_sql",
            f"qualified function call {parent.this.sql(dialect=dialect)}.{_function_name(node)}() is not allowed: "
            "call the function by its plain name",
        )
    if isinstance(node, (exp.Binary, exp.Unary)) and not isinstance(node, exp.Anonymous):
        return  # an operator (||, ~, ->>, @>): no function name of the user's choosing
    name = _function_name(node)
    if isinstance(parent, (exp.Table, exp.Lateral)) and node is parent.this:
        if parent.args.get("db") is not None or parent.args.get("catalog") is not None:
            raise UnsafeSQL(
                "forbidden_sql",
                f"qualified table function {parent.sql(dialect=dialect)} is not allowed: call {name}() by its plain name",
            )
        if not functions.is_allowed_table_function(dialect, name):
            raise UnsafeSQL(
                "forbidden_sql",
                f"table function {name}() is not allowed (not on the {dialect} allow-list of table functions: "
                "docs/sql-functions.md)",
            )
        return
    if not functions.is_allowed_function(dialect, name) or _quoted_off_case(node):
        raise UnsafeSQL(
            "forbidden_sql", f"function {name}() is not allowed (not on the {dialect} allow-list: docs/sql-functions.md)"
        )


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        this = node.this
        return this.name if isinstance(this, exp.Identifier) else str(this)
    known = _SYNTAX_NAMES.get(type(node))
    if known:
        return known
    names = type(node).sql_names()
    return (names[0] if names else type(node).__name__).lower()


def _quoted_off_case(node: exp.Func) -> bool:
    """A quoted function name that is not all lower case: PostgreSQL looks it up exactly, so
    ``"LOWER"(x)`` is not ``lower`` but whatever function carries that name."""
    this = node.this if isinstance(node, exp.Anonymous) else None
    return isinstance(this, exp.Identifier) and this.quoted and this.name != this.name.lower()


def _check_table(node: exp.Table, check: _Check) -> None:
    target = node.this
    if isinstance(target, exp.Func):
        return  # a table function: checked as a function (table position)
    if not isinstance(target, exp.Identifier):
        if isinstance(target, exp.Literal) or target is None:
            raise UnsafeSQL("forbidden_sql", "reading from a file or literal is not allowed")
        raise UnsafeSQL("forbidden_sql", f"unsupported table reference {node.sql(dialect=check.dialect)}")
    table = _resolve(node, check)
    if table is not None:
        check.resolved[id(node)] = (node, table)


def _resolve(node: exp.Table, check: _Check) -> Table | None:
    """The table ``[catalog.][schema.]name`` names, or None for a CTE; raises when it is not
    one the warehouse exposes."""
    index, dialect = check.index, check.dialect
    name = node.name
    lowered = name.lower()
    catalog = node.args.get("catalog")
    db = node.args.get("db")
    shown = ".".join(p.name for p in (catalog, db, node.this) if isinstance(p, exp.Identifier))
    if isinstance(catalog, exp.Identifier):
        if dialect == "sqlite" or not index.catalog or _fold(catalog.name, dialect, quoted=catalog.quoted) != index.catalog:
            raise UnsafeSQL(
                "unknown_table", f"table {shown} is not available: {catalog.name!r} is not this warehouse's database"
            )
    elif catalog is not None:
        raise UnsafeSQL("forbidden_sql", f"unsupported table reference {node.sql(dialect=dialect)}")
    if isinstance(db, exp.Identifier):
        if db.name.lower() in SYSTEM_SCHEMAS or db.name.lower().startswith(("pg_temp", "pg_toast")):
            raise UnsafeSQL("unknown_table", f"system table {shown} is not available to queries")
        folded = _fold(db.name, dialect, quoted=db.quoted)
        if folded not in index.exposed:
            raise _unknown(
                "unknown_table",
                f"table {shown} is not available: schema {db.name!r} is not exposed by this warehouse "
                "(warehouse_schemas)",
                db.name,
                list(index.exposed.values()),
            )
        table = index.qualified.get((folded, lowered))
        if table is None:
            in_schema = [t.name for (s, _), t in index.qualified.items() if s == folded]
            raise _unknown("unknown_table", f"unknown table {shown!r}", name, in_schema)
        return table
    elif db is not None:
        raise UnsafeSQL("forbidden_sql", f"unsupported table reference {node.sql(dialect=dialect)}")
    if lowered in check.cte_names:
        return None
    table = index.visible.get(lowered)
    if table is not None:
        return table
    if _PATH_LIKE.search(name):
        raise UnsafeSQL("forbidden_sql", f"reading files or URLs ({name!r}) is not allowed")
    raise _unknown(
        "unknown_table", f"unknown table {name!r}", name, [*(t.name for t in index.visible.values()), *sorted(check.cte_names)]
    )


def _qualify(check: _Check) -> None:
    """Qualify tables the engine could otherwise resolve elsewhere than the check did.

    An unqualified name that resolved outside the engine's default schema gets its schema;
    on PostgreSQL so does a ``pg_*`` name (``pg_catalog`` is searched before the search_path);
    on DuckDB every qualified name gets the catalog too, since ``x.t`` may otherwise name a
    catalog ``x``.
    """
    index, dialect = check.index, check.dialect
    for node, table in check.resolved.values():
        schema_name = index.schema_of(table)
        unqualified = node.args.get("db") is None
        needs_schema = unqualified and (
            _fold(schema_name, dialect, quoted=True) != _fold(index.default, dialect, quoted=True)
            or (dialect == "postgres" and table.name.lower().startswith("pg_"))
        )
        if needs_schema:
            node.set("db", exp.Identifier(this=schema_name, quoted=True))
        if dialect == "duckdb" and index.schema.catalog and node.args.get("db") is not None and node.args.get("catalog") is None:
            node.set("catalog", exp.Identifier(this=index.schema.catalog, quoted=True))


# --------------------------------------------------------------------------------------------
# column resolution


_UNKNOWN = None  # a source whose output columns we cannot know (table function without list)


def _check_columns(root: exp.Query, check: _Check) -> None:
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
                _check_column(column, scope, check, outputs_cache)
        if isinstance(scope.expression, exp.Select):
            for projection in scope.expression.expressions:  # t.* is not among scope.columns
                if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                    _check_column(projection, scope, check, outputs_cache)


def _check_column(column: exp.Column, scope: Scope, check: _Check, cache: dict[int, set[str] | None]) -> None:
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
                outputs = _source_outputs(source, check, cache)
                if outputs is _UNKNOWN or lowered in outputs or lowered in _PSEUDO_COLUMNS:
                    return
                raise _unknown(
                    "unknown_column", f"unknown column {qualifier}.{name}", name, _display(source, check, cache)
                )
        # Not a table alias: DuckDB/PostgreSQL struct field access (``address.city``) when
        # the qualifier is itself a column; otherwise an unknown table alias.
        if column.args.get("db") is None and _column_visible(q, scope, check, cache):
            return
        aliases = sorted({a for s in _visible_scopes(scope) for a in s.sources})
        raise _unknown("unknown_table", f"unknown table or alias {qualifier!r} in {qualifier}.{name}", qualifier, aliases)
    if is_star or lowered in _PSEUDO_COLUMNS:
        return
    if _column_visible(lowered, scope, check, cache):
        return
    if isinstance(scope.expression, exp.SetOperation):
        # ORDER BY of a UNION names the union's output columns.
        outputs = _scope_outputs(scope, check, cache)
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
            candidates.extend(_display(source[1], check, cache))
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


def _column_visible(lowered: str, scope: Scope, check: _Check, cache) -> bool:
    for visible in _visible_scopes(scope):
        for _node, source in visible.selected_sources.values():
            outputs = _source_outputs(source, check, cache)
            if outputs is _UNKNOWN or lowered in outputs:
                return True
    return False


def _source_outputs(source, check: _Check, cache: dict[int, set[str] | None]) -> set[str] | None:
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
            result = set(check.columns_of(source) or ()) or _UNKNOWN
        else:
            result = _UNKNOWN
    elif isinstance(source, Scope):
        result = _scope_outputs(source, check, cache)
    else:
        result = _UNKNOWN
    cache[key] = result
    return result


def _scope_outputs(scope: Scope, check: _Check, cache) -> set[str] | None:
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
                expanded = _source_outputs(source, check, cache)
                if expanded is _UNKNOWN:
                    return _UNKNOWN
                outputs |= expanded
        elif isinstance(projection, (exp.Columns, exp.Unnest)) or any(_is_columns(n) for n in projection.walk()):
            return _UNKNOWN  # DuckDB COLUMNS(...) names its outputs at run time
        else:
            outputs.add(projection.alias_or_name.lower())
    return outputs


def _is_columns(node: exp.Expression) -> bool:
    """DuckDB's COLUMNS(...) star expression (parsed as written: an anonymous call)."""
    return isinstance(node, exp.Columns) or (isinstance(node, exp.Anonymous) and node.name.lower() == "columns")


def _alias_columns(node: exp.Expression) -> set[str] | None:
    alias = node.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.columns:
        return {c.name.lower() for c in alias.columns}
    return None


def _display(source, check: _Check, cache) -> list[str]:
    """Column names of a source in their declared spelling, for suggestions."""
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        declared = check.columns_of(source)
        if declared:
            return list(declared.values())
    outputs = _source_outputs(source, check, cache)
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
