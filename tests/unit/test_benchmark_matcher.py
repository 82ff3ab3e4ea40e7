"""The NLP benchmarks' execution match (benchmarks/matching.py), on hand-made result pairs.

A matcher that is too strict hides progress and one that is too lenient inflates it; both
would make the accuracy figures of ``nlp_accuracy.py`` and ``spider_open.py`` meaningless.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from matching import norm, norm_rows, same_result  # noqa: E402


def match(got: list[tuple], want: list[tuple], *, ordered: bool = False) -> bool:
    return same_result(norm_rows(got), norm_rows(want), ordered)[0]


GOLD = [("Berlin", 3), ("Paris", 5), ("Rome", 5)]


def test_the_same_rows_match() -> None:
    assert match(GOLD, GOLD)


def test_extra_columns_are_forgiven() -> None:
    got = [(1, "Berlin", 3, 0.2), (2, "Paris", 5, 0.4), (3, "Rome", 5, 0.4)]
    assert match(got, GOLD)


def test_column_order_is_forgiven() -> None:
    assert match([(3, "Berlin"), (5, "Paris"), (5, "Rome")], GOLD)


def test_a_missing_gold_column_fails() -> None:
    ok, why = same_result(norm_rows([("Berlin",), ("Paris",), ("Rome",)]), norm_rows(GOLD), False)
    assert not ok
    assert "no column with the values" in why


def test_values_of_each_column_but_in_other_rows_fail() -> None:
    # each column holds the gold values, but the pairs are wrong: Berlin has 5, not 3
    got = [("Berlin", 5), ("Paris", 3), ("Rome", 5)]
    ok, why = same_result(norm_rows(got), norm_rows(GOLD), False)
    assert not ok
    assert "not in the same rows" in why


def test_row_order_is_ignored_unless_ordered() -> None:
    reversed_rows = list(reversed(GOLD))
    assert match(reversed_rows, GOLD)
    assert not match(reversed_rows, GOLD, ordered=True)
    assert match(GOLD, GOLD, ordered=True)


def test_ordered_with_extra_columns_and_another_column_order() -> None:
    got = [(9, 3, "Berlin"), (8, 5, "Paris"), (7, 5, "Rome")]
    assert match(got, GOLD, ordered=True)
    assert not match(got[::-1], GOLD, ordered=True)


def test_numbers_match_to_six_significant_digits() -> None:
    assert match([(1 / 3,)], [(0.333333,)])
    assert match([(2_000_000.4,)], [(2_000_000,)])
    assert not match([(0.33334,)], [(0.333333,)])
    assert match([(decimal.Decimal("12.50"),)], [(12.5,)])
    assert match([(7,)], [(7.0,)])
    assert match([(True,)], [(1,)])


def test_duplicates_are_counted() -> None:
    assert not match([("a",), ("a",), ("b",)], [("a",), ("b",), ("b",)])
    assert not match([("a",), ("b",)], [("a",), ("a",), ("b",)])
    assert match([("b",), ("a",), ("a",)], [("a",), ("b",), ("a",)])


def test_row_counts_must_agree() -> None:
    ok, why = same_result(norm_rows(GOLD[:2]), norm_rows(GOLD), False)
    assert not ok
    assert why == "2 rows instead of 3"


def test_empty_results() -> None:
    assert match([], [])
    assert not match([("x",)], [])


def test_nulls_compare_equal_and_sort_with_other_values() -> None:
    assert match([(None, 1), ("a", 2)], [("a", 2), (None, 1)])
    assert not match([(None, 1)], [("None", 1)])


def test_identical_gold_columns_may_share_one_answer_column() -> None:
    assert match([(4,)], [(4, 4)])


def test_dates_timestamps_and_text_days_compare_as_days() -> None:
    assert norm(dt.datetime(2024, 1, 1)) == norm(dt.date(2024, 1, 1)) == norm("2024-01-01 00:00:00") == "2024-01-01"
    assert match([(dt.date(2024, 1, 1), 3)], [("2024-01-01", 3)])
    assert norm(dt.datetime(2024, 1, 1, 12, 30)) == "2024-01-01T12:30:00"


def test_text_is_exact() -> None:
    assert not match([("berlin",)], [("Berlin",)])
    assert not match([("3",)], [(3,)])


def test_many_columns_with_the_same_values_are_paired_by_search() -> None:
    # ten gold columns, each a different order of 0..3, so every answer column holds the values
    # of every gold column: only the rows tell them apart. Trying pairings blindly would meet
    # 10**10 of them; the right one must still be found (and a wrong answer still refused).
    columns = list(itertools.permutations(range(4)))[:10]
    want = list(zip(*columns))
    got = [tuple(reversed(row)) for row in reversed(want)]
    assert match(got, want)
    broken = [(*got[0][:-1], got[1][-1]), (*got[1][:-1], got[0][-1]), *got[2:]]
    assert not match(broken, want)


# -- the classes spider_open.py reports accuracy by -----------------------------------------------


@pytest.mark.parametrize(("sql", "shape", "needs", "ordered"), [
    ("SELECT count(*) FROM t", "simple", ("aggregation",), False),
    ("SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 2", "simple", ("aggregation", "group_by", "having"), False),
    ("SELECT DISTINCT a FROM t WHERE b LIKE '%x%' ORDER BY a", "simple", ("like", "distinct"), True),
    ("SELECT t.a FROM t JOIN u ON t.id = u.id ORDER BY u.b DESC LIMIT 1", "join", ("order_limit",), True),
    ("SELECT t.a FROM t, u WHERE t.id = u.id", "join", (), False),
    ("SELECT a FROM t WHERE id NOT IN (SELECT id FROM u)", "nested", ("negation",), False),
    ("SELECT a FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", "nested", ("negation",), False),
    ("SELECT a FROM t WHERE b > (SELECT avg(b) FROM t)", "nested", ("aggregation",), False),
    ("WITH c AS (SELECT a FROM t) SELECT a FROM c", "nested", (), False),
    ("SELECT a FROM t EXCEPT SELECT a FROM u", "set_op", ("negation",), False),
    ("SELECT a FROM t JOIN u ON t.id = u.id UNION SELECT a FROM v", "set_op", (), False),
])
def test_gold_sql_classes(sql: str, shape: str, needs: tuple[str, ...], ordered: bool) -> None:
    from spider_open import GoldClass, classify

    assert classify(sql) == GoldClass(shape, needs, ordered)
