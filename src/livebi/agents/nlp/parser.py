"""The offline parser: question text -> :class:`ParsedQuestion` (SQL plus what it means).

Pipeline, each stage in its own module so new phrasings are added where they belong::

    normalize.tokenize -> linker.correct_spelling -> intent.extract_intent
        -> linker.link -> planner.Planner (roles) -> compose.compose (QuerySpec)
        -> sqlgen.generate (sqlglot AST -> dialect SQL)

Parsing is synchronous, CPU-only and offline (no LLM, no network); the LLM engine
(:mod:`.llm`) produces the same :class:`ParsedQuestion` with ``engine="llm"``, and the agent
(:mod:`.agent`) decides which one answers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any, Callable

from . import explain as ex
from . import lexicon as lx
from . import strings
from .compose import compose
from .intent import extract_intent
from .linker import correct_spelling, link, suggestions_for, unknown_words
from .model import SemanticModel
from .normalize import tokenize
from .planner import Planner, PlanError
from .sqlgen import NoJoinPath, dialect_notes, generate

SubstageCallback = Callable[[str, int, str], None]
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|“[^”]*”")


@dataclasses.dataclass
class ParsedQuestion:
    """The parser's answer: one SELECT and everything needed to explain and chart it."""

    sql: str
    engine: str
    intent: dict[str, Any]
    explanation: str
    assumptions: list[str]
    alternatives: list[str]
    chart_hint: dict[str, Any]
    ignored: list[str] = dataclasses.field(default_factory=list)  # words the parser could not use

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NotUnderstood(Exception):
    """No sensible query could be built for the question.

    Attributes:
        code: ``not_understood`` | ``empty_question`` | ``question_too_long`` (protocol codes).
        message: a sentence for the user.
        suggestions: "did you mean" fixes and/or example questions for this schema.
    """

    def __init__(self, code: str, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.suggestions = suggestions or []


def check_question(question: str | None, model: SemanticModel, max_chars: int) -> str:
    """The question, stripped; raises :class:`NotUnderstood` when it is empty, too long or asks
    to change data (checked before any engine, the LLM included, sees it)."""
    text = (question or "").strip()
    if not text:
        raise NotUnderstood("empty_question", "Ask a question about your data.", model.example_questions())
    if len(text) > max_chars:
        raise NotUnderstood("question_too_long", f"Questions are limited to {max_chars} characters.",
                            model.example_questions())
    verb = write_intent(text)
    if verb is not None:
        raise NotUnderstood("not_understood", f'livebi only reads data: it will not {verb} anything. '
                            "Ask a question about your data instead.", model.example_questions())
    return text


def write_intent(text: str) -> str | None:
    """The verb when the question (or a ``;``-separated part of it) asks to change data:
    "delete all customers", "revenue; DROP TABLE orders", "create table x"."""
    unquoted = _QUOTED.sub(" value ", text)  # quoted text is a literal: "named 'a; drop x'"
    for clause in unquoted.split(";"):
        words = [t.norm for t in tokenize(clause) if t.kind == "word"]
        if not words:
            continue
        if words[0] in lx.WRITE_VERBS:
            return words[0].upper()
        if words[0] in lx.WRITE_VERBS_WITH_OBJECT and any(w in lx.DATABASE_OBJECTS for w in words[1:3]):
            return words[0].upper()
    return None


def parse_question(
    question: str,
    model: SemanticModel,
    *,
    dialect: str,
    today: dt.date,
    max_question_chars: int = 500,
    on_substage: SubstageCallback | None = None,
) -> ParsedQuestion:
    """Turn a question into SQL for ``dialect`` with the offline parser.

    Calls ``on_substage(substage, percent, detail)`` for ``intent_extraction``,
    ``schema_linking`` and ``sql_generation``, in that order.

    Raises:
        NotUnderstood: the question is empty, too long, or nothing sensible matches it.
            Any other exception is a bug in the parser: it propagates so that the caller logs
            it with its traceback and counts it, instead of telling the user "not understood".
    """
    report = on_substage or (lambda stage, percent, detail: None)
    text = check_question(question, model, max_question_chars)
    try:
        return _parse(text, model, dialect, today, report)
    except NotUnderstood:
        raise
    except PlanError as exc:
        suggestions = _suggestions(text, exc.words, model, dialect, today)
        raise NotUnderstood("not_understood", exc.message, suggestions) from None


def _parse(text: str, model: SemanticModel, dialect: str, today: dt.date, report: SubstageCallback) -> ParsedQuestion:
    report("intent_extraction", 0, "reading the question")
    tokens = tokenize(text)
    fixes = correct_spelling(tokens, model)

    def is_schema_phrase(start: int, length: int) -> bool:
        phrase = tuple(t.norm for t in tokens[start:start + length])
        if len(phrase) != length:
            return False
        # "number of products" names a column Number_products, not a count of products
        return phrase in model.phrases or (length == 3 and phrase[1] == "of" and (phrase[0], phrase[2]) in model.phrases)

    intent = extract_intent(tokens, today, is_schema_phrase=is_schema_phrase)
    texts = strings.find(tokens, intent.consumed, model)  # "starts with", "named X": before linking
    fixes = [(typed, meant) for typed, meant in fixes
             if any(t.text == typed and t.corrected_from is not None for t in tokens)]
    report("intent_extraction", 100, _intent_summary(intent))

    report("schema_linking", 0, "matching words to tables, columns and values")
    mentions = link(tokens, intent.consumed, model)
    fixes = _keep_useful_fixes(tokens, intent.consumed, mentions, fixes)
    unknown_at = unknown_words(tokens, intent.consumed, mentions)
    unknown = [tokens[i].text for i in unknown_at]
    if not mentions:
        raise PlanError("I could not match any word of the question to this data.", unknown)
    for i in unknown_at:
        # "revenue by regn": a breakdown of something unknown cannot be ignored safely
        if any(start < i <= start + len(marker.split()) for start, marker in intent.markers.items()
               if start + len(marker.split()) == i):
            raise PlanError(f'I do not know "{tokens[i].text}" in this data.', [tokens[i].text])
    planner = Planner(model, intent, mentions)
    planner.text_conditions = texts  # read by compose._add_filters
    report("schema_linking", 100, "matched " + ", ".join(f'"{m.text}"' for m in mentions))

    report("sql_generation", 0, "building the query")
    spec = compose(planner)
    try:
        sql = generate(model, spec, dialect)
    except NoJoinPath as exc:
        # The plan named tables no key chain connects: nothing sensible to answer, not a bug.
        tables = model.tables
        raise PlanError(f"I could not relate {tables[exc.table].plural} to {tables[exc.base].plural} in this data") from None
    assumptions = [f'Read "{typed}" as "{meant}"' for typed, meant in fixes]
    assumptions += list(dict.fromkeys(planner.assumptions))
    assumptions += ex.measure_notes(model, spec)  # a semantic layer's default filters
    assumptions += dialect_notes(spec, dialect)
    alternatives = ex.alternative_questions(text, planner.swaps, tokens, planner.alternatives)
    if unknown:
        assumptions.append("Ignored " + ", ".join(f'"{w}"' for w in unknown))
    parsed = ParsedQuestion(
        sql=sql,
        engine="parser",
        intent=spec.to_dict(),
        explanation=ex.explain(model, spec),
        assumptions=assumptions,
        alternatives=list(dict.fromkeys(alternatives))[:4],
        chart_hint=ex.chart_hint(model, spec),
        ignored=unknown,
    )
    report("sql_generation", 100, spec.kind)
    return parsed


# Parses tried to check "did you mean" fixes, per refusal (a few milliseconds each).
_MAX_FIXES_TRIED = 6


def _suggestions(text: str, words: list[str], model: SemanticModel, dialect: str, today: dt.date) -> list[str]:
    """"Did you mean" fixes for the words not understood, then example questions.

    A fix is offered only when the question with the word replaced is then understood: a close
    word the parser still refuses ("africa", only part of the value "North Africa") would lead the
    user from one refusal to the next. Each word gets its first close word that works."""
    out: list[str] = []
    tried = 0
    for word in words[:3]:
        for close in suggestions_for(word, model):
            if tried >= _MAX_FIXES_TRIED:
                break
            tried += 1
            if _understood(corrected_question(text, word, close), model, dialect, today):
                out.append(f'Did you mean "{close}" instead of "{word}"?')
                break
    return out + model.example_questions()


def corrected_question(text: str, typed: str, meant: str) -> str:
    """The question a "did you mean" fix asks: every whole-word ``typed`` replaced by ``meant``,
    or ``meant`` alone when ``typed`` is not a whole word of it (the same rule as
    ``suggestionQuestion`` in web/js/card.js, whose chips ask it; ASCII word boundaries like JS)."""
    pattern = re.compile(rf"\b{re.escape(typed)}\b", re.IGNORECASE | re.ASCII)
    fixed = pattern.sub(lambda _: meant, text)
    return meant if fixed == text else fixed


def _understood(text: str, model: SemanticModel, dialect: str, today: dt.date) -> bool:
    try:
        check_question(text, model, max_chars=len(text))
        _parse(text, model, dialect, today, lambda stage, percent, detail: None)
    except (NotUnderstood, PlanError):
        return False
    return True


def _keep_useful_fixes(tokens, consumed: set[int], mentions, fixes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Undo spelling corrections that linked to nothing ("handle" is not a typo of a value
    word "handel" unless reading it so made sense of the question)."""
    covered = set(consumed)
    for m in mentions:
        covered.update(range(m.start, m.end))
    undone = set()
    for i, tok in enumerate(tokens):
        if tok.corrected_from is not None and i not in covered:
            undone.add(tok.text)
            tok.norm, tok.corrected_from = tok.corrected_from, None
    return [(typed, meant) for typed, meant in fixes if typed not in undone]


def _intent_summary(intent) -> str:
    parts = []
    if intent.aggs:
        parts.append("aggregation: " + ", ".join(sorted(set(intent.aggs.values()))))
    if intent.time.periods:
        parts.append("period: " + ", ".join(p.text for p in intent.time.periods))
    if intent.time.grain:
        parts.append(f"grain: {intent.time.grain}")
    if intent.rank_n:
        parts.append(f"{'top' if intent.rank_dir == 'desc' else 'bottom'} {intent.rank_n}")
    if intent.comparisons:
        parts.append("comparison: " + ", ".join(f"{c.op} {c.value:g}" for c in intent.comparisons))
    return "; ".join(parts) or "no structure words"
