"""The live service: keeps watched dashboards current, once for all their viewers.

A dashboard is *active* on this process while someone here watches it (a subscription to
``dashboard:<id>``) or something keeps it alive (an alert on one of its widgets). Only active
dashboards cost anything: their widgets refresh

- once when the dashboard becomes active or a widget's query is edited (reason ``initial``),
- every ``refresh.interval_s`` seconds (never more often than ``min_interval_s``),
- at once when a table a widget reads changes, for widgets with ``refresh.on_data_change``
  (the change comes from the ingest API or from the warehouse's change detector, which polls
  only the tables active widgets read),
- when someone asks (reason ``manual``).

Each refresh publishes ``dashboard_refresh`` on ``dashboard:<id>``: ``running`` when it starts,
then ``done`` with the result, ``unchanged`` when the result equals the last one sent (the rows
are not sent again), or ``failed`` naming the stage. Identical SQL on the same warehouse runs
once however many widgets, dashboards and viewers want it at that moment (:mod:`.flight`); a
refresh caused by a change never reuses a query that started before the change. The latest
result of each widget is kept (bounded in bytes) so a new viewer sees it at once
(:meth:`LiveService.snapshot`).

Widgets run with the dashboard owner's warehouse access: sharing a dashboard shares the data its
widgets show, like sharing a result. Editors may only point widgets at warehouses they may query
themselves (checked when they edit, :meth:`check_widget_edit`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import time
from typing import Any, Awaitable, Callable, Hashable, Iterable

from ..auth import User
from ..permissions import WarehouseAccess
from ..pipeline import AskFailed, AskRequest, Pipeline, result_data
from ..protocol import ErrorCode, ProtocolError, Stage, dumps
from ..store.dashboards import DashboardStore
from .flight import SingleFlight
from .lease import LocalLeases
from .plan import WidgetQuery, tables_read, widget_queries
from .schedule import Schedule

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (dashboard_id, widget_id)
Publish = Callable[..., Awaitable[None]]
#: on_refreshed(dashboard_id, widget_id, data): after a refresh produced a new result (alerts)
OnRefreshed = Callable[[str, str, dict[str, Any]], Awaitable[None]]
#: detector_factory(warehouse_name, on_change) -> an object with watch(set), start(), stop()
DetectorFactory = Callable[[str, Callable[[set[str]], Awaitable[None]]], Any]

#: The fair-queue identity live refreshes run under: they share slots with users, fairly.
LIVE_USER = "live"
#: An automatic refresh says it runs only once it took this long (manual ones at once).
RUNNING_AFTER_S = 0.3


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


@dataclasses.dataclass
class _Widget:
    query: WidgetQuery
    warehouse: str | None = None  # resolved with the owner's access
    sql: str | None = None  # the SQL the widget runs (translated once per query)
    request: AskRequest | None = None  # what was translated: the question, else the SQL
    parsed: Any = None
    tables: frozenset[str] = frozenset()
    error: AskFailed | None = None  # why it cannot run (shown as a failed refresh)


@dataclasses.dataclass
class _Dashboard:
    id: str
    owner: User | None = None
    widgets: dict[str, _Widget] = dataclasses.field(default_factory=dict)
    loaded: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    loader: asyncio.Task[None] | None = None


@dataclasses.dataclass
class _Pending:
    reason: str
    table: str | None
    not_before: float | None


class LiveService:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        store: DashboardStore,
        access: WarehouseAccess,
        publish: Publish,
        min_interval_s: float = 5.0,
        cache_bytes: int = 256 * 1024 * 1024,
        detector_factory: DetectorFactory | None = None,
        on_refreshed: OnRefreshed | None = None,
        on_internal_error: Callable[[str], None] | None = None,
        on_outcome: Callable[[str, str], None] | None = None,
        on_query: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        leases: Any = None,
    ) -> None:
        """``on_outcome(reason, state)`` and ``on_query()`` feed the metrics. ``leases`` decide
        which node of a cluster refreshes a dashboard (:mod:`.lease`; one node: this one)."""
        self.pipeline = pipeline
        self.store = store
        self.access = access
        self._publish = publish
        self.min_interval_s = min_interval_s
        self.cache_bytes = cache_bytes
        self._detector_factory = detector_factory
        self.on_refreshed = on_refreshed
        self._on_internal_error = on_internal_error
        self._on_outcome = on_outcome
        self._on_query = on_query
        self._clock = clock
        self.leases = leases if leases is not None else LocalLeases()
        if getattr(self.leases, "on_forward", False) is None:
            self.leases.on_forward = self._forwarded
        self.flight = SingleFlight(clock)
        self._viewers: collections.Counter[str] = collections.Counter()
        self._holders: collections.Counter[str] = collections.Counter()
        self._active: dict[str, _Dashboard] = {}
        self._schedule = Schedule()
        self._by_table: dict[tuple[str, str], set[Key]] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._task_started: dict[Key, float] = {}
        self._pending: dict[Key, _Pending] = {}
        self._latest: collections.OrderedDict[Key, tuple[dict[str, Any], int]] = collections.OrderedDict()
        self._latest_bytes = 0
        self._digests: dict[Key, str] = {}
        self._progress: dict[Hashable, float] = {}
        self._detectors: dict[str, Any] = {}
        self._watched: dict[str, frozenset[str]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.dashboards: Any = None  # the DashboardService, for role checks (set by the services)
        #: dashboard id -> ids of widgets with alerts: they refresh every ``alert_interval_s``
        #: when they have no interval of their own, so alerts are checked while nobody watches
        self.alert_widgets: Callable[[], dict[str, set[str]]] = dict
        self.alert_interval_s = 60.0
        #: the latest changes signalled (warehouse, tables), newest last (operators, tests)
        self.last_changes: collections.deque[tuple[str, set[str]]] = collections.deque(maxlen=100)

    # Lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._timer(), name="live-timer")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks.values(), *self._background,
                             *(d.loader for d in self._active.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for detector in self._detectors.values():
            if detector is not None:
                await detector.stop()
        self._detectors.clear()

    # Who watches ------------------------------------------------------------------------------

    def viewer_joined(self, dashboard_id: str) -> None:
        """A connection on this process subscribed to ``dashboard:<id>``."""
        self._viewers[dashboard_id] += 1
        self._activate(dashboard_id)

    def viewer_left(self, dashboard_id: str) -> None:
        if self._viewers.get(dashboard_id, 0) > 1:
            self._viewers[dashboard_id] -= 1
        else:
            self._viewers.pop(dashboard_id, None)
        self._maybe_deactivate(dashboard_id)

    def keep_alive(self, dashboard_id: str, on: bool) -> None:
        """Keep refreshing ``dashboard_id`` while nobody watches (e.g. it has alerts)."""
        if on:
            self._holders[dashboard_id] += 1
            if dashboard_id in self._active:
                self._spawn(self.dashboard_changed(dashboard_id))  # its alert widgets need a timer
            self._activate(dashboard_id)
        else:
            if self._holders.get(dashboard_id, 0) > 1:
                self._holders[dashboard_id] -= 1
            else:
                self._holders.pop(dashboard_id, None)
            self._maybe_deactivate(dashboard_id)

    def viewers(self, dashboard_id: str) -> int:
        return self._viewers.get(dashboard_id, 0)

    def refreshing(self, dashboard_id: str, widget_id: str) -> bool:
        """Whether the widget has a refresh running or waiting to run."""
        key = (dashboard_id, widget_id)
        task = self._tasks.get(key)
        return (task is not None and not task.done()) or key in self._pending

    def is_active(self, dashboard_id: str) -> bool:
        return dashboard_id in self._active

    @property
    def active_count(self) -> int:
        return len(self._active)

    def _activate(self, dashboard_id: str) -> None:
        if dashboard_id in self._active:
            return
        dash = _Dashboard(dashboard_id)
        self._active[dashboard_id] = dash
        dash.loader = asyncio.create_task(self._load(dash, initial=True), name=f"live-load-{dashboard_id}")

    def _maybe_deactivate(self, dashboard_id: str) -> None:
        if self._viewers.get(dashboard_id) or self._holders.get(dashboard_id):
            return
        dash = self._active.pop(dashboard_id, None)
        if dash is None:
            return
        if dash.loader is not None:
            dash.loader.cancel()
        self._schedule.remove_where(lambda key: key[0] == dashboard_id)
        for key in [k for k in self._tasks if k[0] == dashboard_id]:
            self._tasks[key].cancel()  # the shared query goes on for whoever else wants it
        self._pending = {k: v for k, v in self._pending.items() if k[0] != dashboard_id}
        self._reindex()
        self._spawn(self.leases.release(_lease(dashboard_id)))  # another node with viewers takes over

    # Plans ------------------------------------------------------------------------------------

    async def dashboard_changed(self, dashboard_id: str) -> None:
        """The dashboard was edited or deleted: replan it if it is active here."""
        dash = self._active.get(dashboard_id)
        if dash is None:
            return
        if dash.loader is not None and not dash.loader.done():
            dash.loader.cancel()
        dash.loader = asyncio.create_task(self._load(dash, initial=False), name=f"live-load-{dashboard_id}")

    async def _load(self, dash: _Dashboard, *, initial: bool) -> None:
        try:
            row = await self.store.get(dash.id)
            if row is None:  # deleted
                self._forget(dash.id)
                return
            snapshot = row["snapshot"]
            owner = User(id=snapshot["owner"]["id"], username=snapshot["owner"]["username"])
            dash.owner = owner
            old = dash.widgets
            widgets: dict[str, _Widget] = {}
            for query in widget_queries(snapshot):
                before = old.get(query.widget_id)
                if before is not None and before.query.query == query.query and before.error is None:
                    widgets[query.widget_id] = dataclasses.replace(before, query=query)
                else:
                    widgets[query.widget_id] = await self._plan(owner, query)
            if self._active.get(dash.id) is not dash:
                return  # deactivated meanwhile
            dash.widgets = widgets
            now = self._clock()
            for key in [k for k in self._schedule.keys() if k[0] == dash.id and k[1] not in widgets]:
                self._schedule.remove(key)
            for wid in set(old) - set(widgets):
                self._drop_latest((dash.id, wid))
            alerted = self.alert_widgets().get(dash.id, set())
            for wid, widget in widgets.items():
                interval = widget.query.interval_s
                if interval is None and wid in alerted:
                    interval = self.alert_interval_s
                self._schedule.set((dash.id, wid), None if interval is None else max(interval, self.min_interval_s), now)
            self._reindex()
            dash.loaded.set()
            self._wake.set()
            for wid, widget in widgets.items():
                before = old.get(wid)
                edited = before is not None and before.query.query != widget.query.query
                if edited:
                    # a refresh of the old query must neither publish nor absorb the new one
                    running = self._tasks.pop((dash.id, wid), None)
                    if running is not None:
                        running.cancel()
                    self._pending.pop((dash.id, wid), None)
                    self._drop_latest((dash.id, wid))
                if before is None or edited or initial and not self._fresh((dash.id, wid)):
                    self.request(dash.id, wid, "initial")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live: could not load dashboard %s", dash.id)
            self._internal_error("live")

    async def _plan(self, owner: User, query: WidgetQuery) -> _Widget:
        """Resolve the widget's warehouse (with the owner's access), translate its question
        once, and find the tables its SQL reads."""
        widget = _Widget(query)
        try:
            try:
                widget.warehouse = self.access.resolve(owner, query.warehouse)
            except ProtocolError as exc:
                raise AskFailed(Stage.nlp_processing, exc.code, f"the dashboard's owner cannot query this widget's warehouse: {exc.message}") from None
            wh = self.pipeline.warehouse(widget.warehouse)
            # as the dashboard page always did: the question when there is one, else the SQL
            req = AskRequest(question=query.question, sql=None if query.question else query.sql,
                             warehouse=widget.warehouse, chart=query.chart)
            widget.request = req
            sql, parsed, _engine = await self.pipeline.translate(req, wh)
            widget.sql, widget.parsed = sql, parsed
            widget.tables = await asyncio.to_thread(tables_read, sql, wh.dialect)  # unparsable: none
        except AskFailed as exc:
            widget.error = exc
        except Exception:
            log.exception("live: could not plan widget %s/%s", query.dashboard_id, query.widget_id)
            self._internal_error("live")
            widget.error = AskFailed(Stage.nlp_processing, ErrorCode.internal, "internal error; it has been logged")
        return widget

    def _reindex(self) -> None:
        """Rebuild table -> widgets for change routing, and tell each detector what to watch."""
        index: dict[tuple[str, str], set[Key]] = {}
        for dash in self._active.values():
            for wid, widget in dash.widgets.items():
                if widget.query.on_data_change and widget.warehouse:
                    for table in widget.tables:
                        index.setdefault((widget.warehouse, table), set()).add((dash.id, wid))
        self._by_table = index
        wanted: dict[str, set[str]] = collections.defaultdict(set)
        for warehouse, table in index:
            wanted[warehouse].add(table)
        for warehouse in set(wanted) | set(self._watched):
            tables = frozenset(wanted.get(warehouse, ()))
            if self._watched.get(warehouse, frozenset()) == tables:
                continue
            self._watched[warehouse] = tables
            detector = self._detector(warehouse)
            if detector is not None:
                detector.watch(set(tables))

    def _detector(self, warehouse: str) -> Any:
        if self._detector_factory is None:
            return None
        if warehouse not in self._detectors:
            async def on_change(tables: set[str], _warehouse: str = warehouse) -> None:
                await self.data_changed(_warehouse, tables, source="poll")

            try:
                detector = self._detector_factory(warehouse, on_change)
            except ValueError as exc:  # no change detection for this kind of warehouse
                log.warning("live: no change detection on warehouse %s (%s); only ingested rows refresh widgets",
                            warehouse, exc)
                detector = None
            self._detectors[warehouse] = detector
            if detector is not None:
                self._spawn(detector.start())
        return self._detectors[warehouse]

    def writing(self, warehouse: str, tables: set[str]) -> contextlib.AbstractAsyncContextManager[None]:
        """Wrap a write by livebi itself (ingest), which signals its own change: the warehouse's
        change detector must not report it a second time (see ``ChangeDetector.writing``)."""
        detector = self._detectors.get(warehouse)
        return detector.writing(tables) if detector is not None else contextlib.nullcontext()

    def detection_status(self) -> dict[str, Any]:
        """Each warehouse's change detector, as /health shows it to operators."""
        return {name: d.status() for name, d in self._detectors.items() if d is not None}

    def _forget(self, dashboard_id: str) -> None:
        self._viewers.pop(dashboard_id, None)
        self._holders.pop(dashboard_id, None)
        self._maybe_deactivate(dashboard_id)
        for key in [k for k in self._latest if k[0] == dashboard_id]:
            self._drop_latest(key)

    # What starts a refresh --------------------------------------------------------------------

    async def data_changed(self, warehouse: str, tables: Iterable[str], *, source: str) -> int:
        """Rows of ``tables`` in ``warehouse`` changed: refresh the widgets that read them and
        want to hear of it; returns how many were asked to refresh."""
        now = self._clock()
        tables = {t.lower() for t in tables}
        self.last_changes.append((warehouse, tables))
        log.debug("live: %s changed in %s (%s)", ", ".join(sorted(tables)), warehouse, source)
        asked: set[Key] = set()
        for table in sorted(tables):
            for key in sorted(self._by_table.get((warehouse, table), ())):
                if key in asked:
                    continue
                asked.add(key)
                self.request(key[0], key[1], "data_change", table=table, not_before=now)
        return len(asked)

    async def refresh_now(self, dashboard_id: str, widget_id: str | None = None) -> list[str]:
        """A manual refresh of one widget or all of them (the caller checked the role)."""
        dash = self._active.get(dashboard_id)
        if dash is None:
            # nobody watches here: watch it for as long as the refresh takes
            self.keep_alive(dashboard_id, True)
            try:
                dash = self._active[dashboard_id]
                await asyncio.wait_for(dash.loaded.wait(), 30)
                ids = self._request_manual(dash, widget_id)
                await asyncio.gather(*(self._tasks[(dashboard_id, w)] for w in ids if (dashboard_id, w) in self._tasks),
                                     return_exceptions=True)
                return ids
            finally:
                self.keep_alive(dashboard_id, False)
        await asyncio.wait_for(dash.loaded.wait(), 30)
        return self._request_manual(dash, widget_id)

    def _request_manual(self, dash: _Dashboard, widget_id: str | None) -> list[str]:
        if widget_id is not None and widget_id not in dash.widgets:
            raise ProtocolError(ErrorCode.not_found, f"widget {widget_id} has no question or SQL to refresh, or does not exist")
        ids = [widget_id] if widget_id else sorted(dash.widgets)
        for wid in ids:
            self.request(dash.id, wid, "manual")
        return ids

    def request(self, dashboard_id: str, widget_id: str, reason: str, *, table: str | None = None,
                not_before: float | None = None) -> None:
        """Refresh one widget soon. A widget refreshes one at a time: a request while it runs is
        folded into the running one, unless it needs data newer than the run's start (a change):
        then it runs once more when the current run ends."""
        key = (dashboard_id, widget_id)
        dash = self._active.get(dashboard_id)
        if dash is None or widget_id not in dash.widgets:
            return
        running = self._tasks.get(key)
        if running is not None and not running.done():
            if not_before is not None and self._task_started[key] < not_before:
                self._pending[key] = _Pending(reason, table, not_before)
            return
        self._task_started[key] = self._clock()
        task = asyncio.create_task(self._refresh(key, reason, table, not_before), name=f"live-{dashboard_id}-{widget_id}")
        self._tasks[key] = task

        def done(t: asyncio.Task[None], key: Key = key) -> None:
            if self._tasks.get(key) is not t:
                return  # replaced (the widget's query was edited meanwhile)
            del self._tasks[key]
            self._task_started.pop(key, None)
            pending = self._pending.pop(key, None)
            if pending is not None:
                self.request(key[0], key[1], pending.reason, table=pending.table, not_before=pending.not_before)

        task.add_done_callback(done)

    async def _timer(self) -> None:
        """Fire interval refreshes when they are due; sleeps until the next one."""
        while True:
            next_due = self._schedule.next_due()
            delay = None if next_due is None else max(0.0, next_due - self._clock())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            for dashboard_id, widget_id in self._schedule.due(self._clock()):
                self.request(dashboard_id, widget_id, "interval")

    # One refresh ------------------------------------------------------------------------------

    async def _refresh(self, key: Key, reason: str, table: str | None, not_before: float | None) -> None:
        dashboard_id, widget_id = key
        dash = self._active.get(dashboard_id)
        if dash is None:
            return
        widget = dash.widgets.get(widget_id)
        if widget is None:
            return
        base = {"dashboard_id": dashboard_id, "widget_id": widget_id, "reason": reason, "affected_table": table}
        lease = _lease(dashboard_id)
        try:
            token = await self.leases.acquire(lease)
            if token is None:  # another node refreshes this dashboard; its results reach our viewers
                if reason == "manual":
                    await self.leases.forward(lease, {"dashboard_id": dashboard_id, "widget_id": widget_id})
                return
            if widget.error is not None:
                raise widget.error
            if reason == "manual":  # someone pressed Refresh: show everyone at once
                await self._send(dashboard_id, {**base, "state": "running", "progress": None})
            wh = self.pipeline.warehouse(widget.warehouse)
            flight_key = (widget.warehouse, widget.sql)
            watcher = asyncio.create_task(self._report_progress(base, flight_key, announced=reason == "manual"))
            try:
                sql, result = await self.flight.run(flight_key, lambda: self._query(flight_key, wh, widget.sql),
                                                    not_before=not_before)
            finally:
                watcher.cancel()
            # the chart is titled by the question, or by the widget's title for SQL widgets
            req = dataclasses.replace(widget.request, question=widget.query.question or widget.query.title)
            chart, warnings = await self.pipeline.visualize(f"{dashboard_id}/{widget_id}", req, result, widget.parsed)
            data = result_data(None, req, wh.name, "sql" if widget.parsed is None else widget.parsed.engine,
                               sql, widget.parsed, result, chart, warnings, {"data": result.elapsed_ms})
            data.pop("query_id")
            digest, size = await asyncio.to_thread(_digest, data)
            if not await self._still_holds(lease, token):
                return
            if self._digests.get(key) == digest:
                stamped = await self._send(dashboard_id, {**base, "state": "unchanged", "digest": digest})
                entry = self._latest.get(key)
                if entry is not None:  # same rows, checked just now: a new viewer sees that time
                    self._latest[key] = ({**entry[0], "timestamp": stamped["timestamp"]}, entry[1])
                return
            payload = {**base, "state": "done", "data": data, "digest": digest}
            stamped = await self._send(dashboard_id, payload)
            self._digests[key] = digest
            self._keep_latest(key, stamped, size)
            if self.on_refreshed is not None:
                try:
                    await self.on_refreshed(dashboard_id, widget_id, data)
                except Exception:
                    log.exception("live: the refresh hook failed for %s/%s", dashboard_id, widget_id)
                    self._internal_error("alerts")
        except asyncio.CancelledError:
            raise
        except AskFailed as exc:
            if not await self._still_holds(lease, token):
                return
            error = {"stage": exc.stage.value, "code": exc.code, "message": exc.message}
            stamped = await self._send(dashboard_id, {**base, "state": "failed", "error": error})
            self._digests.pop(key, None)
            self._keep_latest(key, stamped, len(exc.message) + 200)
        except Exception:
            log.exception("live: refreshing %s/%s failed", dashboard_id, widget_id)
            self._internal_error("live")
            error = {"stage": Stage.data_processing.value, "code": ErrorCode.internal.value,
                     "message": "internal error; it has been logged"}
            await self._send(dashboard_id, {**base, "state": "failed", "error": error})

    async def _still_holds(self, lease: str, token: int) -> bool:
        """Whether this node may still publish what it refreshed under ``token``: a node that
        stalled past its lease drops its result (the new holder publishes a fresher one)."""
        if await self.leases.check(lease, token):
            return True
        log.warning("live: %s lost its lease during a refresh; its result is dropped", lease)
        return False

    async def _forwarded(self, lease: str, message: dict[str, Any]) -> None:
        """A manual refresh asked on another node, which does not hold the lease we hold."""
        dash = self._active.get(message.get("dashboard_id", ""))
        if dash is None or _lease(dash.id) != lease:
            return
        widget_id = message.get("widget_id")
        if isinstance(widget_id, str) and widget_id in dash.widgets:
            self.request(dash.id, widget_id, "manual")

    def observe_refresh(self, dashboard_id: str, payload: dict[str, Any]) -> None:
        """A ``dashboard_refresh`` another node published (it holds the lease): keep it as the
        widget's latest, so a viewer arriving here sees it at once."""
        widget_id = payload.get("widget_id")
        if not isinstance(widget_id, str):
            return
        key = (dashboard_id, widget_id)
        state = payload.get("state")
        if state in ("done", "failed"):
            self._keep_latest(key, payload, len(dumps(payload)))
            if state == "done" and payload.get("digest"):
                self._digests[key] = payload["digest"]
        elif state == "unchanged":
            entry = self._latest.get(key)
            if entry is not None and payload.get("timestamp"):
                self._latest[key] = ({**entry[0], "timestamp": payload["timestamp"]}, entry[1])

    async def _query(self, flight_key: Hashable, wh: Any, sql: str) -> tuple[str, Any]:
        """The one run of ``sql`` every widget that wants it now shares."""
        if self._on_query is not None:
            self._on_query()
        self._progress[flight_key] = 0.0

        def progress(stage: Any, substage: str, details: str, rows: int, percent: float | None = None) -> None:
            if percent is not None:
                self._progress[flight_key] = percent

        try:
            return await self.pipeline.execute(sql, wh, user_id=LIVE_USER, progress=progress)
        finally:
            self._progress.pop(flight_key, None)

    async def _report_progress(self, base: dict[str, Any], flight_key: Hashable, *, announced: bool) -> None:
        """While a shared query runs long, tell viewers it runs and how far it got (once a second
        at most). An automatic refresh is announced only once it took ``RUNNING_AFTER_S``: a
        quick one costs every viewer one message (its result), not two."""
        last = None
        if not announced:
            await asyncio.sleep(RUNNING_AFTER_S)
            last = self._progress.get(flight_key)
            await self._send(base["dashboard_id"], {**base, "state": "running",
                                                    "progress": None if last is None else round(last, 1)})
        while True:
            await asyncio.sleep(1.0)
            percent = self._progress.get(flight_key)
            if percent is not None and percent != last:
                last = percent
                await self._send(base["dashboard_id"], {**base, "state": "running", "progress": round(percent, 1)})

    async def _send(self, dashboard_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self._on_outcome is not None and payload["state"] != "running":
            self._on_outcome(payload["reason"], payload["state"])
        stamped = {"data": None, "error": None, "digest": None, "progress": None, **payload, "timestamp": _now_iso()}
        await self._publish(f"dashboard:{dashboard_id}", "dashboard_refresh", stamped)
        return stamped

    # The latest result of each widget ---------------------------------------------------------

    def snapshot(self, dashboard_id: str) -> dict[str, dict[str, Any]]:
        """The latest finished refresh (done or failed) of each widget, for a new viewer."""
        return {key[1]: payload for key, (payload, _) in self._latest.items() if key[0] == dashboard_id}

    def _fresh(self, key: Key) -> bool:
        entry = self._latest.get(key)
        if entry is None:
            return False
        age = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(entry[0]["timestamp"])).total_seconds()
        return entry[0]["state"] == "done" and age < self.min_interval_s

    def _keep_latest(self, key: Key, payload: dict[str, Any], size: int) -> None:
        self._drop_latest(key, keep_digest=True)
        if size > self.cache_bytes:
            self._digests.pop(key, None)
            return
        self._latest[key] = (payload, size)
        self._latest_bytes += size
        while self._latest_bytes > self.cache_bytes and self._latest:
            old_key, (_, old_size) = self._latest.popitem(last=False)
            self._latest_bytes -= old_size
            self._digests.pop(old_key, None)

    def _drop_latest(self, key: Key, *, keep_digest: bool = False) -> None:
        entry = self._latest.pop(key, None)
        if entry is not None:
            self._latest_bytes -= entry[1]
        if not keep_digest:
            self._digests.pop(key, None)

    # For the transports (the caller's role is checked here) ---------------------------------

    async def refresh_for(self, user: User, dashboard_id: str, widget_id: str | None = None) -> dict[str, Any]:
        """The ``refresh`` op: viewers may refresh (the outcome arrives on the channel)."""
        await self._require_viewer(user, dashboard_id)
        return {"dashboard_id": dashboard_id, "widgets": await self.refresh_now(dashboard_id, widget_id)}

    async def snapshot_for(self, user: User, dashboard_id: str) -> dict[str, Any]:
        """``GET /api/dashboards/{id}/live``: what a new viewer shows at once."""
        await self._require_viewer(user, dashboard_id)
        return {"live": True, "active": self.is_active(dashboard_id), "widgets": self.snapshot(dashboard_id)}

    async def _require_viewer(self, user: User, dashboard_id: str) -> None:
        if self.dashboards is None:
            raise RuntimeError("LiveService.dashboards is not set")
        await self.dashboards.get(dashboard_id, user)  # not_found / forbidden

    # Edits ------------------------------------------------------------------------------------

    def check_widget_edit(self, user: User, owner: User, warehouse: str | None) -> None:
        """An editor may only point a widget at a warehouse they may query themselves: widgets
        run with the owner's access, which must not become a way around ``warehouse_access``."""
        name = warehouse or self.access.resolve(owner, None)
        if not self.access.allows(user, name):
            raise ProtocolError(ErrorCode.forbidden, f"you may not query warehouse {name!r}, so you may not make a widget read it")

    # Internals --------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _internal_error(self, component: str) -> None:
        if self._on_internal_error is not None:
            self._on_internal_error(component)


def _lease(dashboard_id: str) -> str:
    return f"live:{dashboard_id}"


def _digest(data: dict[str, Any]) -> tuple[str, int]:
    """A digest of what the viewers see change (columns and rows) and the payload's size."""
    rows = dumps({"columns": data["columns"], "rows": data["rows"], "truncated": data["truncated"]})
    return hashlib.blake2b(rows.encode("utf-8"), digest_size=12).hexdigest(), len(dumps(data))
