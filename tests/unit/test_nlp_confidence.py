"""The parser's confidence: a clean question scores high, each kind of doubt lowers it, and
one more doubt never raises it (the pure :mod:`confidence` module and real parses)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from livebi.agents.nlp.confidence import Evidence, assess, combine

from .test_nlp import agent, data, duck, model  # noqa: F401 (fixtures)

THRESHOLD = 0.6


def test_a_clean_parse_is_fully_confident() -> None:
    sure = assess(Evidence())
    assert sure.score == 1.0 and sure.reasons == []


DOUBTS = {
    "spelling fix": Evidence(fixes=[("regoin", "region")]),
    "reading chosen": Evidence(assumptions=['Took "Europe" to mean customers.region = \'Europe\'']),
    "default measure": Evidence(assumptions=["Used revenue (orders.revenue) as the measure"]),
    "default aggregation": Evidence(assumptions=["Averaged discount (it does not add up across rows)"]),
    "default grain": Evidence(default_grain=True),
    "other readings": Evidence(alternatives=2),
    "other assumption": Evidence(assumptions=["Showed the top 10"]),
    "ignored word": Evidence(ignored=["loyal"]),
    "planner dropped": Evidence(assumptions=['Ignored the condition on "price"']),
    "meaning word": Evidence(unused=["never"]),
    "negation unapplied": Evidence(negations=["without"]),
}


@pytest.mark.parametrize("kind", DOUBTS)
def test_each_kind_of_doubt_lowers_it_and_says_why(kind: str) -> None:
    sure = assess(DOUBTS[kind])
    assert sure.score < 1.0 and sure.reasons


@pytest.mark.parametrize("kind", ["ignored word", "planner dropped", "meaning word", "negation unapplied"])
def test_losing_part_of_the_question_is_low_confidence(kind: str) -> None:
    assert assess(DOUBTS[kind]).is_low(THRESHOLD)


@pytest.mark.parametrize("kind", ["spelling fix", "reading chosen", "default measure", "default aggregation",
                                  "default grain", "other readings", "other assumption"])
def test_one_small_doubt_alone_is_not_low_confidence(kind: str) -> None:
    assert not assess(DOUBTS[kind]).is_low(THRESHOLD)


def test_a_word_that_changes_the_meaning_weighs_more_than_an_unknown_word() -> None:
    assert assess(Evidence(unused=["never"])).score < assess(Evidence(ignored=["loyal"])).score
    # "only" restricts: harmless when the query filters, a loss when it does not
    assert assess(Evidence(unused=["only"], filtered=True)).score == 1.0
    assert assess(Evidence(unused=["only"])).is_low(THRESHOLD)
    # a stop word that changes nothing is no doubt
    assert assess(Evidence(unused=["the", "please"])).score == 1.0


def test_an_applied_negation_is_no_doubt() -> None:
    assert assess(Evidence(negations=["not"], negation_applied=True)).score == 1.0


def _merge(a: Evidence, b: Evidence) -> Evidence:
    out = {}
    for f in dataclasses.fields(Evidence):
        x, y = getattr(a, f.name), getattr(b, f.name)
        out[f.name] = x + y if isinstance(x, list) else (x or y) if isinstance(x, bool) else x + y
    return Evidence(**out)


@pytest.mark.parametrize("first, second", list(itertools.permutations(DOUBTS, 2)))
def test_one_more_doubt_never_raises_it(first: str, second: str) -> None:
    one = assess(DOUBTS[first])
    both = assess(_merge(DOUBTS[first], DOUBTS[second]))
    assert both.score < one.score


def test_reasons_come_worst_first_and_are_bounded() -> None:
    sure = combine([(0.9, "small"), (0.3, "big"), (0.6, "middle")] + [(0.95, f"tiny {i}") for i in range(9)])
    assert sure.reasons[:3] == ["big", "middle", "small"] and len(sure.reasons) == 5


@pytest.mark.parametrize("question", ["total revenue", "revenue by region", "top 5 products by revenue"])
def test_clean_questions_parse_with_high_confidence(agent, model, question: str) -> None:  # noqa: F811
    parsed = agent.parse(question, model, dialect="duckdb")
    assert parsed.confidence >= 0.9, parsed.confidence_reasons


@pytest.mark.parametrize("question, word", [
    ("revenue for customers who never ordered", "never"),
    ("revenue decline by region", "decline"),
    ("revenue by region only", "only"),
    ("revenue without discount", "without"),
    ("revenue by region for loyal customers", "loyal"),
])
def test_a_dropped_meaning_or_unknown_word_makes_a_parse_low_confidence(agent, model, question: str,  # noqa: F811
                                                                      word: str) -> None:
    parsed = agent.parse(question, model, dialect="duckdb")
    assert parsed.confidence < THRESHOLD
    assert any(word in r for r in parsed.confidence_reasons)


def test_confidence_falls_as_the_question_gets_doubtful(agent, model) -> None:  # noqa: F811
    scores = [agent.parse(q, model, dialect="duckdb").confidence for q in
              ("revenue by region", "revenue by regoin", "revenue by regoin for loyal customers")]
    assert scores[0] > scores[1] > scores[2]


def test_an_applied_negation_keeps_a_parse_confident(agent, model) -> None:  # noqa: F811
    parsed = agent.parse("revenue not in Europe", model, dialect="duckdb")
    assert "<> 'Europe'" in parsed.sql
    assert parsed.confidence >= THRESHOLD


def test_rows_that_lack_related_rows_apply_the_negation(agent, model) -> None:  # noqa: F811
    parsed = agent.parse("customers without orders", model, dialect="duckdb")
    assert "NOT EXISTS" in parsed.sql.upper()
    assert not any("excludes nothing" in r for r in parsed.confidence_reasons)
