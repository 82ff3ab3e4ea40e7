"""The ask pipeline: question -> NLP -> data -> viz, with progress, errors and cancellation.

:class:`Pipeline` answers one question and reports progress through a callback; it knows
nothing about channels, so the CLI uses it directly. :class:`AskService` runs questions for
connected users: one task per question, progress and the outcome published on
``query:<id>``, history in the metadata store, ``cancel`` interrupting the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Iterator

from .agents.data import DataAgent
from .answer_cache import CachedResult, QueryFlights, ResultCache, ValidatedSQL, result_size
from .agents.nlp import NLPAgent, NotUnderstood
from .agents.nlp.agent import CONFIDENCE_THRESHOLD
from .agents.nlp.llm import LLMFailure
from .agents.viz import Chart, ChartHint, choose_chart
from .protocol import SUBSTAGES, ErrorCode, Stage, dumps
from .warehouse.admission import FairQueue
from .warehouse.base import QueryResult, QueryTimeout, Warehouse, WarehouseError

log = logging.getLogger(__name__)

#: report(stage, substage, overall percent, details, rows_processed)
Reporter = Callable[[str, str, float, str, int], None]

_PERCENT = {sub: pct for subs in SUBSTAGES.values() for sub, pct in subs}
_EXECUTION_START, _EXECUTION_END = _PERCENT["sql_execution"], _PERCENT["result_processing"]


@dataclasses.dataclass
class AskRequest:
    question: str | None = None
    sql: str | None = None
    warehouse: str | None = None
    chart: str | None = None
    #: read the warehouse now: no cached result, no joining a query already running
    fresh: bool = False


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where an answer's rows come from: ``as_of`` (time.time()) when the query that read them
    started; ``cached`` when that query ran for an earlier question (the result cache)."""

    as_of: float
    cached: bool = False
    shared: bool = False  # joined an identical query already running for someone else


class TooManyQueries(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"you already have {limit} questions running; wait or cancel one")
        self.limit = limit


class AskFailed(Exception):
    """A question could not be answered; ``stage`` names where it failed."""

    def __init__(self, stage: Stage, code: str, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.code = str(getattr(code, "value", code))
        self.message = message
        self.suggestions = suggestions or []

    def data(self, query_id: str) -> dict[str, Any]:
        return {
            "query_id": query_id,
            "stage": self.stage.value,
            "code": self.code,
            "message": self.message,
            "suggestions": self.suggestions,
        }


class Pipeline:
    """Answers questions against named warehouses. Stateless apart from agent caches."""

    def __init__(
        self,
        *,
        warehouses: dict[str, Warehouse],
        nlp: NLPAgent,
        data: DataAgent,
        on_internal_error: Callable[[str], None] | None = None,
        viz: Any = None,
        # Admission (a fair queue in front of each warehouse)
        max_concurrent_queries: int = 8,
        max_concurrent_queries_per_user: int = 2,
        progress_interval: float = 0.25,
        # Reuse (answer_cache.py)
        results: ResultCache | None = None,
        single_flight: bool = True,
    ) -> None:
        """``on_internal_error(component)`` is called for every bug caught while answering
        (component: ``nlp``, ``data`` or ``viz``), e.g. to count it in the metrics.

        Each warehouse runs at most ``max_concurrent_queries`` questions at once (fewer when
        its connector can run fewer), at most ``max_concurrent_queries_per_user`` of them one
        user's; the others wait in a fair queue (:mod:`livebi.warehouse.admission`), reported
        as ``queued`` progress and not counted against the query timeout.

        Questions (:meth:`answer`) share executions of identical SQL running at the same moment
        (``single_flight``) and reuse ``results`` while their tables did not change; see
        :mod:`livebi.answer_cache`. :meth:`execute` alone (live refreshes) does neither.

        ``nlp``, ``data`` and ``viz`` may be remote agents (:mod:`livebi.agents.remote`); ``viz``
        None: charts are built in this process.
        """
        if not warehouses:
            raise ValueError("at least one warehouse is required")
        self.warehouses = warehouses
        self.nlp = nlp
        self.data = data
        self.on_internal_error = on_internal_error
        self.viz = viz
        self.results = results if results is not None else ResultCache(max_age_s=0, max_bytes=0, detector_factory=None)
        self.flights = QueryFlights() if single_flight else None
        self._admission = {
            name: FairQueue(
                slots=max(1, min(max_concurrent_queries, wh.max_concurrent_queries or max_concurrent_queries)),
                per_user=max(1, max_concurrent_queries_per_user),
                report_interval=progress_interval,
            )
            for name, wh in warehouses.items()
        }

    @property
    def default_warehouse(self) -> str:
        return next(iter(self.warehouses))

    def warehouse(self, name: str | None) -> Warehouse:
        name = name or self.default_warehouse
        try:
            return self.warehouses[name]
        except KeyError:
            raise AskFailed(
                Stage.nlp_processing,
                ErrorCode.unknown_warehouse,
                f"no warehouse named {name!r}",
                [f"use one of: {', '.join(self.warehouses)}"],
            ) from None

    async def examples(self, warehouse: str | None, n: int = 6) -> list[str]:
        model = await self.nlp.model_for(self.warehouse(warehouse))
        return model.example_questions(n)

    async def answer(self, query_id: str, req: AskRequest, report: Reporter, *, user_id: str = "") -> dict[str, Any]:
        """Answer ``req`` for ``user_id``; returns the ``result`` data.

        Raises AskFailed (or CancelledError)."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        progress = _Monotonic(report)
        with self._stage(Stage.nlp_processing, query_id):
            wh = self.warehouse(req.warehouse)
            sql, parsed, engine = await self.translate(req, wh, progress)
        timings["nlp"] = _ms(started)
        t_data = time.perf_counter()
        with self._stage(Stage.data_processing, query_id):
            try:
                sql, result, source = await self.execute_shared(sql, wh, user_id=user_id, progress=progress, fresh=req.fresh)
            except AskFailed as failure:
                if engine != "llm" or failure.code != ErrorCode.query_failed.value:
                    raise
                # the LLM's SQL passed validation but the engine refused it: one repair round
                # with the database's own message (the new SQL is validated again by execute)
                parsed = await self._repair(req, wh, parsed, failure, progress)
                sql, engine = parsed.sql, parsed.engine
                sql, result, source = await self.execute_shared(sql, wh, user_id=user_id, progress=progress, fresh=req.fresh)
        timings["data"] = _ms(t_data)
        t_viz = time.perf_counter()
        with self._stage(Stage.visualization, query_id):
            chart, warnings = await self.visualize(query_id, req, result, parsed, progress)
        timings["viz"] = _ms(t_viz)
        timings["total"] = _ms(started)
        return result_data(query_id, req, wh.name, engine, sql, parsed, result, chart, warnings, timings,
                           low_below=self.nlp.confidence_threshold, source=source)

    @contextlib.contextmanager
    def _stage(self, stage: Stage, query_id: str) -> Iterator[None]:
        """Report a bug inside ``stage`` as ``internal`` naming the stage (logged with its
        traceback and counted), never disguised as "not understood"."""
        try:
            yield
        except (asyncio.CancelledError, AskFailed):
            raise
        except Exception as exc:
            log.exception("question %s failed in %s", query_id, stage.value)
            self._internal_error(_COMPONENT[stage])
            raise AskFailed(stage, ErrorCode.internal, f"internal error: {type(exc).__name__}") from None

    async def translate(
        self, req: AskRequest, wh: Warehouse, progress: Callable[..., None] = lambda *a, **k: None
    ) -> tuple[str, Any, str]:
        """The SQL for ``req`` (the user's own, or the NLP agent's): ``(sql, parsed, engine)``,
        ``parsed`` None for SQL the user wrote. Raises AskFailed (nlp_processing)."""
        stage = Stage.nlp_processing
        if req.sql is not None:
            if not req.sql.strip():
                raise AskFailed(stage, ErrorCode.invalid_sql, "the SQL is empty")
            progress(stage, "sql_generation", "Using the SQL you wrote", 0)
            return req.sql, None, "sql"
        progress(stage, "intent_extraction", "Analyzing question intent…", 0)
        model = await self.nlp.model_for(wh)
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def on_substage(substage: str, pct: int, detail: str) -> None:
            overall = _within(substage, pct)
            if threading.get_ident() == loop_thread:  # the LLM engine reports on the loop
                progress(Stage.nlp_processing, substage, detail, 0, overall)
            else:  # the parser reports from its worker thread
                loop.call_soon_threadsafe(progress, Stage.nlp_processing, substage, detail, 0, overall)

        try:  # the offline parser (in a worker thread) and/or the LLM, as configured
            parsed = await self.nlp.answer(req.question or "", model, wh, on_substage=on_substage)
        except NotUnderstood as exc:
            raise AskFailed(stage, exc.code, exc.message, exc.suggestions) from None
        return parsed.sql, parsed, parsed.engine

    async def _repair(self, req: AskRequest, wh: Warehouse, parsed: Any, failure: AskFailed,
                      progress: Callable[..., None]) -> Any:
        """The NLP agent's new answer after the LLM's SQL failed on ``wh`` (``failure``);
        raises ``failure`` when there is none."""
        progress(Stage.data_processing, "sql_validation", "The database refused the LLM's query; asking it to repair…", 0)
        model = await self.nlp.model_for(wh)
        try:
            return await self.nlp.repair(req.question or "", parsed, failure.message, model, wh)
        except LLMFailure as again:
            failure.message = f"{failure.message} (the LLM could not repair it: {again.reason})"
            raise failure from None

    async def execute(
        self, sql: str, wh: Warehouse, *, user_id: str, progress: Callable[..., None] = lambda *a, **k: None
    ) -> tuple[str, QueryResult]:
        """Validate ``sql`` (read-only SELECT, known tables) and run it when a fair-queue slot
        is free: ``(normalized sql, result)``. Raises AskFailed (data_processing)."""
        validated = await self._validate(sql, wh, progress)
        return validated.sql, await self._run(validated.sql, wh, user_id=user_id, progress=progress)

    async def execute_shared(
        self, sql: str, wh: Warehouse, *, user_id: str, progress: Callable[..., None] = lambda *a, **k: None,
        fresh: bool = False,
    ) -> tuple[str, QueryResult, Provenance]:
        """:meth:`execute` for a question: a result from the result cache while its tables did
        not change, else the run of identical SQL already running (single flight), else a run
        of its own. ``fresh``: neither, the warehouse is read now (and the cache refreshed).
        Returns ``(normalized sql, result, provenance)``; raises AskFailed (data_processing)."""
        validated = await self._validate(sql, wh, progress)
        data = self.data
        key = (wh.name, validated.sql, data.row_cap, data.max_result_bytes, data.max_value_chars)
        cache = self.results
        cacheable = validated.cacheable and cache.enabled
        if cacheable and not fresh:
            entry = cache.get(key)
            if entry is not None:
                return validated.sql, self._from_cache(entry, wh, progress), Provenance(entry.as_of, cached=True)
        if cacheable:
            cache.prepare(wh.name, validated.tables)
        generation = cache.generation(wh.name)

        async def run(report: Callable[..., None]) -> tuple[QueryResult, float]:
            started, as_of = time.monotonic(), time.time()
            result = await self._run(validated.sql, wh, user_id=user_id, progress=report)
            if cacheable:
                cache.put(key, validated.tables, result, started=started, as_of=as_of, generation=generation,
                          size=result_size(result))
            return result, as_of

        if fresh or self.flights is None:
            result, as_of = await run(progress)
            return validated.sql, result, Provenance(as_of)
        try:
            # a change signalled since a flight started puts later askers on a new one
            (result, as_of), joined = await self.flights.run((key, generation), run, progress)
        except AskFailed as failure:  # each asker its own copy (a repair edits the message)
            raise AskFailed(failure.stage, failure.code, failure.message, list(failure.suggestions)) from None
        return validated.sql, result, Provenance(as_of, shared=joined)

    async def _validate(self, sql: str, wh: Warehouse, progress: Callable[..., None]) -> ValidatedSQL:
        progress(Stage.data_processing, "sql_validation", "Validating SQL (read-only SELECT, known tables)…", 0)
        try:
            return await self.data.check(sql, wh)
        except WarehouseError as exc:
            raise AskFailed(Stage.data_processing, exc.code, exc.message, list(getattr(exc, "suggestions", []) or [])) from None

    def _from_cache(self, entry: CachedResult, wh: Warehouse, progress: Callable[..., None]) -> QueryResult:
        result = entry.result
        age = entry.age_s(time.time())
        note = " (cut at the row cap)" if result.truncated else ""
        progress(Stage.data_processing, "result_processing",
                 f"{result.row_count:,} rows{note} from the result cache: read from {wh.name} {age:.0f} s ago, "
                 "no change to its tables since", result.row_count)
        return result

    async def _run(self, sql: str, wh: Warehouse, *, user_id: str, progress: Callable[..., None]) -> QueryResult:
        """Run validated ``sql`` when a fair-queue slot is free. Raises AskFailed."""
        stage = Stage.data_processing

        def on_engine(substage: str, fraction: float, details: str, rows: int) -> None:
            pct = None if fraction < 0 else _EXECUTION_START + (_EXECUTION_END - _EXECUTION_START - 1) * fraction
            progress(Stage.data_processing, substage, details, rows, pct)

        def on_wait(ahead: int) -> None:
            who = "next in line" if ahead == 0 else "1 query ahead" if ahead == 1 else f"{ahead} queries ahead"
            progress(Stage.data_processing, "queued", f"Waiting for a free slot on {wh.name}: {who}…", 0)

        try:
            async with self._admission[wh.name].slot(user_id, on_wait):
                progress(stage, "sql_execution", f"Executing SQL on {wh.name}…", 0)
                result = await self.data.run(sql, wh, on_engine)
        except QueryTimeout as exc:
            raise AskFailed(stage, exc.code, exc.message, ["add a filter or a shorter period", "ask for fewer groups"]) from None
        except WarehouseError as exc:
            raise AskFailed(stage, exc.code, exc.message) from None
        note = " (cut at the row cap)" if result.truncated else ""
        progress(stage, "result_processing", f"{result.row_count:,} rows returned{note}", result.row_count)
        return result

    async def visualize(
        self, query_id: str, req: AskRequest, result: QueryResult, parsed: Any,
        progress: Callable[..., None] = lambda *a, **k: None,
    ) -> tuple[Chart, list[str]]:
        """The chart for ``result`` and any warnings. A bug in the viz agent must not lose the
        data: it is logged and counted, and the rows are shown as a table saying why."""
        stage = Stage.visualization
        warnings: list[str] = []
        progress(stage, "chart_selection", "Choosing the chart from the result's shape…", result.row_count)
        hint = _hint(parsed.chart_hint if parsed else {})
        try:
            if self.viz is not None:  # a remote viz agent
                chart = await self.viz.chart(req.question or "", result, hint, requested=req.chart)
            elif small_result(result.row_count, len(result.columns)):
                chart = choose_chart(req.question or "", result, hint, requested=req.chart)
            else:
                chart = await asyncio.to_thread(choose_chart, req.question or "", result, hint, requested=req.chart)
        except AskFailed as failure:  # the remote viz agent is unavailable: the rows still count
            chart = Chart(type="table", title=req.question or "", figure=None, kpi=None,
                          reason="The chart service is unavailable, so the rows are shown as a table.")
            warnings.append(f"could not build the chart ({failure.code}); showing the rows as a table")
        except Exception as exc:
            log.exception("visualization failed for %s", query_id)
            self._internal_error("viz")
            chart = Chart(
                type="table", title=req.question or "", figure=None, kpi=None,
                reason="The chart could not be built, so the rows are shown as a table.",
            )
            warnings.append(f"could not build the chart ({type(exc).__name__}); showing the rows as a table")
        progress(stage, "chart_generation", f"Built a {chart.type} chart", result.row_count)
        return chart, warnings

    def _internal_error(self, component: str) -> None:
        if self.on_internal_error is not None:
            self.on_internal_error(component)


def result_data(
    query_id: str, req: AskRequest, warehouse: str, engine: str, sql: str, parsed: Any,
    result: QueryResult, chart: Chart, warnings: list[str], timings: dict[str, float],
    low_below: float = CONFIDENCE_THRESHOLD, source: Provenance | None = None,
) -> dict[str, Any]:
    """The ``result`` publication's data (``low_below``: the confidence under which the answer
    is flagged ``low_confidence``; ``source``: where the rows come from, None: read just now)."""
    cached = source is not None and source.cached
    as_of = source.as_of if source is not None else None
    return {
        "query_id": query_id,
        "question": req.question,
        "warehouse": warehouse,
        "engine": engine,
        "sql": sql,
        "explanation": parsed.explanation if parsed else "",
        "assumptions": list(parsed.assumptions) if parsed else [],
        "alternatives": list(parsed.alternatives) if parsed else [],
        "confidence": parsed.confidence if parsed else None,
        "confidence_reasons": list(parsed.confidence_reasons) if parsed else [],
        "low_confidence": bool(parsed and parsed.confidence < low_below),
        "columns": result.columns,
        "column_kinds": list(result.column_kinds),
        "rows": result.rows,
        "row_count": result.row_count,
        "truncated": result.truncated,
        "chart": chart.to_dict(),
        "warnings": warnings,
        "timings_ms": timings,
        "cached": cached,
        "as_of": _iso(as_of) if as_of is not None else None,
        "cache_age_s": round(max(0.0, time.time() - as_of), 1) if cached and as_of is not None else None,
    }


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds")


class _Monotonic:
    """Forwards progress reports, never letting the overall percent go backwards."""

    def __init__(self, report: Reporter) -> None:
        self._report = report
        self.percent = 0.0

    def __call__(self, stage: Stage, substage: str, details: str, rows: int, percent: float | None = None) -> None:
        if percent is None:
            percent = _PERCENT.get(substage, self.percent)
        self.percent = max(self.percent, min(99.0, float(percent)))
        self._report(stage.value, substage, round(self.percent, 1), details, rows)


#: Results of at most this many cells (rows x columns) are charted, and copied for the store, on
#: the event loop: that takes under half a millisecond, less than the hop to a worker thread,
#: which with 20 askers waited 10-50 ms for a thread busy with other questions' parsing and
#: validation (benchmarks/askers.py). Larger results still go to a thread.
INLINE_CELLS = 500


def small_result(row_count: int, columns: int) -> bool:
    """Whether a result of this shape is cheap enough to chart and copy on the event loop."""
    return row_count * max(1, columns) <= INLINE_CELLS


_ORDER = [sub for subs in SUBSTAGES.values() for sub, _ in subs]
_COMPONENT = {Stage.nlp_processing: "nlp", Stage.data_processing: "data", Stage.visualization: "viz"}


def _within(substage: str, pct: float) -> float | None:
    """Overall percent for ``pct`` percent of the way through ``substage``."""
    if substage not in _PERCENT:
        return None
    start = _PERCENT[substage]
    i = _ORDER.index(substage)
    end = _PERCENT[_ORDER[i + 1]] if i + 1 < len(_ORDER) else 100
    return start + (end - start) * max(0.0, min(100.0, pct)) / 100.0


def _hint(raw: dict[str, Any]) -> ChartHint:
    fields = {f.name for f in dataclasses.fields(ChartHint)}
    return ChartHint(**{k: v for k, v in (raw or {}).items() if k in fields})


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def _as_published(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as subscribers receive it: the JSON the publication carries, parsed back."""
    return json.loads(dumps(data))


def new_query_id() -> str:
    return secrets.token_hex(8)


#: publish(channel, type, data, final=False); ``final`` marks a channel's last publication
PublishFn = Callable[..., Awaitable[Any]]


@dataclasses.dataclass
class _Running:
    task: asyncio.Task[None]
    user_id: str
    finishing: bool = False  # the outcome is decided: cancel no longer applies


class AskService:
    """Runs questions for users and publishes their progress and outcome on ``query:<id>``."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        publish: PublishFn,
        store: Any,
        progress_streaming: bool = True,
        max_concurrent_per_user: int = 4,
        on_finished: Callable[[str, float, str | None], None] | None = None,
    ) -> None:
        """``on_finished(status, seconds, error_code)`` is called as each question ends
        (``error_code`` None unless it ended in an error), e.g. to count it in the metrics."""
        self.pipeline = pipeline
        self._publish = publish
        self._store = store
        self.progress_streaming = progress_streaming
        self.max_concurrent_per_user = max_concurrent_per_user
        self._on_finished = on_finished
        self._running: dict[str, _Running] = {}
        self._owners: OrderedDict[str, str] = OrderedDict()  # recent query_id -> user_id
        self._reserved: dict[str, int] = {}  # user_id -> asks between the limit check and their task

    def running_count(self, user_id: str | None = None) -> int:
        if user_id is None:
            return len(self._running) + sum(self._reserved.values())
        return sum(1 for r in self._running.values() if r.user_id == user_id) + self._reserved.get(user_id, 0)

    async def start(self, user_id: str, req: AskRequest) -> str:
        """Record and launch a question; returns its ``query_id`` at once.

        Raises:
            TooManyQueries: the user already has ``max_concurrent_per_user`` running.
        """
        # Take the slot before the first await so concurrent asks cannot all pass the check.
        if self.running_count(user_id) >= self.max_concurrent_per_user:
            raise TooManyQueries(self.max_concurrent_per_user)
        self._reserved[user_id] = self._reserved.get(user_id, 0) + 1
        try:
            query_id = new_query_id()
            wh_name = req.warehouse or self.pipeline.default_warehouse
            await self._store.record_query(query_id=query_id, user_id=user_id, question=req.question, sql=req.sql, warehouse=wh_name)
            self._remember_owner(query_id, user_id)
            task = asyncio.create_task(self._run(query_id, req, user_id), name=f"ask-{query_id}")
            self._running[query_id] = _Running(task, user_id)
            task.add_done_callback(lambda _t: self._running.pop(query_id, None))
        finally:
            self._reserved[user_id] -= 1
            if not self._reserved[user_id]:
                del self._reserved[user_id]
        return query_id

    async def owner(self, query_id: str) -> str | None:
        owner = self._owners.get(query_id)
        if owner is None:
            owner = await self._store.query_owner(query_id)
        return owner

    async def cancel(self, query_id: str) -> bool:
        """Interrupt a running question; False when it is not running (any more)."""
        running = self._running.get(query_id)
        if running is None or running.finishing:
            # Over, or its outcome (result, error, timeout) is being stored and published:
            # cancelling now would interrupt the bookkeeping, not the query.
            return False
        running.task.cancel()
        # Wait (bounded) for the engine to stop and the error to be published. asyncio.wait
        # never raises the task's outcome, so only the caller's own cancellation gets through.
        await asyncio.wait({running.task}, timeout=5)
        return True

    async def shutdown(self) -> None:
        tasks = [r.task for r in self._running.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, query_id: str, req: AskRequest, user_id: str) -> None:
        channel = f"query:{query_id}"
        started = time.perf_counter()
        pending: set[asyncio.Task[Any]] = set()
        stage_now = {"stage": Stage.nlp_processing.value, "final": False}

        def report(stage: str, substage: str, percent: float, details: str, rows: int) -> None:
            # A worker thread of a cancelled question may still report: once the outcome is
            # decided nothing more goes out, so `error`/`result` is always the last message.
            if stage_now["final"]:
                return
            stage_now["stage"] = stage
            if not self.progress_streaming:
                return
            data = {
                "query_id": query_id,
                "stage": stage,
                "substage": substage,
                "progress": percent,
                "details": details,
                "rows_processed": rows,
            }
            # Publishing is synchronous for the memory broker; a task keeps order for others.
            task = asyncio.ensure_future(self._publish(channel, "progress", data))
            pending.add(task)
            task.add_done_callback(pending.discard)

        try:
            try:
                result = await self.pipeline.answer(query_id, req, report, user_id=user_id)
            finally:
                stage_now["final"] = True
                running = self._running.get(query_id)
                if running is not None:
                    running.finishing = True
        except asyncio.CancelledError:
            # Our own task was cancelled (cancel op or shutdown): report it, then stop.
            failure = AskFailed(Stage(stage_now["stage"]), ErrorCode.cancelled, "the question was cancelled")
            await self._finish(channel, query_id, "error", failure.data(query_id), pending, "cancelled", {"error": failure.data(query_id)}, started)
            return
        except AskFailed as failure:
            await self._finish(channel, query_id, "error", failure.data(query_id), pending, "error", {"error": failure.data(query_id)}, started)
            return
        extra = {"sql": result["sql"], "engine": result["engine"], "row_count": result["row_count"]}
        await self._finish(channel, query_id, "result", result, pending, "done", extra, started)

    async def _finish(self, channel, query_id, type_, data, pending, status, extra, started) -> None:
        """Store the outcome, free the user's slot, then publish: a client reacting to the
        publication (reading its history, asking again, fetching the stored result) must find
        the question over. A result is stored as it is published (JSON, bounded like every
        result by max_result_bytes), so a reload or a share recipient can open it later."""
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        elapsed = _ms(started)
        try:
            if type_ == "result":
                # Exactly the JSON subscribers get (dates, numpy values... as dumps renders them),
                # serialized off the event loop unless small: a result may be megabytes.
                if small_result(data["row_count"], len(data["columns"])):
                    published = _as_published(data)
                else:
                    published = await asyncio.to_thread(_as_published, data)
                extra = {**extra, "result": published}
            await self._store.finish_query(query_id, status=status, elapsed_ms=elapsed, **extra)
        except Exception:
            # The store failing must not also lose the answer the user waits for.
            log.exception("could not record the outcome of %s", query_id)
        self._running.pop(query_id, None)
        await self._publish(channel, type_, data, final=True)
        if self._on_finished:
            code = data.get("code") if type_ == "error" else None
            self._on_finished(status, elapsed / 1000, getattr(code, "value", code))  # ErrorCode or str

    def _remember_owner(self, query_id: str, user_id: str) -> None:
        self._owners[query_id] = user_id
        while len(self._owners) > 10_000:
            self._owners.popitem(last=False)
