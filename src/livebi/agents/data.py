"""The data agent: validates SQL and runs it on a warehouse, reporting progress as it goes.

Every statement, generated or typed by a user, passes :func:`validate_select` first: one
read-only SELECT over tables and columns that exist. Then the warehouse runs it with the
configured timeout and row cap while engine progress (DuckDB's own percent, rows fetched)
flows out through ``report``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable

from ..answer_cache import LRU, ValidatedSQL, describe_tree
from ..warehouse.base import DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_VALUE_CHARS, Progress, QueryResult, Schema, Warehouse
from ..warehouse.bounded import ResultBudget, ResultLimits
from ..warehouse.safety import MAX_SQL_CHARS, MAX_SQL_DEPTH, validate_select

#: report(substage, fraction 0..1 within the stage, details, rows_processed)
StageReport = Callable[[str, float, str, int], None]


def cap_result(result: QueryResult, *, max_bytes: int, max_value_chars: int) -> QueryResult:
    """Bound a result that did not come from a bounded ``Warehouse.execute()`` (a remote
    agent, a test): the same rules the connectors apply while fetching
    (:class:`~livebi.warehouse.bounded.ResultBudget`), applied after the fact."""
    budget = ResultBudget(ResultLimits(row_cap=len(result.rows), max_bytes=max_bytes, max_value_chars=max_value_chars))
    budget.add(result.rows)
    if not budget.truncated:
        return result
    return dataclasses.replace(result, rows=budget.rows, row_count=len(budget.rows), truncated=True)


@dataclasses.dataclass
class DataAgent:
    timeout_s: float
    row_cap: int
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS
    max_sql_chars: int = MAX_SQL_CHARS
    max_sql_depth: int = MAX_SQL_DEPTH
    #: statements whose validation is kept (0: none); see :meth:`check`
    validation_cache_entries: int = 4096

    def __post_init__(self) -> None:
        self.validations: LRU[tuple[str, str, int, int, int, str], tuple[Schema, ValidatedSQL]] = \
            LRU(self.validation_cache_entries)

    async def validate(self, sql: str, warehouse: Warehouse) -> str:
        """Return the normalized SQL or raise ``UnsafeSQL`` (a WarehouseError with suggestions)."""
        return (await self.check(sql, warehouse)).sql

    async def check(self, sql: str, warehouse: Warehouse) -> ValidatedSQL:
        """Validate ``sql``: the normalized SQL, the tables it reads and whether its result may
        be cached. Raises ``UnsafeSQL`` (a WarehouseError with suggestions).

        Validation parses and walks the whole statement (half a second for a large one), so it
        runs in a worker thread: the event loop keeps serving every other connection. Its
        outcome depends only on the text, the dialect (whose function allow-list is fixed), the
        schema checked against and the limits, so a statement that passed is not checked again
        against the same schema object (a schema refresh makes a new one). Refusals are not
        kept: they are cheap to redo and rare.
        """
        schema = await warehouse.schema()
        dialect = warehouse.dialect
        key = (warehouse.name, dialect, id(schema), self.max_sql_chars, self.max_sql_depth, sql)
        known = self.validations.get(key)
        if known is not None and known[0] is schema:  # the entry holds the schema: no id reuse
            return known[1]
        validated = await asyncio.to_thread(self._check, sql, dialect, schema)
        self.validations.put(key, (schema, validated))
        return validated

    def _check(self, sql: str, dialect: str, schema: Schema) -> ValidatedSQL:
        checked: list[Any] = []
        normalized = validate_select(sql, dialect=dialect, schema=schema, inspect=checked.append,
                                     max_chars=self.max_sql_chars, max_depth=self.max_sql_depth)
        return describe_tree(checked[0], normalized)

    async def run(self, sql: str, warehouse: Warehouse, report: StageReport) -> QueryResult:
        """Run validated SQL; ``report`` receives engine progress at least twice a second."""

        def on_progress(p: Progress) -> None:
            if p.percent is not None:
                fraction = max(0.0, min(1.0, p.percent / 100.0))
                details = p.detail or f"Executing SQL… {p.percent:.0f}% done"
            else:
                fraction = -1.0  # unknown: the pipeline keeps the bar where it is
                details = p.detail or f"Executing SQL… {p.rows_processed:,} rows fetched"
            report("sql_execution", fraction, details, p.rows_processed)

        # The warehouse bounds the result while it fetches (bytes, value length, rows): a
        # result is published once, kept in channel history and replayed to reconnecting
        # clients, and must never cost more memory than its bounded size.
        return await warehouse.execute(
            sql,
            timeout=self.timeout_s,
            row_cap=self.row_cap,
            max_bytes=self.max_result_bytes,
            max_value_chars=self.max_value_chars,
            on_progress=on_progress,
        )
