"""The NLP agent: question text -> :class:`ParsedQuestion` (SQL plus what it means).

Pipeline, each stage in its own module so new phrasings are added where they belong::

    normalize.tokenize -> linker.correct_spelling -> intent.extract_intent
        -> linker.link -> planner.Planner (roles) -> compose.compose (QuerySpec)
        -> sqlgen.generate (sqlglot AST -> dialect SQL)

Parsing is synchronous, CPU-only and offline (no LLM, no network); an LLM engine may later
produce the same :class:`ParsedQuestion` with ``engine="llm"``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any, Callable

from livebi.warehouse.base import Warehouse

from . import explain as ex
from .compose import compose
from .intent import extract_intent
from .linker import correct_spelling, link, suggestions_for, unknown_words
from .model import SemanticModel
from .normalize import tokenize
from .planner import Planner, PlanError
from .sqlgen import dialect_notes, generate

SubstageCallback = Callable[[str, int, str], None]
VALUES_PER_COLUMN = 200  # a column with more distinct values is not indexed (names, ids)


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


class NLPAgent:
    """Parses questions against a warehouse's semantic model (built once per warehouse)."""

    def __init__(self, *, today: dt.date | None = None, max_question_chars: int = 500) -> None:
        self._today = today
        self.max_question_chars = max_question_chars
        self._models: dict[str, SemanticModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def today(self) -> dt.date:
        return self._today or dt.date.today()

    async def model_for(self, warehouse: Warehouse) -> SemanticModel:
        """The warehouse's semantic model, built on first use and cached by warehouse name.

        Building reads the schema and, for each low-cardinality text column, its distinct
        values (columns with more than ``VALUES_PER_COLUMN`` values are left out).
        """
        cached = self._models.get(warehouse.name)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(warehouse.name, asyncio.Lock())
        async with lock:
            cached = self._models.get(warehouse.name)
            if cached is not None:
                return cached
            schema = await warehouse.schema()
            values: dict[tuple[str, str], list[str]] = {}
            for table, column in SemanticModel.value_columns(schema):
                found = await warehouse.distinct_values(table, column, VALUES_PER_COLUMN + 1)
                if 0 < len(found) <= VALUES_PER_COLUMN:
                    values[(table, column)] = [str(v) for v in found]
            model = SemanticModel.from_schema(schema, values)
            self._warm_up(model, warehouse.dialect)
            self._models[warehouse.name] = model
            return model

    def _warm_up(self, model: SemanticModel, dialect: str) -> None:
        """Parse one example so the first real question does not pay for cold caches
        (sqlglot's generator for the dialect, the lexicon, the spelling index)."""
        for question in model.example_questions(1):
            try:
                self.parse(question, model, dialect=dialect or "duckdb")
            except NotUnderstood:
                pass

    def forget(self, warehouse_name: str) -> None:
        """Drop a cached model (after a schema change); the next question rebuilds it."""
        self._models.pop(warehouse_name, None)

    def parse(
        self,
        question: str,
        model: SemanticModel,
        *,
        dialect: str,
        on_substage: SubstageCallback | None = None,
    ) -> ParsedQuestion:
        """Turn a question into SQL for ``dialect``.

        Calls ``on_substage(substage, percent, detail)`` for ``intent_extraction``,
        ``schema_linking`` and ``sql_generation``, in that order.

        Raises:
            NotUnderstood: the question is empty, too long, or nothing sensible matches it.
                No other exception escapes, whatever the input.
        """
        report = on_substage or (lambda stage, percent, detail: None)
        text = (question or "").strip()
        if not text:
            raise NotUnderstood("empty_question", "Ask a question about your data.",
                                model.example_questions())
        if len(text) > self.max_question_chars:
            raise NotUnderstood("question_too_long",
                                f"Questions are limited to {self.max_question_chars} characters.",
                                model.example_questions())
        try:
            return self._parse(text, model, dialect, report)
        except NotUnderstood:
            raise
        except PlanError as exc:
            raise NotUnderstood("not_understood", exc.message, self._suggestions(exc.words, model)) from None
        except Exception as exc:  # a parser bug must not surface as a server error
            raise NotUnderstood("not_understood", "I could not turn this question into a query.",
                                model.example_questions()) from exc

    def _parse(self, text: str, model: SemanticModel, dialect: str, report: SubstageCallback) -> ParsedQuestion:
        report("intent_extraction", 0, "reading the question")
        tokens = tokenize(text)
        fixes = correct_spelling(tokens, model)

        def is_schema_phrase(start: int, length: int) -> bool:
            phrase = tuple(t.norm for t in tokens[start:start + length])
            return len(phrase) == length and phrase in model.phrases

        intent = extract_intent(tokens, self.today, is_schema_phrase=is_schema_phrase)
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
        report("schema_linking", 100, "matched " + ", ".join(f'"{m.text}"' for m in mentions))

        report("sql_generation", 0, "building the query")
        spec = compose(planner)
        sql = generate(model, spec, dialect)
        assumptions = [f'Read "{typed}" as "{meant}"' for typed, meant in fixes]
        assumptions += list(dict.fromkeys(planner.assumptions))
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
        )
        report("sql_generation", 100, spec.kind)
        return parsed

    def _suggestions(self, words: list[str], model: SemanticModel) -> list[str]:
        out: list[str] = []
        for word in words[:3]:
            close = suggestions_for(word, model)
            if close:
                out.append(f'Did you mean "{close[0]}" instead of "{word}"?')
        return out + model.example_questions()


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
