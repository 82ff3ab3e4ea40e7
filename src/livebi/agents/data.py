"""The data agent: validates SQL and runs it on a warehouse, reporting progress as it goes.

Every statement, generated or typed by a user, passes :func:`validate_select` first: one
read-only SELECT over tables and columns that exist. Then the warehouse runs it with the
configured timeout and row cap while engine progress (DuckDB's own percent, rows fetched)
flows out through ``report``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..warehouse.base import Progress, QueryResult, Warehouse
from ..warehouse.safety import validate_select

#: report(substage, fraction 0..1 within the stage, details, rows_processed)
StageReport = Callable[[str, float, str, int], None]


@dataclasses.dataclass
class DataAgent:
    timeout_s: float
    row_cap: int

    async def validate(self, sql: str, warehouse: Warehouse) -> str:
        """Return the normalized SQL or raise ``UnsafeSQL`` (a WarehouseError with suggestions)."""
        schema = await warehouse.schema()
        return validate_select(sql, dialect=warehouse.dialect, schema=schema)

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

        return await warehouse.execute(sql, timeout=self.timeout_s, row_cap=self.row_cap, on_progress=on_progress)
