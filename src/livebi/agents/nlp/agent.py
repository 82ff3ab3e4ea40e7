"""The NLP agent: one semantic model per warehouse, and the choice of engine per question.

:class:`NLPAgent` builds a warehouse's :class:`~.model.SemanticModel` on first use (schema,
value index, semantic layer), keeps it, and checks every ``schema_check_interval_s`` seconds
with a cheap catalogue query (:meth:`~livebi.warehouse.base.Warehouse.schema_fingerprint`)
that the schema is unchanged; when it changed, the model is rebuilt before the question.

Which engine answers (:meth:`NLPAgent.answer`):

* no LLM configured: the offline parser, always;
* ``llm_mode="fallback"`` (the default): the parser first, because it is fast (milliseconds),
  deterministic, explains its assumptions and is measured by ``benchmarks/nlp_accuracy.py``;
  the LLM is asked only when the parser cannot understand the question or is not confident
  of its answer (its :mod:`confidence <.confidence>` is below ``confidence_threshold``: an
  ignored word, a dropped negation, several readings...). If the LLM fails too, the parser's
  answer (or its error) stands;
* ``llm_mode="first"``: the LLM first, for deployments that trust their model more than the
  parser's coverage; the parser answers when the LLM fails, times out or writes SQL that is
  invalid or not read-only.

Either way the result's ``engine`` says who answered, and an assumption says why when the
preferred engine did not.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import itertools
import logging
import time
import weakref
from typing import Mapping

from livebi.answer_cache import LRU
from livebi.warehouse.base import Schema, Warehouse, WarehouseError
from livebi.warehouse.types import quote_identifier

from .confidence import combine
from .llm import Examples, LLMEngine, LLMFailure, Samples, link_schema
from .model import SemanticModel
from .normalize import tokenize
from .parser import NotUnderstood, ParsedQuestion, SubstageCallback, check_question, parse_question
from .semantic_layer import SemanticLayer, SemanticLayerError
from .timeexpr import data_anchor, extract_time

log = logging.getLogger(__name__)

LLM_MODES = ("fallback", "first")
CONFIDENCE_THRESHOLD = 0.6
#: How sure an LLM answer is when no parse judged the question (llm_mode="first"): its SQL is
#: valid and read-only, nothing more is known; a repair round lowers it further.
LLM_CONFIDENCE = 0.8
LLM_REPAIRED = 0.85
SAMPLED_COLUMNS = 6  # linked columns without indexed values sampled for the LLM's prompt
SAMPLES_PER_COLUMN = 5
SAMPLE_ROWS, SAMPLE_TIMEOUT_S = 50, 5.0  # rows read to find them, and how long that may take
EXAMPLES_TRIED, EXAMPLES_SHOWN = 5, 3  # example questions the parser writes SQL for, for the LLM


@dataclasses.dataclass
class _Cached:
    model: SemanticModel
    fingerprint: str
    checked_at: float  # time.monotonic() of the last fingerprint check


class NLPAgent:
    """Parses questions against a warehouse's semantic model (built once per warehouse)."""

    def __init__(
        self,
        *,
        today: dt.date | None = None,
        max_question_chars: int = 500,
        semantic_layers: Mapping[str, SemanticLayer] | None = None,
        schema_check_interval_s: float = 10.0,
        llm: LLMEngine | None = None,
        llm_mode: str = "fallback",
        confidence_threshold: float = CONFIDENCE_THRESHOLD,
        parse_cache_entries: int = 2048,
    ) -> None:
        """
        Args:
            today: the date relative periods count from (None: the real date).
            max_question_chars: longer questions are refused (``question_too_long``).
            semantic_layers: warehouse name -> its semantic layer.
            schema_check_interval_s: seconds between schema fingerprint checks (0: before
                every question).
            llm: the LLM engine, or None for the offline parser only.
            llm_mode: ``fallback`` (parser first) or ``first`` (LLM first); see the module.
            confidence_threshold: a parse less confident than this (0..1) is low-confidence:
                in ``fallback`` mode the LLM answers instead, and the answer asks to be checked.
            parse_cache_entries: offline parses kept (least recently used dropped first), keyed
                by the semantic model they were made with (a schema change builds a new model,
                hence new keys), the dialect, ``today`` and the question; 0 keeps none.
        """
        if llm_mode not in LLM_MODES:
            raise ValueError(f"llm_mode must be one of {', '.join(LLM_MODES)}, not {llm_mode!r}")
        self._today = today
        self.max_question_chars = max_question_chars
        self.semantic_layers = dict(semantic_layers or {})
        self.schema_check_interval_s = schema_check_interval_s
        self.llm = llm
        self.llm_mode = llm_mode
        self.confidence_threshold = confidence_threshold
        self._models: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # per model: ((dialect, today), examples for the LLM's prompt)
        self._examples: weakref.WeakKeyDictionary[SemanticModel, tuple[tuple[str, dt.date], Examples]] = \
            weakref.WeakKeyDictionary()
        # per model: (table, column) -> sample values shown to the LLM (read once per model)
        self._samples: weakref.WeakKeyDictionary[SemanticModel, dict[tuple[str, str], list[str]]] = \
            weakref.WeakKeyDictionary()
        # The offline parser is a pure function of (model, dialect, today, question): its
        # answers are reused. A model gets a number never given to another (ids are reused).
        self.parses: LRU[tuple[int, str, dt.date, int, str], ParsedQuestion] = LRU(parse_cache_entries)
        self._model_numbers: weakref.WeakKeyDictionary[SemanticModel, int] = weakref.WeakKeyDictionary()
        self._next_model_number = itertools.count(1)

    @property
    def today(self) -> dt.date:
        return self._today or dt.date.today()

    # -- models -------------------------------------------------------------------------------

    async def model_for(self, warehouse: Warehouse) -> SemanticModel:
        """The warehouse's semantic model: built on first use, rebuilt when its schema changed.

        Building reads the schema and, for each low-cardinality text column, its distinct
        values (columns with more than :meth:`SemanticModel.value_limit` values are left out).

        Raises:
            SemanticLayerError: the warehouse's semantic layer does not fit its schema.
            WarehouseError: the warehouse cannot be read.
        """
        cached = self._models.get(warehouse.name)
        if cached is not None and self._fresh(cached):
            return cached.model
        lock = self._locks.setdefault(warehouse.name, asyncio.Lock())
        if cached is not None and lock.locked() and self.schema_check_interval_s > 0:
            # Another question is checking the schema: answer with the model it checks rather
            # than queue every asker behind that round trip to the warehouse.
            return cached.model
        async with lock:
            cached = self._models.get(warehouse.name)
            if cached is not None and self._fresh(cached):
                return cached.model
            if cached is not None:
                try:
                    fingerprint = await warehouse.schema_fingerprint()
                except Exception:  # the question will meet the real error; keep serving
                    log.warning("schema check of %s failed; keeping its model", warehouse.name, exc_info=True)
                    cached.checked_at = time.monotonic()
                    return cached.model
                if fingerprint == cached.fingerprint:
                    cached.checked_at = time.monotonic()
                    return cached.model
                log.info("the schema of %s changed: rebuilding its semantic model", warehouse.name)
                schema = await warehouse.schema(refresh=True)
            else:
                fingerprint = await warehouse.schema_fingerprint()
                schema = await warehouse.schema()
            model = await self._build(warehouse, schema)
            self._models[warehouse.name] = _Cached(model, fingerprint, time.monotonic())
            return model

    async def check_semantic_layers(self, warehouses: Mapping[str, Warehouse]) -> None:
        """Build now the model of every warehouse that has a semantic layer, so a layer that
        does not fit its schema stops startup instead of failing the first question.

        Raises:
            SemanticLayerError: a layer names an unknown warehouse, table or column, or a metric
                is not a safe aggregate.
        """
        for name, layer in self.semantic_layers.items():
            if name not in warehouses:
                known = ", ".join(warehouses) or "none"
                raise SemanticLayerError(layer.path, "", f"no warehouse is named {name!r} (warehouses: {known})")
            await self.model_for(warehouses[name])

    def _fresh(self, cached: _Cached) -> bool:
        return time.monotonic() - cached.checked_at < self.schema_check_interval_s

    async def _build(self, warehouse: Warehouse, schema: Schema) -> SemanticModel:
        layer = self.semantic_layers.get(warehouse.name)
        values: dict[tuple[str, str], list[str]] = {}
        for table, column in SemanticModel.value_columns(schema, layer):
            limit = SemanticModel.value_limit(column)  # more for name columns
            found = await warehouse.distinct_values(table, column, limit + 1)
            if 0 < len(found) <= limit:
                values[(table, column)] = [str(v) for v in found]
        dialect = warehouse.dialect or "duckdb"
        model = await asyncio.to_thread(SemanticModel.from_schema, schema, values, layer=layer, dialect=dialect)
        if self._today is None:  # a pinned date is the user's choice: nothing to anchor
            model.data_ends = await self._data_ends(warehouse, model)
        await asyncio.to_thread(self._warm_up, model, dialect)
        return model

    async def _data_ends(self, warehouse: Warehouse, model: SemanticModel) -> dict[tuple[str, str], dt.date]:
        """The last date of each date column whose data ended before yesterday (one MAX query
        per table with dates). Columns still receiving data are left out, so a live warehouse
        is never re-anchored to the date its model happened to be built."""
        ends: dict[tuple[str, str], dt.date] = {}
        recent = dt.date.today() - dt.timedelta(days=1)
        for name, info in model.tables.items():
            columns = [c.name for c in info.columns.values() if c.role == "date"]
            if not columns:
                continue
            sql = "SELECT " + ", ".join(f"MAX({quote_identifier(c)})" for c in columns) + \
                  f" FROM {quote_identifier(name)}"
            try:
                result = await warehouse.execute(sql, timeout=30.0, row_cap=1)
            except WarehouseError:  # questions still work, counted from the real date
                log.warning("reading the last dates of %s.%s failed", warehouse.name, name, exc_info=True)
                continue
            for column, value in zip(columns, result.rows[0] if result.rows else ()):
                try:
                    last = dt.date.fromisoformat(str(value)[:10]) if value is not None else None
                except ValueError:  # not an ISO date (a text column named like a date)
                    continue
                if last is not None and last < recent:
                    ends[(name, column)] = last
        return ends

    def _warm_up(self, model: SemanticModel, dialect: str) -> None:
        """Parse one example so the first real question does not pay for cold caches
        (sqlglot's generator for the dialect, the lexicon, the spelling index)."""
        for question in model.example_questions(1):
            try:
                self.parse(question, model, dialect=dialect)
            except NotUnderstood:
                pass
            except Exception:  # a parser bug: questions will meet (and report) it too
                log.exception("warming up the parser on %r failed", question)

    def forget(self, warehouse_name: str) -> None:
        """Drop a cached model; the next question rebuilds it."""
        self._models.pop(warehouse_name, None)

    # -- questions ----------------------------------------------------------------------------

    def parse(self, question: str, model: SemanticModel, *, dialect: str,
              on_substage: SubstageCallback | None = None) -> ParsedQuestion:
        """Answer with the offline parser only (synchronous, CPU-bound: a few milliseconds).

        Raises:
            NotUnderstood: see :func:`~.parser.parse_question`.
        """
        parsed = parse_question(question, model, dialect=dialect, today=self.today,
                                max_question_chars=self.max_question_chars, on_substage=on_substage)
        if self._today is not None or not model.data_ends:
            return parsed
        # "last month" on data that ended in the past: count from the data's last date
        periods = extract_time(tokenize(question), self.today).periods
        anchor = data_anchor(periods, parsed.intent.get("filters") or [], model.data_ends)
        if anchor is None:
            return parsed
        day, words = anchor
        parsed = parse_question(question, model, dialect=dialect, today=day,
                                max_question_chars=self.max_question_chars, on_substage=on_substage)
        parsed.assumptions.append(f"Counted '{words}' from the latest data, {day.isoformat()}")
        return parsed

    async def answer(self, question: str, model: SemanticModel, warehouse: Warehouse,
                     on_substage: SubstageCallback | None = None) -> ParsedQuestion:
        """Answer with the engine the configuration prefers, falling back to the other one.

        The parser runs in a worker thread; the LLM is awaited on the loop. ``on_substage``
        receives ``intent_extraction``, ``schema_linking``, ``sql_generation`` and, while the
        LLM is asked, ``llm_request``.

        Raises:
            NotUnderstood: neither engine produced a query (or the question is empty/too long).
        """
        report = on_substage or (lambda substage, percent, detail: None)
        dialect = warehouse.dialect or "duckdb"
        text = check_question(question, model, self.max_question_chars)
        if self.llm is None:
            return await self._parse(text, model, dialect, report)
        if self.llm_mode == "first":
            try:
                return await self._ask_llm(text, model, dialect, report, warehouse)
            except LLMFailure as failure:
                note = f"The LLM endpoint failed ({failure.reason}); answered by the offline parser"
                parsed = await self._parse(text, model, dialect, report, llm_failure=failure)
                parsed.assumptions.insert(0, note)
                return parsed
        try:
            parsed = await self._parse(text, model, dialect, report)
        except NotUnderstood as exc:
            if exc.code != "not_understood":
                raise
            try:
                answer = await self._ask_llm(text, model, dialect, report, warehouse)
            except LLMFailure as failure:
                exc.message = f"{exc.message} (the LLM could not answer either: {failure.reason})"
                raise exc from None
            answer.assumptions.insert(0, "The offline parser could not read this question; answered by the LLM")
            return answer
        if parsed.confidence >= self.confidence_threshold:
            return parsed
        try:
            answer = await self._ask_llm(text, model, dialect, report, warehouse)
        except LLMFailure as failure:
            parsed.assumptions.insert(0, f"The LLM endpoint failed ({failure.reason}); answered by the offline parser")
            return parsed
        if parsed.ignored:
            words = ", ".join(f'"{w}"' for w in parsed.ignored)
            why = f"The offline parser would have ignored {words}; answered by the LLM"
        else:
            doubt = parsed.confidence_reasons[0] if parsed.confidence_reasons else "several readings"
            why = f"The offline parser was unsure ({doubt}); answered by the LLM"
        answer.assumptions.insert(0, why)
        # the question was hard for the parser: the LLM's answer deserves a check as well
        answer.confidence = min(answer.confidence, parsed.confidence)
        answer.confidence_reasons = ["written by the LLM: the parser was unsure"] + parsed.confidence_reasons
        return answer

    def is_low(self, parsed: ParsedQuestion) -> bool:
        """The answer should be checked by the user (shown prominently by the UI)."""
        return parsed.confidence < self.confidence_threshold

    async def _parse(self, text: str, model: SemanticModel, dialect: str, report: SubstageCallback,
                     llm_failure: LLMFailure | None = None) -> ParsedQuestion:
        key = (self._model_number(model), dialect, self.today, self.max_question_chars, text)
        known = self.parses.get(key)
        if known is not None:  # callers add assumptions to what they get: each gets a copy
            report("sql_generation", 100, "Read the same way as the last time it was asked (same schema)")
            return copy.deepcopy(known)
        try:
            parsed = await asyncio.to_thread(self.parse, text, model, dialect=dialect, on_substage=report)
        except NotUnderstood as exc:
            if llm_failure is not None:
                exc.message = f"{exc.message} (the LLM endpoint failed too: {llm_failure.reason})"
            raise
        self.parses.put(key, copy.deepcopy(parsed))
        return parsed

    def _model_number(self, model: SemanticModel) -> int:
        number = self._model_numbers.get(model)
        if number is None:
            number = self._model_numbers[model] = next(self._next_model_number)
        return number

    async def _ask_llm(self, text: str, model: SemanticModel, dialect: str,
                       report: SubstageCallback, warehouse: Warehouse) -> ParsedQuestion:
        assert self.llm is not None
        samples, examples = await self._prompt_extras(text, model, dialect, warehouse)
        answer = await self.llm.generate(text, model, dialect=dialect, today=self.today, report=report,
                                         samples=samples, examples=examples)
        report("sql_generation", 100, f"the LLM ({self.llm.model}) wrote the query")
        return self._llm_parsed(answer, "The LLM's first query was invalid ({}); it repaired it")

    async def repair(self, question: str, failed: ParsedQuestion, error: str, model: SemanticModel,
                     warehouse: Warehouse, on_substage: SubstageCallback | None = None) -> ParsedQuestion:
        """Another answer after ``failed`` (an LLM answer) failed on the warehouse with ``error``:
        the LLM gets one repair attempt with the database's message; when that fails, the offline
        parser answers if it can.

        Raises:
            LLMFailure: the LLM could not repair it and the parser cannot read the question.
        """
        assert self.llm is not None and failed.engine == "llm"
        report = on_substage or (lambda substage, percent, detail: None)
        dialect = warehouse.dialect or "duckdb"
        samples, examples = await self._prompt_extras(question, model, dialect, warehouse)
        try:
            answer = await self.llm.repair(question, model, sql=failed.sql, error=error, dialect=dialect,
                                           today=self.today, report=report, samples=samples, examples=examples)
        except LLMFailure as failure:
            try:
                parsed = await self._parse(question, model, dialect, report)
            except NotUnderstood:
                raise failure from None
            parsed.assumptions.insert(0, f"The LLM's query failed on the database ({error}) and its repair "
                                         f"failed ({failure.reason}); answered by the offline parser")
            return parsed
        repaired = self._llm_parsed(answer, "The LLM's first query failed on the database ({}); it repaired it")
        repaired.assumptions[1:1] = [a for a in failed.assumptions if not a.startswith("The LLM's first query")]
        repaired.confidence = min(repaired.confidence, failed.confidence)
        repaired.confidence_reasons = failed.confidence_reasons + repaired.confidence_reasons
        return repaired

    def _llm_parsed(self, answer, repaired_note: str) -> ParsedQuestion:
        assert self.llm is not None
        assumptions, doubts = [], [(LLM_CONFIDENCE, "written by the LLM; the offline parser did not check it")]
        if answer.repaired_from:
            assumptions.append(repaired_note.format(answer.repaired_from))
            doubts.append((LLM_REPAIRED, "the LLM needed a second attempt"))
        sure = combine(doubts)
        return ParsedQuestion(
            sql=answer.sql,
            engine="llm",
            intent={"engine": "llm", "model": self.llm.model, "attempts": answer.attempts},
            explanation=answer.explanation,
            assumptions=assumptions,
            alternatives=[],
            chart_hint={},
            confidence=sure.score,
            confidence_reasons=sure.reasons,
        )

    async def _prompt_extras(self, text: str, model: SemanticModel, dialect: str,
                             warehouse: Warehouse) -> tuple[Samples, Examples]:
        """Sample values of the linked columns the value index lacks (a few distinct values
        each, read from the warehouse), and example questions the parser answers confidently."""
        linked = await asyncio.to_thread(link_schema, text, model, today=self.today)
        known = self._samples.setdefault(model, {})
        wanted = sorted(c for c in linked.columns if c not in model.values)[:SAMPLED_COLUMNS]
        for table, column in wanted:
            if (table, column) not in known:
                known[(table, column)] = await self._sample(warehouse, table, column)
        samples: Samples = {c: known[c] for c in wanted if known[c]}
        key = (dialect, self.today)
        cached = self._examples.get(model)
        if cached is None or cached[0] != key:
            cached = (key, await asyncio.to_thread(self._examples_for, model, dialect))
            self._examples[model] = cached
        return samples, cached[1]

    async def _sample(self, warehouse: Warehouse, table: str, column: str) -> list[str]:
        """A few values of a column as stored (how dates, codes, amounts are written): the first
        rows found, not a GROUP BY, so that it stays cheap on a large table."""
        t, c = quote_identifier(table), quote_identifier(column)
        sql = f"SELECT {c} FROM {t} WHERE {c} IS NOT NULL LIMIT {SAMPLE_ROWS}"
        try:
            result = await warehouse.execute(sql, timeout=SAMPLE_TIMEOUT_S, row_cap=SAMPLE_ROWS)
        except WarehouseError:
            # the prompt is complete without samples; the question goes on
            log.warning("could not sample %s.%s for the LLM", table, column, exc_info=True)
            return []
        return list(dict.fromkeys(str(row[0]) for row in result.rows))[:SAMPLES_PER_COLUMN]

    def _examples_for(self, model: SemanticModel, dialect: str) -> Examples:
        out: Examples = []
        for question in model.example_questions(EXAMPLES_TRIED):
            try:
                parsed = self.parse(question, model, dialect=dialect)
            except NotUnderstood:
                continue
            if not self.is_low(parsed):
                out.append((question, parsed.sql))
        return out[:EXAMPLES_SHOWN]
