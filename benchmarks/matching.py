"""Execution match for the NLP benchmarks: does an answer return the gold result?

Lenient in the ways a person reading the answer would be, strict in the rest:

* **extra columns are forgiven**, and so is column order: every gold column must be found
  among the answer's columns (a label beside a key, a share beside a total are fine);
* the answer must have **the same rows**: the gold columns, taken from the answer, give the
  gold rows as a multiset (duplicates count); row order counts only when ``ordered``;
* values are compared after :func:`norm`: numbers to 6 significant digits (``3`` equals
  ``3.0000001``, an integer equals the same float or decimal), dates and midnight timestamps as
  ISO days, booleans as 0/1; text exactly.

Two gold columns with the same values in every row may both be found in one answer column
(``SELECT count(*), count(*)`` is answered by one count).

Used by ``nlp_accuracy.py`` and ``spider_open.py``; tested by
``tests/unit/test_benchmark_matcher.py``.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import math
from collections.abc import Sequence
from typing import Any

#: Backtracking steps allowed while pairing gold columns with answer columns (each step is one
#: tentative pairing); many columns with equal values could otherwise explode.
MAX_PAIRING_STEPS = 100_000


def norm(value: Any) -> Any:
    """A comparable form: numbers to 6 significant digits, dates as ISO days."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float, decimal.Decimal)):
        number = float(value)
        if math.isnan(number):
            return None
        return 0.0 if number == 0 else float(f"{number:.6g}")
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    text = str(value)
    if len(text) == 19 and text[10] == " " and text.endswith("00:00:00"):
        return text[:10]
    return text


def norm_rows(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    """Every value of ``rows`` through :func:`norm`."""
    return [tuple(norm(v) for v in row) for row in rows]


def _sort_key(value: Any) -> tuple[int, str]:
    return (0, "") if value is None else (1, repr(value))


def _multiset(values) -> list:
    return sorted(values, key=_sort_key)


def same_result(got: Sequence[tuple], want: Sequence[tuple], ordered: bool) -> tuple[bool, str]:
    """Whether ``got`` answers like ``want`` (both already through :func:`norm_rows`).

    Returns ``(True, "")`` or ``(False, why)`` with a short reason for the failure list.
    """
    if len(got) != len(want):
        return False, f"{len(got)} rows instead of {len(want)}"
    if not want:
        return True, ""
    width = len(want[0])
    if got and not got[0]:
        return False, "the answer has no columns"
    want_cols = [tuple(row[i] for row in want) for i in range(width)]
    got_cols = [tuple(row[i] for row in got) for i in range(len(got[0]))]
    distinct_want = list(dict.fromkeys(want_cols))  # identical gold columns need one answer column
    key = tuple if ordered else (lambda col: tuple(_multiset(col)))
    got_keys = [key(col) for col in got_cols]
    candidates = []
    for wcol in distinct_want:
        wkey = key(wcol)
        matches = [i for i, gkey in enumerate(got_keys) if gkey == wkey]
        if not matches:
            return False, f"no column with the values {_preview(wcol)}"
        candidates.append(matches)
    if ordered:
        # each gold column equals, value for value in row order, some answer column:
        # the answer's rows, projected on those columns, are the gold rows in order
        return True, ""
    if _pair_columns(got_cols, distinct_want, candidates):
        return True, ""
    return False, "the right values, but not in the same rows"


def _pair_columns(got_cols: list[tuple], want_cols: list[tuple], candidates: list[list[int]]) -> bool:
    """Whether some choice of one candidate answer column per gold column gives the gold rows
    (as a multiset). Backtracking over the gold columns, fewest candidates first, pruned by
    comparing the partial rows after every pairing."""
    order = sorted(range(len(want_cols)), key=lambda i: len(candidates[i]))
    steps = 0

    def partial(cols: list[tuple]) -> collections.Counter:
        return collections.Counter(zip(*cols))

    def search(depth: int, chosen_got: list[tuple], chosen_want: list[tuple]) -> bool:
        nonlocal steps
        if depth == len(order):
            return True
        w = order[depth]
        for g in candidates[w]:
            steps += 1
            if steps > MAX_PAIRING_STEPS:
                return False
            next_got, next_want = chosen_got + [got_cols[g]], chosen_want + [want_cols[w]]
            if partial(next_got) == partial(next_want) and search(depth + 1, next_got, next_want):
                return True
        return False

    return search(0, [], [])


def _preview(col: Sequence[Any]) -> str:
    items = list(col)[:3]
    return ", ".join(repr(v) for v in items) + (" …" if len(col) > 3 else "")
