"""The functions a query may call, per dialect: an explicit allow-list.

Every function call in a statement, wherever it hides (a CTE, a subquery, ORDER BY, a window
frame, a lateral join, a VALUES list), must name a function on the target dialect's list:
side-effect-free scalar, aggregate and window functions, and a few table functions that only
generate values. Anything else is refused by :func:`~livebi.warehouse.safety.validate_select`,
however it is spelled. A deny-list cannot be complete: engines ship hundreds of built-ins and
add more each release, and some of them run SQL given as text (PostgreSQL's ``query_to_xml``,
DuckDB's ``query``), read files, write indexes or signal other sessions. An allow-list fails
closed: a harmless function we forgot costs a clear error, not a breach.

Names are matched as the engine would run them: the validator parses with sqlglot's typed
function classes switched off, so ``f(...)`` keeps the name written and the statement that runs
is regenerated with that same name (no sqlglot renaming between check and run). Calls that
only special syntax can express (``CAST(x AS t)``, ``EXTRACT(y FROM d)``, ``CASE``...) are
listed under *syntax*; operators (``||``, ``~``, ``->>``) are not function calls.

``docs/sql-functions.md`` is generated from these lists (``livebi docs functions``); a test
fails when it drifts.
"""

from __future__ import annotations

DIALECTS = ("duckdb", "sqlite", "postgres")

#: Categories in the order the documentation shows them.
CATEGORIES = (
    "math", "string", "date and time", "conditional and conversion", "json, arrays and lists",
    "aggregate", "statistical aggregate", "window", "table", "syntax",
)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- shared by the three engines (SQL standard or near it) ------------------------------------

_MATH = _names("abs ceil ceiling floor round sign sqrt exp ln log log10 log2 mod pi power pow "
               "degrees radians sin cos tan asin acos atan atan2 trunc random")
_STRING = _names("lower upper length replace substr ltrim rtrim trim")
_CONDITIONAL = _names("coalesce nullif")
_AGGREGATE = _names("count sum avg min max")
_WINDOW = _names("row_number rank dense_rank percent_rank cume_dist ntile lag lead "
                 "first_value last_value nth_value")

# -- per engine --------------------------------------------------------------------------------

_DUCKDB = {
    "math": _MATH | _names(
        "cbrt cot even factorial gamma lgamma gcd lcm greatest least isnan isinf isfinite "
        "round_even roundbankers bit_count xor"
    ),
    "string": _STRING | _names(
        "lcase ucase len char_length character_length octet_length strlen concat concat_ws "
        "left right lpad rpad reverse repeat position strpos instr starts_with ends_with "
        "suffix prefix contains split_part string_split str_split string_split_regex "
        "regexp_replace regexp_matches regexp_extract regexp_extract_all regexp_full_match "
        "like_escape ilike_escape translate ascii chr unicode format printf md5 sha1 sha256 hash "
        "levenshtein damerau_levenshtein jaccard jaro_similarity jaro_winkler_similarity "
        "hamming mismatches nfc_normalize strip_accents lower upper to_base "
        "bar formatreadablesize format_bytes"
    ),
    "date and time": _names(
        "date_trunc datetrunc date_part datepart date_diff datediff date_sub datesub date_add "
        "year month day dayofweek dayofyear dayofmonth week weekofyear weekday isodow isoyear "
        "quarter hour minute second millisecond microsecond epoch epoch_ms epoch_us "
        "make_date make_time make_timestamp make_timestamptz strftime strptime try_strptime "
        "to_timestamp today now get_current_timestamp transaction_timestamp last_day "
        "monthname dayname age time_bucket century decade era yearweek julian "
        "to_years to_months to_weeks to_days to_hours to_minutes to_seconds to_milliseconds "
        "to_microseconds timezone current_localtimestamp"
    ),
    "conditional and conversion": _CONDITIONAL | _names(
        "ifnull nvl if greatest least typeof try to_json"
    ),
    "json, arrays and lists": _names(
        "json_extract json_extract_string json_extract_path json_extract_path_text json_value "
        "json_array_length json_type json_valid json_keys json_object json_array json_merge_patch "
        "json_contains json_exists json json_quote "
        "list_value list_pack list_transform apply list_filter filter list_sort array_sort "
        "list_reverse_sort list_contains list_has array_contains list_position list_extract "
        "list_element array_extract list_slice array_slice list_distinct array_distinct "
        "list_unique list_reduce reduce list_aggregate list_aggr aggregate list_concat "
        "array_concat list_cat list_sum list_avg list_min list_max list_count list_first "
        "list_last list_has_any list_has_all array_length len cardinality flatten "
        "array_to_string list_string_agg string_to_array generate_series range "
        "struct_pack struct_extract row map map_keys map_values map_extract element_at "
        "unnest"
    ),
    "aggregate": _AGGREGATE | _names(
        "group_concat string_agg listagg array_agg list count_star bool_and bool_or "
        "bit_and bit_or bit_xor any_value first last arbitrary arg_max arg_min argmax argmin "
        "max_by min_by count_if countif product sumkahan fsum kahan_sum favg histogram "
        "approx_count_distinct sum_no_overflow"
    ),
    "statistical aggregate": _names(
        "stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp "
        "regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy "
        "regr_syy median mode quantile quantile_cont quantile_disc percentile_cont "
        "percentile_disc approx_quantile mad kurtosis kurtosis_pop skewness entropy"
    ),
    "window": _WINDOW | _names("fill"),
    "table": _names("range generate_series unnest"),
    "syntax": _names(
        "cast try_cast extract substring position trim case if array struct map "
        "current_date current_time current_timestamp localtime localtimestamp unnest abs exists columns"
    ),
}

_SQLITE = {
    "math": _MATH | _names("max min acosh asinh atanh cosh sinh tanh"),
    "string": _STRING | _names(
        "instr substring char unicode hex unhex quote printf format concat concat_ws "
        "like glob soundex zeroblob octet_length"
    ),
    "date and time": _names("date time datetime julianday unixepoch strftime timediff"),
    "conditional and conversion": _CONDITIONAL | _names("ifnull iif if typeof likely unlikely likelihood"),
    "json, arrays and lists": _names(
        "json json_extract json_array json_object json_array_length json_type json_valid "
        "json_quote json_insert json_replace json_set json_remove json_patch json_group_array "
        "json_group_object jsonb -> ->>"
    ),
    "aggregate": _AGGREGATE | _names("total group_concat string_agg"),
    "statistical aggregate": frozenset(),
    "window": _WINDOW,
    "table": _names("json_each json_tree generate_series"),
    "syntax": _names(
        "cast extract substring position trim case if exists current_date current_time current_timestamp"
    ),
}

_POSTGRES = {
    "math": (_MATH - {"log2"}) | _names(
        "cbrt cot div factorial gcd lcm greatest least scale trim_scale min_scale width_bucket "
        "sinh cosh tanh asinh acosh atanh"
    ),
    "string": _STRING | _names(
        "char_length character_length octet_length bit_length concat concat_ws left right "
        "lpad rpad btrim reverse repeat strpos position starts_with split_part initcap "
        "regexp_replace regexp_match regexp_like regexp_count regexp_instr regexp_substr "
        "regexp_split_to_array translate ascii chr to_hex md5 sha224 sha256 sha384 sha512 "
        "quote_ident quote_literal quote_nullable unistr normalize format substring overlay"
    ),
    "date and time": _names(
        "date_trunc date_part date_bin age now clock_timestamp statement_timestamp "
        "transaction_timestamp timeofday make_date make_time make_timestamp make_timestamptz "
        "make_interval to_char to_date to_timestamp to_number justify_days justify_hours "
        "justify_interval isfinite date_add date_subtract timezone"
    ),
    "conditional and conversion": _CONDITIONAL | _names("num_nonnulls num_nulls"),
    "json, arrays and lists": _names(
        "to_json to_jsonb json_build_object jsonb_build_object json_build_array "
        "jsonb_build_array json_object jsonb_object json_array_length jsonb_array_length "
        "json_typeof jsonb_typeof json_extract_path json_extract_path_text jsonb_extract_path "
        "jsonb_extract_path_text jsonb_pretty json_strip_nulls jsonb_strip_nulls "
        "array_length array_lower array_upper array_ndims array_dims cardinality "
        "array_position array_positions array_to_string string_to_array array_append "
        "array_prepend array_cat array_remove array_replace"
    ),
    "aggregate": _AGGREGATE | _names(
        "string_agg array_agg json_agg jsonb_agg json_object_agg jsonb_object_agg bool_and "
        "bool_or every bit_and bit_or bit_xor any_value"
    ),
    "statistical aggregate": _names(
        "stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp "
        "regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy "
        "regr_syy mode percentile_cont percentile_disc"
    ),
    "window": _WINDOW,
    "table": _names(
        "generate_series generate_subscripts unnest json_each json_each_text jsonb_each "
        "jsonb_each_text json_array_elements json_array_elements_text jsonb_array_elements "
        "jsonb_array_elements_text json_object_keys jsonb_object_keys regexp_split_to_table "
        "regexp_matches"
    ),
    "syntax": _names(
        "cast extract substring position trim overlay case if array current_date current_time "
        "current_timestamp localtime localtimestamp unnest exists"
    ),
}

#: dialect -> category -> names (lower case)
ALLOWED: dict[str, dict[str, frozenset[str]]] = {"duckdb": _DUCKDB, "sqlite": _SQLITE, "postgres": _POSTGRES}

_TABLE_POSITION_ONLY = {d: lists["table"] for d, lists in ALLOWED.items()}
_ANYWHERE = {d: frozenset().union(*lists.values()) for d, lists in ALLOWED.items()}


def _dialect(dialect: str) -> str:
    key = (dialect or "").lower()
    if key not in ALLOWED:
        raise ValueError(f"no function allow-list for dialect {dialect!r}: expected one of {', '.join(DIALECTS)}")
    return key


def is_allowed_function(dialect: str, name: str) -> bool:
    """True when ``name`` (any case) is on ``dialect``'s allow-list, in any category.

    Meant for engine-side checks too (an SQLite authorizer sees every function a statement
    calls, including ``like`` for ``LIKE`` and ``->`` for the JSON operator).
    """
    return name.lower() in _ANYWHERE[_dialect(dialect)]


def is_allowed_table_function(dialect: str, name: str) -> bool:
    """True when ``name`` may stand in a FROM clause (it only generates values)."""
    return name.lower() in _TABLE_POSITION_ONLY[_dialect(dialect)]


def functions_markdown() -> str:
    """``docs/sql-functions.md``: every allowed function, per dialect and category."""
    lines = [
        "# SQL functions a query may call",
        "",
        "Generated from `src/livebi/warehouse/functions.py` by `livebi docs functions`; do not edit.",
        "",
        "Every statement (typed by a user, generated by the parser or written by an LLM) is checked",
        "before it runs. A function call must name a function on the list of the warehouse's",
        "dialect, wherever it appears; anything else is refused with `forbidden_sql`, e.g.",
        "`function query_to_xml() is not allowed (not on the postgres allow-list: docs/sql-functions.md)`.",
        "Schema-qualified calls (`pg_catalog.lower(x)`) and DuckDB's method syntax (`x.upper()`)",
        "are refused: call the function by its plain name. Table functions (in a FROM clause) must",
        "be in the *table* category. Operators (`||`, `~`, `->>`, `@>`) are not function calls.",
        "",
        "A function missing here that is side-effect free can be added to the list: open an issue.",
        "",
    ]
    for dialect in DIALECTS:
        lines += [f"## {dialect}", ""]
        for category in CATEGORIES:
            names = sorted(ALLOWED[dialect][category])
            if names:
                lines += [f"**{category}**: " + ", ".join(f"`{n}`" for n in names), ""]
    return "\n".join(lines).rstrip() + "\n"
