"""What a "not understood" answer offers must be askable: a "did you mean" fix is only offered
when the question with the word replaced (as the web UI's chip replaces it) is then understood,
and every example question offered parses too. Issue 8: "did you mean" offered "africa" for
"afica", and "revenue by africa" was then not understood either."""

from __future__ import annotations

import re

import pytest

from livebi.agents.nlp import NotUnderstood
from livebi.agents.nlp.parser import parse_question

from .test_nlp import TODAY, data, duck, model  # noqa: F401 - fixtures

_DID_YOU_MEAN = re.compile(r'^did you mean "(.+?)" instead of "(.+?)"\?$', re.I)


def _asked(suggestion: str, question: str) -> str:
    """The question a chip asks (the same rule as ``suggestionQuestion`` in web/js/card.js)."""
    match = _DID_YOU_MEAN.match(suggestion)
    if not match:
        return suggestion
    wanted, typed = match.groups()
    fixed = re.sub(rf"\b{re.escape(typed)}\b", lambda _: wanted, question, flags=re.I)
    return wanted if fixed == question else fixed


def _refusal(model, question: str) -> NotUnderstood:  # noqa: F811
    with pytest.raises(NotUnderstood) as caught:
        parse_question(question, model, dialect="duckdb", today=TODAY)
    return caught.value


def _assert_all_parse(model, question: str, suggestions: list[str]) -> None:  # noqa: F811
    for suggestion in suggestions:
        asked = _asked(suggestion, question)
        try:
            parse_question(asked, model, dialect="duckdb", today=TODAY)
        except NotUnderstood as exc:
            pytest.fail(f"{question!r} offered {suggestion!r}, and {asked!r} is not understood: {exc.message}")


@pytest.mark.parametrize("question", ["revenue by afica", "revenue by asa", "how many amrica", "buiness"])
def test_did_you_mean_offers_only_what_then_parses(model, question) -> None:  # noqa: F811
    refusal = _refusal(model, question)
    assert refusal.suggestions, "a refusal always offers something to ask instead"
    _assert_all_parse(model, question, refusal.suggestions)


@pytest.mark.parametrize(("question", "fix"), [("revenue by regn", "region"), ("revenue by citty", "city")])
def test_did_you_mean_still_offers_fixes_that_parse(model, question, fix) -> None:  # noqa: F811
    refusal = _refusal(model, question)
    typed = question.split()[-1]
    assert refusal.suggestions[0] == f'Did you mean "{fix}" instead of "{typed}"?'
    _assert_all_parse(model, question, refusal.suggestions)


def test_every_did_you_mean_over_typos_of_the_vocabulary_parses(model) -> None:  # noqa: F811
    """Typos (one letter dropped) of every schema and value word, in a few question shapes."""
    words = sorted({w for phrase in model.phrases for w in phrase if len(w) > 3 and w.isalpha()})
    offered = 0
    for word in words:
        typo = word[:2] + word[3:]
        for shape in ("revenue by {}", "{}", "how many {}", "{} by region"):
            question = shape.format(typo)
            try:
                parse_question(question, model, dialect="duckdb", today=TODAY)
                continue
            except NotUnderstood as exc:
                fixes = [s for s in exc.suggestions if _DID_YOU_MEAN.match(s)]
            offered += len(fixes)
            _assert_all_parse(model, question, fixes)
    assert offered, "the typos must still get some \"did you mean\" fixes"
