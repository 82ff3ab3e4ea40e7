"""Small results are charted (and copied for the store) on the event loop, large ones in a
worker thread; both paths give the chart the viz agent chooses."""

from __future__ import annotations

from livebi.agents.data import DataAgent
from livebi.agents.nlp import NLPAgent
from livebi.agents.viz import ChartHint, choose_chart
from livebi.pipeline import INLINE_CELLS, AskRequest, Pipeline, small_result
from livebi.warehouse.base import QueryResult
from livebi.warehouse.sqlite import SQLiteWarehouse


def result(rows: int) -> QueryResult:
    return QueryResult(
        columns=["month", "revenue"], column_kinds=["date", "number"],
        rows=[[f"2024-{1 + i % 12:02d}-01", float(i)] for i in range(rows)], row_count=rows, truncated=False, elapsed_ms=1.0,
    )


def test_the_threshold_counts_cells() -> None:
    assert small_result(INLINE_CELLS // 5, 5)
    assert not small_result(INLINE_CELLS // 5 + 1, 5)
    assert small_result(0, 0)


async def test_small_and_large_results_get_the_same_chart_as_the_viz_agent_picks(tmp_path) -> None:
    wh = SQLiteWarehouse("w", f"sqlite:///{tmp_path / 'w.db'}", read_only=False)
    pipeline = Pipeline(warehouses={"w": wh}, nlp=NLPAgent(), data=DataAgent(timeout_s=5, row_cap=10_000))
    try:
        for rows in (12, INLINE_CELLS):  # 24 cells, then twice the threshold
            res = result(rows)
            chart, warnings = await pipeline.visualize(
                "q", AskRequest(question="revenue by month"), res, None,
            )
            expected = choose_chart("revenue by month", res, ChartHint(), requested=None)
            assert (chart.type, warnings) == (expected.type, [])
            assert chart.to_dict() == expected.to_dict()
    finally:
        await wh.close()
