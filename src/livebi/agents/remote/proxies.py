"""Stand-ins for the in-process agents that call a remote agent through an :class:`AgentPool`.

Each keeps the interface the pipeline already uses, so :class:`~livebi.pipeline.Pipeline`
does not know where an agent runs:

* :class:`RemoteDataAgent` validates locally as the in-process agent does (the server's own
  refusal, before any call), runs the query remotely (where it is validated again), and bounds
  what comes back by this server's row_cap, max_result_bytes and max_value_chars.
* :class:`RemoteNLPAgent` keeps the semantic model locally (example questions, schema checks)
  and parses remotely (``answer``, ``repair``).
* :class:`RemoteVizAgent` builds charts remotely.

Everything else is delegated to the local agent object.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable

from ...warehouse.base import QueryResult, Warehouse
from ..data import DataAgent, StageReport, cap_result
from ..viz import Chart, ChartHint
from ...pipeline import small_result
from .pool import AgentPool
from .wire import chart_from_json, parsed_from_json, result_from_json, result_to_json


class _Delegating:
    """Everything not overridden is the local agent's (validate, row_cap, model_for...)."""

    def __init__(self, local: Any, pool: AgentPool) -> None:
        self._local = local
        self.pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._local, name)


class RemoteDataAgent(_Delegating):
    _local: DataAgent

    async def run(self, sql: str, warehouse: Warehouse, report: StageReport) -> QueryResult:
        data = await self.pool.call("run", {"warehouse": warehouse.name, "sql": sql}, report)
        data = data if isinstance(data, dict) else {}
        rows = data.get("rows")
        if isinstance(rows, list) and not small_result(len(rows), len(data.get("columns") or [])):
            return await asyncio.to_thread(self._bounded, data)  # walking every value: off the loop
        return self._bounded(data)

    def _bounded(self, data: dict[str, Any]) -> QueryResult:
        """The agent's result, bounded again by this server's own caps."""
        result = result_from_json(data)
        local = self._local
        if result.row_count > local.row_cap:
            result = dataclasses.replace(result, rows=result.rows[: local.row_cap], row_count=local.row_cap, truncated=True)
        return cap_result(result, max_bytes=local.max_result_bytes, max_value_chars=local.max_value_chars)


class RemoteNLPAgent(_Delegating):

    async def answer(self, question: str, model: Any, warehouse: Warehouse,
                     on_substage: Callable[..., None] | None = None) -> Any:
        data = await self.pool.call("answer", {"warehouse": warehouse.name, "question": question}, on_substage)
        return parsed_from_json(data if isinstance(data, dict) else {})

    async def repair(self, question: str, parsed: Any, message: str, model: Any, warehouse: Warehouse,
                     on_substage: Callable[..., None] | None = None) -> Any:
        data = await self.pool.call("repair", {"warehouse": warehouse.name, "question": question,
                                               "parsed": parsed.to_dict(), "message": message}, on_substage)
        return parsed_from_json(data if isinstance(data, dict) else {})


class RemoteVizAgent:
    """The pipeline's ``viz`` seam: ``await chart(question, result, hint, requested=...)``."""

    def __init__(self, pool: AgentPool) -> None:
        self.pool = pool

    async def chart(self, question: str, result: QueryResult, hint: ChartHint, *, requested: str | None = None) -> Chart:
        data = await self.pool.call("chart", {"question": question, "result": result_to_json(result),
                                              "hint": dataclasses.asdict(hint), "requested": requested})
        return chart_from_json(data if isinstance(data, dict) else {})
