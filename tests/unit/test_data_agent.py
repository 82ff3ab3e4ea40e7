from livebi.agents.data import cap_result
from livebi.warehouse.base import QueryResult


def result(rows):
    return QueryResult(columns=["a", "b"], column_kinds=["text", "number"], rows=rows, row_count=len(rows), truncated=False, elapsed_ms=1)


def test_small_results_pass_untouched() -> None:
    r = result([["x", 1], ["y", 2]])
    assert cap_result(r, max_bytes=10_000, max_value_chars=100) is r


def test_long_values_are_cut_and_flagged() -> None:
    r = cap_result(result([["x" * 500, 1]]), max_bytes=10_000, max_value_chars=100)
    assert r.rows[0][0] == "x" * 100 + "…" and r.truncated and r.row_count == 1


def test_rows_past_the_byte_budget_are_dropped() -> None:
    r = cap_result(result([["x" * 90, i] for i in range(100)]), max_bytes=1_000, max_value_chars=1_000)
    assert 0 < len(r.rows) < 100 and r.row_count == len(r.rows) and r.truncated
    assert [row[1] for row in r.rows] == list(range(len(r.rows))), "the first rows are kept, in order"
