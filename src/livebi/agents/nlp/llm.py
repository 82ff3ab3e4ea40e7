"""The LLM engine: question -> SQL through an OpenAI-compatible chat-completions endpoint.

Works with anything that speaks ``POST {base_url}/chat/completions`` (OpenAI, Kimi, Ollama,
vLLM, llama.cpp's server...). The model is never trusted blindly:

1. the prompt carries the part of the semantic model the question needs, as the best published
   text-to-SQL systems do (schema linking): the tables whose names, columns or indexed values
   the question's words match (through the parser's own linker), the tables that join them
   (shortest foreign-key paths), their columns with types, keys and sample values (the
   matched values first), the foreign keys as join conditions, the semantic layer's metrics
   and synonyms, a few example questions with the SQL the parser is sure of, the dialect and
   today's date. A small schema is described whole; when no word links, the tables most
   likely to matter come first, cut to a size budget, so a 100-table schema still fits;
2. the SQL is taken out of the reply (a fenced code block, a JSON ``{"sql": ...}``, or the text
   from the first ``SELECT``/``WITH``), ignoring ``<think>`` sections of reasoning models;
3. it must pass :func:`~livebi.warehouse.safety.validate_select` against the schema (one
   read-only query over tables and columns that exist);
4. when it does not parse or names something unknown, the validation error goes back to the
   model for **one** repair round; a write or multi-statement reply is refused at once;
5. anything else (timeout, HTTP error, malformed JSON, no SQL, still invalid) raises
   :class:`LLMFailure`, and the agent answers with the offline parser instead, saying why;
6. when the validated SQL then fails on the warehouse, :meth:`LLMEngine.repair` sends the
   database's error message back for **one** more attempt, validated again (the pipeline
   calls it, see :meth:`livebi.pipeline.Pipeline.answer`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
from typing import Callable

import httpx

from livebi.warehouse.base import WarehouseError
from livebi.warehouse.safety import MAX_SQL_CHARS, MAX_SQL_DEPTH, validate_select

from . import lexicon as lx
from .intent import extract_intent
from .linker import correct_spelling
from .linker import link as link_mentions
from .model import SemanticModel
from .normalize import tokenize

SubstageCallback = Callable[[str, int, str], None]

#: Characters of schema description sent at most (about 8k tokens); the rest is named only.
PROMPT_BUDGET_CHARS = 24_000
VALUES_SHOWN = 12
#: A schema whose full description is this short is sent whole (linking could only lose recall).
SMALL_SCHEMA_CHARS = 3_000
LINKS_PER_MENTION = 3  # tables a vague word ("name") may bring in at most
#: (question, SQL) pairs shown to the model, e.g. written by the offline parser for this schema
Examples = list[tuple[str, str]]
#: (table, column) -> a few distinct values, for linked columns the value index does not hold
Samples = dict[tuple[str, str], list[str]]
_REFUSED_CODES = {"forbidden_sql", "multiple_statements"}
_DIALECT_NOTES = {
    "sqlite": "SQLite: dates are ISO text ('2024-03-31'); use strftime('%Y-%m-01', col) and "
              "date(col) for periods, never DATE_TRUNC; compare dates as text ('2024-01-01').",
    "duckdb": "DuckDB: DATE_TRUNC('month', col) buckets dates; CAST('2024-01-01' AS DATE) for literals.",
    "postgres": "PostgreSQL: DATE_TRUNC('month', col)::date buckets dates; DATE '2024-01-01' for literals.",
}


class LLMFailure(Exception):
    """The LLM gave no usable SQL; ``reason`` is a few words for the user ("timeout")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass
class LLMAnswer:
    sql: str  # validated and normalized
    explanation: str
    attempts: int  # 1, or 2 after a repair round
    repaired_from: str | None = None  # the validation error that was repaired


class LLMEngine:
    """One chat-completions endpoint; safe to share between concurrent questions."""

    def __init__(self, *, base_url: str, model: str, api_key: str = "", timeout_s: float = 30.0,
                 prompt_budget_chars: int = PROMPT_BUDGET_CHARS, max_sql_chars: int = MAX_SQL_CHARS,
                 max_sql_depth: int = MAX_SQL_DEPTH) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.prompt_budget_chars = prompt_budget_chars
        self.max_sql_chars = max_sql_chars
        self.max_sql_depth = max_sql_depth
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def generate(self, question: str, model: SemanticModel, *, dialect: str, today: dt.date,
                       report: SubstageCallback, samples: Samples | None = None,
                       examples: Examples | None = None) -> LLMAnswer:
        """Ask for SQL answering ``question``, validated against ``model.schema``.

        Raises:
            LLMFailure: no valid read-only SELECT came back (after at most one repair round).
        """
        report("intent_extraction", 0, f"preparing the prompt for {self.model}")
        messages, shown = await self._opening(question, model, dialect, today, samples, examples)
        report("schema_linking", 100, f"described {shown} table{'s' if shown != 1 else ''} to the LLM")
        report("llm_request", 0, f"waiting for {self.model}…")
        reply = await self._complete(messages)
        report("sql_generation", 0, "checking the LLM's SQL")
        try:
            return await self._checked(reply, model, dialect, attempts=1)
        except _Invalid as invalid:
            if invalid.refused:
                raise LLMFailure(invalid.message) from None
            problem = invalid.message
        report("llm_request", 50, f"asking {self.model} to repair: {problem}")
        answer = await self._repaired(messages, reply, problem, model, dialect, attempts=2)
        answer.repaired_from = problem
        return answer

    async def repair(self, question: str, model: SemanticModel, *, sql: str, error: str, dialect: str,
                     today: dt.date, report: SubstageCallback, samples: Samples | None = None,
                     examples: Examples | None = None) -> LLMAnswer:
        """One more attempt after ``sql`` (the LLM's, validated) failed on the warehouse with
        ``error``: the same prompt, the query as the model's reply, then the database's message.

        Raises:
            LLMFailure: the new reply is not a valid read-only SELECT either.
        """
        messages, _ = await self._opening(question, model, dialect, today, samples, examples)
        report("llm_request", 50, f"asking {self.model} to repair: {error}")
        answer = await self._repaired(messages, f"```sql\n{sql}\n```", f"the database says: {error}",
                                      model, dialect, attempts=2)
        answer.repaired_from = error
        return answer

    async def _opening(self, question: str, model: SemanticModel, dialect: str, today: dt.date,
                       samples: Samples | None, examples: Examples | None) -> tuple[list[dict[str, str]], int]:
        # linking parses the question and describes tables: CPU work, off the event loop
        system, user, shown = await asyncio.to_thread(
            build_prompt, question, model, dialect=dialect, today=today, budget=self.prompt_budget_chars,
            samples=samples, examples=examples)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}], shown

    async def _repaired(self, messages: list[dict[str, str]], reply: str, problem: str, model: SemanticModel,
                        dialect: str, *, attempts: int) -> LLMAnswer:
        messages = messages + [{"role": "assistant", "content": reply},
                               {"role": "user", "content": repair_prompt(problem)}]
        reply = await self._complete(messages)
        try:
            return await self._checked(reply, model, dialect, attempts=attempts)
        except _Invalid as again:
            raise LLMFailure(again.message if again.refused else f"still invalid after a repair: {again.message}") from None

    async def _checked(self, reply: str, model: SemanticModel, dialect: str, *, attempts: int) -> LLMAnswer:
        sql, explanation = extract_sql(reply)
        if sql is None and "NO_SQL" in reply:
            raise _Invalid("it declined (the question asks for something other than reading data)", refused=True)
        if sql is None:
            raise _Invalid("no SQL in the reply")
        try:
            # CPU-bound on a long reply: off the event loop, like every other validation
            validated = await asyncio.to_thread(
                validate_select, sql, dialect=dialect, schema=model.schema,
                max_chars=self.max_sql_chars, max_depth=self.max_sql_depth,
            )
        except WarehouseError as exc:
            if exc.code in _REFUSED_CODES:
                raise _Invalid(f"refused its SQL ({exc.message})", refused=True) from None
            raise _Invalid(exc.message) from None
        return LLMAnswer(validated, explanation or f"SQL written by {self.model}", attempts)

    async def _complete(self, messages: list[dict[str, str]]) -> str:
        payload = {"model": self.model, "messages": messages, "temperature": 0}
        try:
            # httpx times each socket operation; the deadline covers the whole exchange
            async with asyncio.timeout(self.timeout_s):
                async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                    response = await client.post(self.url, json=payload, headers=self._headers)
        except (TimeoutError, httpx.TimeoutException):
            raise LLMFailure("timeout") from None
        except httpx.HTTPError as exc:
            raise LLMFailure(f"unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise LLMFailure(f"HTTP {response.status_code}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMFailure("malformed reply") from None
        if not isinstance(content, str) or not content.strip():
            raise LLMFailure("empty reply")
        return content


class _Invalid(Exception):
    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


# -- reading the reply ------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n?(.*?)```", re.S)
# a statement at the start of a line: writes are picked up too, so that validation refuses
# them (rather than the reply passing for "no SQL" and earning a repair round)
_KEYWORDS = r"SELECT|WITH|INSERT|UPDATE|DELETE|DROP|ALTER|CREATE|TRUNCATE|REPLACE|MERGE|PRAGMA|ATTACH|COPY|GRANT|SET"
_LINE_START = re.compile(rf"(?im)^[ \t]*({_KEYWORDS})\b")
_ANY_SELECT = re.compile(r"(?i)\bSELECT\b")
_STATEMENT = re.compile(rf"(?i)\s*({_KEYWORDS})\b")


def extract_sql(reply: str) -> tuple[str | None, str]:
    """``(sql, explanation)`` from a model's reply; ``sql`` is None when there is none.

    Accepts a fenced block (```sql ... ```, the ``sql``-tagged one first), a JSON object with a
    ``sql`` key, or bare SQL starting at the first ``SELECT``/``WITH`` and ending at a ``;`` or
    a blank line. The explanation is the first sentence or two of the remaining prose.
    """
    text = _THINK.sub("", reply or "").strip()
    sql: str | None = None
    prose = text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("sql"), str):
        return _clean(data["sql"]), str(data.get("explanation") or "")[:300]
    fences = _FENCE.findall(text)
    if fences:
        tagged = [body for tag, body in fences if tag.lower() in {"sql", "postgresql", "sqlite", "duckdb"}]
        bodies = tagged or [body for _, body in fences]
        sql = next((b for b in bodies if b.strip()), None)
        prose = _FENCE.sub(" ", text)
    else:
        match = _LINE_START.search(text) or _ANY_SELECT.search(text)
        if match:
            rest = text[match.start():].lstrip()
            blank = re.search(r"\n\s*\n", rest)
            block = rest[: blank.start()] if blank else rest
            semi = block.find(";")
            if semi >= 0 and not _STATEMENT.match(block[semi + 1:]):
                block = block[:semi]  # "SELECT ...; This query counts": prose after the statement
            sql = block
            prose = text[: match.start()] + " " + rest[len(block):].lstrip(";")
    return (_clean(sql) if sql and sql.strip() else None), _first_sentences(prose)


def _clean(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def _first_sentences(prose: str, limit: int = 300) -> str:
    words = " ".join(prose.split())
    sentences = re.split(r"(?<=[.!?])\s+", words)
    out = " ".join(s for s in sentences[:2] if s)
    return out[:limit].strip()


def repair_prompt(error: str) -> str:
    return (f"That query cannot run: {error}. Reply with a corrected query: one read-only SELECT "
            "in a ```sql code block, using only the tables and columns listed.")


# -- the prompt -------------------------------------------------------------------------------


def build_prompt(question: str, model: SemanticModel, *, dialect: str, today: dt.date,
                 budget: int = PROMPT_BUDGET_CHARS, samples: Samples | None = None,
                 examples: Examples | None = None) -> tuple[str, str, int]:
    """The system and user messages, and how many tables were described in full.

    Described: every table when the schema is small, else the tables :func:`link_schema`
    finds for the question (with the tables joining them), else the most relevant tables
    within ``budget``. The rest are named only, so the model can tell it lacks something.
    """
    rules = [
        f"You write SQL for a {dialect or 'standard SQL'} database to answer business questions.",
        "Reply with exactly one read-only SELECT statement (WITH ... SELECT is fine) in a ```sql "
        "code block, then one sentence saying what it computes.",
        "Use only the tables and columns listed, spelled exactly as listed, in double quotes.",
        "Join tables only on the foreign keys listed.",
        "Never write INSERT, UPDATE, DELETE, DROP, ALTER, CREATE, PRAGMA, ATTACH or COPY: if the "
        "question asks to change data, reply NO_SQL.",
        "Give result columns short snake_case aliases; put the label column first and order "
        "rankings; limit row listings to 100 rows.",
        f"Today is {today.isoformat()}: resolve relative periods (last quarter, this year, YTD) from it.",
    ]
    if dialect in _DIALECT_NOTES:
        rules.append(_DIALECT_NOTES[dialect])
    system = "\n".join(f"- {r}" if i else r for i, r in enumerate(rules))
    linked = link_schema(question, model)
    everything = {t: describe_table(model, t, linked.values, samples) for t in model.tables}
    if sum(map(len, everything.values())) <= SMALL_SCHEMA_CHARS:
        chosen = list(model.tables)
    elif linked.tables:
        chosen = linked.tables
    else:
        chosen = _tables_by_relevance(question, model)
    blocks, rest, used = [], [], 0
    for table in chosen:
        block = everything[table]
        if used + len(block) > budget and blocks:
            rest.append(table)
            continue
        blocks.append(block)
        used += len(block)
    described = [t for t in chosen if t not in rest]
    rest += [t for t in model.tables if t not in chosen]
    schema = "\n\n".join(blocks)
    joins = _join_lines(model, described)
    if joins:
        schema += "\n\nForeign keys (join on these):\n" + "\n".join(joins)
    if rest:
        schema += "\n\nOther tables of this database (columns not shown): " + ", ".join(f'"{t}"' for t in rest)
    extra = _layer_notes(model)
    if extra:
        schema += "\n\n" + extra
    shown_examples = [(q, sql) for q, sql in (examples or []) if q.strip().lower() != question.strip().lower()]
    if shown_examples:
        schema += "\n\nExamples of questions on this database and their SQL:\n" + "\n".join(
            f"Q: {q}\n```sql\n{sql}\n```" for q, sql in shown_examples)
    user = f"Schema:\n{schema}\n\nQuestion: {question}"
    return system, user, len(blocks)


@dataclasses.dataclass
class LinkedSchema:
    """What the question's words name: tables (the linked ones, then those joining them),
    columns, and the values matched in each column."""

    tables: list[str]
    columns: set[tuple[str, str]]
    values: dict[tuple[str, str], list[str]]


def link_schema(question: str, model: SemanticModel, *, today: dt.date | None = None) -> LinkedSchema:
    """Schema linking with the parser's own linker (spelling fixes, phrases, value index).

    A word linked to many tables ("name") keeps its best few; the tables are then connected
    by the shortest foreign-key paths from the one most words link to (the fact table on a
    tie), so the model is shown every table a join needs and no other.
    """
    tokens = tokenize(question)
    correct_spelling(tokens, model)

    def is_schema_phrase(start: int, length: int) -> bool:
        phrase = tuple(t.norm for t in tokens[start:start + length])
        return len(phrase) == length and phrase in model.phrases

    intent = extract_intent(tokens, today or dt.date.today(), is_schema_phrase=is_schema_phrase)
    weight: dict[str, float] = {}
    columns: set[tuple[str, str]] = set()
    values: dict[tuple[str, str], list[str]] = {}
    for mention in link_mentions(tokens, intent.consumed, model):
        links = [lk for lk in mention.links if lk.table in model.tables]
        if not links:
            continue
        best = max(lk.score for lk in links)
        kept: list[str] = []
        for lk in sorted(links, key=lambda lk: -lk.score):
            if lk.score < best - 0.1 or (lk.table not in kept and len(kept) >= LINKS_PER_MENTION):
                continue
            if lk.table not in kept:
                kept.append(lk.table)
            weight[lk.table] = weight.get(lk.table, 0.0) + lk.score
            if lk.column:
                columns.add((lk.table, lk.column))
                if lk.kind == "value" and lk.value is not None:
                    values.setdefault((lk.table, lk.column), []).append(lk.value)
    if not weight:
        return LinkedSchema([], columns, values)
    anchor = max(weight, key=lambda t: (weight[t], t == model.fact_table, t))
    tables = [anchor] + sorted((t for t in weight if t != anchor), key=lambda t: (-weight[t], t))
    paths = model.paths_from(anchor, directed=False)
    for table in list(tables[1:]):
        for edge, _ in paths.get(table, []):
            for step in (edge.child, edge.parent):
                if step not in tables:
                    tables.append(step)
    return LinkedSchema(tables, columns, values)


def _join_lines(model: SemanticModel, tables: list[str]) -> list[str]:
    shown = set(tables)
    lines = []
    for edge in model.edges:
        if edge.child in shown and edge.parent in shown:
            pairs = zip(edge.child_cols, edge.parent_cols)
            lines.append(" AND ".join(f'"{edge.child}"."{c}" = "{edge.parent}"."{p}"' for c, p in pairs))
    return lines


def describe_table(model: SemanticModel, table: str, matched: dict[tuple[str, str], list[str]] | None = None,
                   samples: Samples | None = None) -> str:
    """One table for the prompt: name, human name, rows, then one line per visible column
    with its key, meaning and sample values (the values the question matched first)."""
    info = model.tables[table]
    spec = model.layer.tables.get(table) if model.layer else None  # the semantic layer's words
    rows = f"; {info.row_count:,} rows" if info.row_count is not None else ""
    also = f"; also called {_quoted(spec.synonyms)}" if spec and spec.synonyms else ""
    lines = [f'table "{table}" ({info.human}{also}{rows})']
    keys = {c: e for e in model.parents(table) for c in e.child_cols}
    for col in info.columns.values():
        if col.role == "hidden":
            continue
        notes = []
        if col.name in info.primary_key:
            notes.append("primary key")
        if col.name in keys:
            edge = keys[col.name]
            notes.append(f'-> "{edge.parent}"."{edge.parent_cols[edge.child_cols.index(col.name)]}"')
        if col.human != " ".join(lx.identifier_words(col.name)):
            notes.append(f"means {col.human}")
        if col.text_date:
            notes.append("date stored as text")
        col_spec = spec.columns.get(col.name) if spec else None
        if col_spec and col_spec.synonyms:
            notes.append(f"also called {_quoted(col_spec.synonyms)}")
        first = (matched or {}).get((table, col.name), [])
        values = list(dict.fromkeys(first + (model.values.get((table, col.name)) or [])))
        if values:
            shown = ", ".join("'" + v[:40].replace("'", "''") + "'" for v in values[:VALUES_SHOWN])
            more = f" (+{len(values) - VALUES_SHOWN} more)" if len(values) > VALUES_SHOWN else ""
            notes.append(f"values: {shown}{more}")
        elif samples and samples.get((table, col.name)):
            shown = ", ".join("'" + str(v)[:40].replace("'", "''") + "'" for v in samples[(table, col.name)])
            notes.append(f"e.g. {shown}")
        lines.append(f'  "{col.name}" {col.type or col.kind}' + (f" -- {'; '.join(notes)}" if notes else ""))
    metrics = model.layer.metrics if model.layer else {}
    for measure in info.measures:
        metric = metrics.get(measure.label)
        if metric is not None:  # the layer's own SQL: the definition the business agreed on
            about = f" -- {metric.description}" if metric.description else ""
            lines.append(f'  metric "{measure.label}" = {metric.expression}{about}')
        elif measure.derived:
            lines.append(f"  measure {measure.label} = {measure.description}")
    return "\n".join(lines)


def _quoted(words) -> str:
    return ", ".join(f'"{w}"' for w in words)


def _layer_notes(model: SemanticModel) -> str:
    layer = model.layer
    if layer is None or not layer.synonyms:
        return ""
    lines = ["Words used in this business:"]
    lines += [f'- "{word}" means {target}' for word, target in layer.synonyms.items()]
    return "\n".join(lines)


def _tables_by_relevance(question: str, model: SemanticModel) -> list[str]:
    """Tables the question names (or whose values it names) and their neighbours first, then
    the fact table's neighbourhood, then the largest tables."""
    words = [t.norm for t in tokenize(question) if t.kind in {"word", "number", "quoted"}]
    score: dict[str, float] = {name: 0.0 for name in model.tables}
    for size in (3, 2, 1):
        for i in range(len(words) - size + 1):
            phrase = tuple(words[i:i + size])
            if size == 1 and phrase[0] in lx.STOPWORDS:
                continue
            for link in model.phrases.get(phrase, ()) or model.phrases.get(phrase[:-1] + (lx.singular(phrase[-1]),), ()):
                score[link.table] += size
    for name, value in list(score.items()):
        if value > 0:
            for edge in model.parents(name) + model.children(name):
                for other in (edge.parent, edge.child):
                    score[other] = score.get(other, 0.0) + 0.5
    if model.fact_table:
        score[model.fact_table] += 0.25
    return sorted(model.tables, key=lambda t: (-score[t], -(model.tables[t].row_count or 0), t))
