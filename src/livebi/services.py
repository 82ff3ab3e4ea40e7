"""The running server's components, built from settings and shared by every transport."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any, Callable

from .protocol import CloseCode
from .realtime.connection import Connection
from .agents.data import DataAgent
from .answer_cache import ResultCache
from .agents.nlp import LLMEngine, NLPAgent, load_semantic_layer
from .agents.remote.wiring import RemoteAgents
from .auth import AuthError, Authenticator, User, build_authenticator
from .config import Settings
from .gc_tuning import GcTuning
from .dashboards.service import DashboardService
from .live.service import LiveService
from .live.alert_service import AlertService
from .live.ingest import IngestService
from .metrics import Metrics
from .permissions import WarehouseAccess, authorize_channel
from .pipeline import AskService, Pipeline
from .cluster.node import ClusterNode
from .realtime.broker import open_broker
from .realtime.hub import Delivery, Hub, SubscribeResult
from .realtime.manager import ConnectionManager
from .realtime.presence import Presence
from .sharing import SharingService
from .store import MetadataStore
from .store.alerts import AlertStore
from .store.dashboards import DashboardStore
from .warehouse.base import Warehouse
from .warehouse.changes import change_detector_for
from .warehouse.functions import is_allowed_function
from .warehouse.registry import open_warehouse
from .warehouse.writers import opens_read_write

log = logging.getLogger(__name__)

def build_nlp_agent(settings: Settings) -> NLPAgent:
    """The NLP agent for ``settings``: semantic layers loaded (a bad file raises
    SemanticLayerError naming it), the LLM engine when ``llm_base_url`` is set."""
    layers = {name: load_semantic_layer(path) for name, path in settings.semantic_layers.items()}
    llm = None
    if settings.llm_base_url:
        llm = LLMEngine(base_url=settings.llm_base_url, model=settings.llm_model,
                        api_key=settings.llm_api_key, timeout_s=settings.llm_timeout_s,
                        max_sql_chars=settings.max_sql_chars, max_sql_depth=settings.max_sql_depth)
    return NLPAgent(today=settings.today, max_question_chars=settings.max_question_chars,
                    semantic_layers=layers, schema_check_interval_s=settings.schema_check_interval_s,
                    llm=llm, llm_mode=settings.llm_mode,
                    confidence_threshold=settings.llm_confidence_threshold,
                    parse_cache_entries=settings.parse_cache_entries)


def warehouse_options(settings: Settings, name: str) -> dict[str, Any]:
    """The :func:`open_warehouse` options a server (or the CLI) takes from ``settings`` for the
    warehouse called ``name``."""
    return {
        # a DuckDB file that takes ingested rows is opened read-write (see warehouse.writers)
        "read_only": not (name in settings.ingest_access and opens_read_write(settings.resolved_warehouses().get(name, ""))),
        "schemas": settings.warehouse_schemas.get(name),
        # SQLite's authorizer enforces the same function allow-list as validation does
        "sqlite_function_allowed": functools.partial(is_allowed_function, "sqlite"),
        "allow_privileged_role": settings.warehouse_allow_privileged_role,
        "progress_interval": settings.progress_interval_s,
        "duckdb_memory_limit": settings.duckdb_memory_limit,
        # the default stays well inside the address-space headroom (memory_headroom_mb), so a
        # big sort spills instead of failing at that limit
        "duckdb_memory_limit_at_most_mb": settings.memory_headroom_mb // 2,
        "duckdb_threads": settings.duckdb_threads,
        "duckdb_temp_directory": settings.data_dir / "duckdb-temp",
        "duckdb_max_temp_directory_size": settings.duckdb_max_temp_directory_size,
        "postgres_work_mem": settings.postgres_work_mem,
        "postgres_temp_file_limit": settings.postgres_temp_file_limit,
        "sqlite_hard_heap_limit": settings.sqlite_hard_heap_limit,
    }


class Services:
    """Everything a transport needs: auth, hub, broker, asks. Built by :meth:`start`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.hub = Hub(
            history_size=settings.history_size,
            history_ttl=settings.history_ttl_s,
            history_bytes_per_channel=settings.history_bytes_per_channel,
            history_bytes_total=settings.history_bytes_total,
            finished_grace=settings.finished_channel_grace_s,
        )
        self.connections = ConnectionManager(
            self.hub,
            max_connections=settings.max_connections,
            max_per_user=settings.max_connections_per_user,
            max_unauthenticated_per_address=settings.max_unauthenticated_per_address,
            max_unauthenticated=settings.max_unauthenticated,
            on_frame_queued=self.metrics.frames_queued.inc,
        )
        # Presence (realtime/presence.py): members on dashboard channels, coalesced updates.
        self.presence = Presence(
            publish=self._publish_presence, subscribed=self.hub.is_subscribed, subscriber_count=self.hub.subscriber_count,
            enabled=settings.presence, coalesce_s=settings.presence_coalesce_ms / 1000,
            max_members=settings.presence_max_members, count_interval_s=settings.presence_count_interval_ms / 1000,
            on_error=lambda: self.metrics.internal_errors.labels("presence").inc(),
        )
        self.shutting_down = False
        self.sse_streams: dict[str, Any] = {}  # conn_id -> transports.sse.SSEStream
        self.cluster: ClusterNode | None = None  # with a shared broker (cluster/node.py)
        self.sse_forwarder: Any = None  # SSE ops for streams on other nodes
        self._notices: set[asyncio.Task[None]] = set()
        self.broker = open_broker(
            settings.broker_url, self.hub, self._deliver, redis_prefix=settings.redis_prefix,
            meta_ttl_s=settings.redis_meta_ttl_s, retry_s=settings.redis_retry_s,
            on_degraded=self._broker_degraded,
            on_error=lambda component: self.metrics.internal_errors.labels(component).inc(),
        )
        if self.broker.shared:  # the broker stops following a channel once nobody here listens
            self.connections.on_watch = self._on_watch
        self.store: MetadataStore | None = None
        self.auth: Authenticator | None = None
        self.warehouses: dict[str, Warehouse] = {}
        # Checked here, not at start(), so a bad rule stops the server before it opens anything.
        self.warehouse_access = WarehouseAccess(settings.warehouse_access, list(settings.resolved_warehouses()))
        self.pipeline: Pipeline | None = None
        self.agents: RemoteAgents | None = None
        # Results reused while their tables do not change (answer_cache.py); its change
        # detectors watch only the tables of cached results.
        self.results = ResultCache(
            max_age_s=settings.result_cache_s, max_bytes=settings.result_cache_bytes,
            detector_factory=lambda name, on_change: change_detector_for(
                self.warehouses[name], on_change, poll_interval_s=settings.live_change_poll_s,
                listen=settings.live_postgres_listen),
        )
        self.asks: AskService | None = None
        self.dashboards: DashboardService | None = None
        self.sharing: SharingService | None = None
        self.live: LiveService | None = None
        self.alerts: AlertService | None = None
        self.ingest: IngestService | None = None
        self._simulator: Any = None
        self.gc: GcTuning | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._revocation_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        self.store = await MetadataStore.open(
            s.resolved_store_url(), queries_per_user=s.stored_queries_per_user, max_sql_chars=s.max_stored_sql_chars
        )
        self.auth = build_authenticator(s, self.store)
        self.warehouses = {name: open_warehouse(name, url, **warehouse_options(s, name)) for name, url in s.resolved_warehouses().items()}
        for warehouse in self.warehouses.values():
            await warehouse.check_access()  # a PostgreSQL role that can write stops startup
        # Remote agents (agents/remote): each agent with URLs is called through a pool.
        self.agents = RemoteAgents(s, publish=self.publish,
                                   on_error=lambda: self.metrics.internal_errors.labels("agents").inc())
        await self.agents.start()
        self.pipeline = Pipeline(
            warehouses=self.warehouses,
            nlp=self.agents.nlp(build_nlp_agent(s)),
            data=self.agents.data(DataAgent(
                timeout_s=s.query_timeout_s, row_cap=s.row_cap,
                max_result_bytes=s.max_result_bytes, max_value_chars=s.max_value_chars,
                max_sql_chars=s.max_sql_chars, max_sql_depth=s.max_sql_depth,
                validation_cache_entries=s.validation_cache_entries,
            )),
            viz=self.agents.viz(),
            results=self.results,
            single_flight=s.ask_single_flight,
            on_internal_error=lambda component: self.metrics.internal_errors.labels(component).inc(),
            max_concurrent_queries=s.warehouse_max_concurrent_queries,
            max_concurrent_queries_per_user=s.warehouse_max_concurrent_queries_per_user,
            progress_interval=s.progress_interval_s,
        )
        await self.pipeline.nlp.check_semantic_layers(self.warehouses)  # a bad layer stops startup
        self.asks = AskService(
            self.pipeline,
            publish=self.publish,
            store=self.store,
            progress_streaming=s.progress_streaming,
            max_concurrent_per_user=s.max_concurrent_queries_per_user,
            on_finished=self._query_finished,
        )
        dashboard_store = DashboardStore(self.store.engine, ops_kept=s.dashboard_ops_kept)
        if self.broker.shared:  # leases, tickets and SSE ops shared with the other nodes
            from .transports.sse import run_op

            self.cluster = ClusterNode(self.broker, s, run_sse_op=lambda conn, user_id, raw: run_op(self, conn, user_id, raw),
                                       on_error=lambda component: self.metrics.internal_errors.labels(component).inc())
            self.auth.shared_tickets = self.cluster.tickets
            self.sse_forwarder = self.cluster.sse
        if s.live_dashboards:
            self.live = LiveService(
                pipeline=self.pipeline, store=dashboard_store, access=self.warehouse_access, publish=self.publish,
                min_interval_s=s.live_min_interval_s, cache_bytes=s.live_cache_bytes,
                on_internal_error=lambda component: self.metrics.internal_errors.labels(component).inc(),
                on_outcome=lambda reason, state: self.metrics.live_refreshes.labels(reason, state).inc(),
                on_query=self.metrics.live_queries.inc,
                detector_factory=lambda name, on_change: change_detector_for(
                    self.warehouses[name], on_change, poll_interval_s=s.live_change_poll_s, listen=s.live_postgres_listen),
                leases=self.cluster.leases if self.cluster is not None else None,
            )
            live = self.live
            self.metrics.live_dashboards.set_function(lambda: live.active_count)
            self.connections.on_watch = self._on_watch
        self.dashboards = DashboardService(
            dashboard_store, publish=self.publish,
            drop_subscribers=self.drop_subscribers, max_per_user=s.max_dashboards_per_user,
            check_widget_query=self.live.check_widget_edit if self.live else None,
            on_changed=self.live.dashboard_changed if self.live else None,
        )
        if self.live is not None:
            self.live.dashboards = self.dashboards
            await self.live.start()
        self.sharing = SharingService(
            results=self.store.results, dashboards=dashboard_store, publish=self.publish, warehouse_access=self.warehouse_access
        )
        # Alerts are checked after each refresh of their widget; the live service keeps their
        # dashboards refreshing while nobody watches (keep_alive).
        self.alerts = AlertService(
            AlertStore(self.store.engine), self.publish, dashboard_store,
            keep_alive=self.live.keep_alive if self.live else None, max_per_user=s.alerts_per_user,
            warehouse_access=self.warehouse_access,
            on_internal_error=lambda component: self.metrics.internal_errors.labels(component).inc(),
        )
        if self.live is not None:
            self.live.on_refreshed = self.alerts.on_refresh
            self.live.alert_widgets = self.alerts.watched
            self.live.alert_interval_s = s.live_alert_interval_s
            self.alerts.on_widgets_changed = self.live.dashboard_changed
        await self.alerts.start()
        # Ingest (issue 9): the REST API and the demo simulator insert through one service.
        self.ingest = IngestService(
            self.warehouses, s.ingest_access, self._data_changed, writer_urls=s.ingest_urls,
            warehouse_access=self.warehouse_access, max_rows=s.ingest_max_rows, statement_timeout_s=s.query_timeout_s,
            on_internal_error=lambda: self.metrics.internal_errors.labels("ingest").inc(),
        )
        if self.live is not None:
            self.ingest.write_guard = self.live.writing
        if s.demo_live_rate > 0:
            from .demo.live import OrderSimulator

            self._simulator = OrderSimulator(self.ingest, "demo", rate=s.demo_live_rate, today=s.today,
                                             on_internal_error=lambda: self.metrics.internal_errors.labels("simulator").inc())
            self._simulator.start()
        await self.broker.start()
        if self.cluster is not None:
            await self.cluster.start(live=self.live, resync_alerts=self.alerts.resync if self.live is not None else None)
        self.presence.start()
        self._prune_task = asyncio.create_task(self._prune_loop(), name="hub-prune")
        self._revocation_task = asyncio.create_task(self._revocation_loop(), name="revocation-sweep")
        if s.gc_tuning:  # last: everything start-up built is frozen (gc_tuning.py)
            self.gc = GcTuning(threshold0=s.gc_threshold0, freeze_interval_s=s.gc_freeze_interval_s,
                               unfreeze_interval_s=s.gc_unfreeze_interval_s)
            self.gc.start()

    async def stop(self) -> None:
        if self.gc is not None:
            await self.gc.stop()
        await self.presence.stop()
        for task in (self._prune_task, self._revocation_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.live is not None:
            await self.live.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.asks:
            await self.asks.shutdown()
        if self.agents is not None:
            await self.agents.close()
        await self.results.stop()
        if self._simulator:
            await self._simulator.stop()
        if self.ingest:
            await self.ingest.close()
        await self.broker.stop()
        for wh in self.warehouses.values():
            try:
                await wh.close()
            except Exception:  # noqa: BLE001 - one warehouse must not keep the others open
                log.exception("closing warehouse %s failed", wh.name)
                self.metrics.internal_errors.labels("shutdown").inc()
        if self.store:
            await self.store.close()

    # Publishing -----------------------------------------------------------------------------

    async def publish(self, channel: str, type: str, data: dict[str, Any], *, final: bool = False) -> None:
        """Publish on ``channel``; ``final`` marks its last publication (see Hub.publish)."""
        self.metrics.publications.labels(type).inc()
        await self.broker.publish(channel, type, data, final=final)

    async def _publish_presence(self, channel: str, type: str, data: dict[str, Any]) -> None:
        """Presence publications: with a shared broker, mirrored into the cluster's presence
        first (counts and snapshots then cover every node)."""
        if self.broker.shared:
            data = await self.broker.presence_publication(channel, data)
        await self.publish(channel, type, data)

    async def presence_op(self, conn: Connection, channel: str, state: dict[str, Any] | None) -> dict[str, Any]:
        """The ``presence`` op's reply: this node's members and, with a shared broker, those of
        every other live node."""
        reply = self.presence.op(conn, channel, state)
        if self.broker.shared and reply["members"]:
            members = reply["members"] + await self.broker.presence_others(channel)
            members.sort(key=lambda m: (m["joined_at"], m["conn_id"]))
            reply = {**reply, "members": members, "count": len(members)}
        return reply

    def _broker_degraded(self, degraded: bool) -> None:
        """The Redis broker lost (or found again) its server: count it and tell ``system``."""
        self.metrics.broker_degraded.set(1 if degraded else 0)
        if degraded:
            self.metrics.broker_outages.inc()
        message = ("Live updates from other servers are paused; updates made here still arrive." if degraded
                   else "Live updates from every server are flowing again.")
        data = {"active": degraded, "component": "broker", "mode": "single-node" if degraded else "cluster",
                "message": message}
        task = asyncio.get_running_loop().create_task(self._publish_notice("system", "service_degradation", data))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _publish_notice(self, channel: str, type: str, data: dict[str, Any]) -> None:
        try:
            await self.publish(channel, type, data)
        except Exception:  # a notice must not take the broker's recovery down with it
            log.exception("publishing %s on %s failed", type, channel)
            self.metrics.internal_errors.labels("notice").inc()

    async def subscribe(
        self, conn: Connection, channel: str, since: tuple[str, int] | None, *, from_start: bool = False
    ) -> SubscribeResult:
        """Subscribe ``conn`` (authorized already); with a shared broker, first follow the
        channel and fetch the shared history ``since`` needs (see RedisBroker.prepare).

        ``from_start``: replay the channel from its first publication with a shared broker
        (a question's channel, whose pipeline may publish before the node follows it); the
        memory broker needs no replay there, the hub sees every publication.
        """
        if not self.broker.shared:
            return self.connections.subscribe(conn, channel, since)
        since, older = await self.broker.prepare(channel, since, from_start=from_start)
        # no await from here: publications arriving meanwhile are merged by the hub
        return self.connections.subscribe(conn, channel, since, older)

    def _on_watch(self, channel: str, delta: int) -> None:
        if delta < 0 and self.broker.shared:
            self.broker.released(channel)
        # a dashboard is live on this process while a connection here listens to it
        if self.live is not None and channel.startswith("dashboard:"):
            dashboard_id = channel.split(":", 1)[1]
            if delta > 0:
                self.live.viewer_joined(dashboard_id)
            else:
                self.live.viewer_left(dashboard_id)

    def reuse_status(self) -> dict[str, Any]:
        """What /health shows about reused work: result cache, single flight, parse and
        validation caches (answer_cache.py)."""
        status: dict[str, Any] = {"result_cache": self.results.status()}
        if self.pipeline is not None:
            flights = self.pipeline.flights
            status["single_flight"] = None if flights is None else {"started": flights.started, "joined": flights.joined}
            for name, lru in (("parse_cache", self.pipeline.nlp.parses), ("validation_cache", self.pipeline.data.validations)):
                status[name] = {"entries": len(lru), "hits": lru.hits, "misses": lru.misses}
        return status

    async def _data_changed(self, warehouse: str, tables: set[str]) -> None:
        """Rows of ``tables`` in ``warehouse`` were written through livebi (ingest)."""
        self.results.invalidate(warehouse, tables)
        if self.live is not None:
            await self.live.data_changed(warehouse, tables, source="ingest")

    def _deliver(self, delivery: Delivery) -> None:
        self.connections.deliver(delivery)
        if self.cluster is not None:
            self.cluster.delivered(delivery)

    def _query_finished(self, status: str, seconds: float, error_code: str | None) -> None:
        self.metrics.queries.labels(status).inc()
        if error_code is not None:
            self.metrics.query_errors.labels(error_code).inc()
        self.metrics.query_seconds.observe(seconds)

    async def _prune_loop(self) -> None:
        while True:
            s = self.settings
            await asyncio.sleep(max(1.0, min(30.0, s.history_ttl_s / 4, s.finished_channel_grace_s / 2)))
            self.hub.prune()

    async def _revocation_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.settings.user_cache_s))
            try:
                await self.close_revoked()
            except Exception:  # the store is unreachable: try again next round, loudly
                log.exception("checking open connections for revoked tokens failed")
                self.metrics.internal_errors.labels("revocation").inc()

    async def close_revoked(self) -> int:
        """Close (4001) every connection whose credential was revoked or whose user was removed
        since it authenticated; returns how many.

        Revocation on this process closes connections at once (logout); a password change or
        a removal by another process (the CLI, another node) is only seen in the store. A
        connection that sends ops notices on its next op; an idle one, which would go on
        receiving publications, is closed here, at most about ``user_cache_s`` late.
        """
        refused: dict[User, str] = {}
        for user in {c.user for c in list(self.connections.connections.values()) if c.user is not None}:
            try:
                await self.auth.check_current(user)
            except AuthError as exc:
                refused[user] = str(exc)
        doomed = [c for c in list(self.connections.connections.values()) if c.user in refused]
        for conn in doomed:
            await conn.close(CloseCode.unauthenticated, refused[conn.user])
        return len(doomed)

    # Connections ----------------------------------------------------------------------------

    async def unsubscribe(self, conn: Connection, channel: str) -> bool:
        self.presence.leave(conn.id, channel)
        return self.connections.unsubscribe(conn, channel)

    async def drop_subscribers(self, channel: str, keep: Callable[[User], bool]) -> int:
        """Unsubscribe this process's connections on ``channel`` whose user ``keep`` refuses
        (they lost access); returns how many. Their presence there ends (a coalesced leave)."""
        doomed = [conn for conn_id in self.hub.subscribers(channel)
                  if (conn := self.connections.connections.get(conn_id)) is not None
                  and conn.user is not None and not keep(conn.user)]
        for conn in doomed:
            conn.positions.pop(channel, None)
            await self.unsubscribe(conn, channel)
        return len(doomed)

    async def disconnect(self, conn: Connection) -> None:
        """Forget a closed connection; its presence ends (stale presence never lingers)."""
        self.presence.leave_all(conn.id)
        self.connections.remove(conn)

    async def begin_shutdown(self) -> None:
        """Graceful shutdown: stop admitting, drain every outbox (bounded), close with 1012."""
        self.shutting_down = True
        conns = list(self.connections.connections.values())
        if not conns:
            return
        timeout = self.settings.shutdown_drain_s
        await asyncio.gather(*(c.drain(timeout) for c in conns), return_exceptions=True)
        await asyncio.gather(
            *(c.close(CloseCode.service_restart, "server restarting") for c in conns), return_exceptions=True
        )

    # Permissions ----------------------------------------------------------------------------

    async def authorize_channel(self, user: User, channel: str) -> None:
        """Raise ProtocolError unless ``user`` may subscribe to ``channel`` (rules in permissions)."""
        await authorize_channel(
            user, channel,
            query_owner=self.asks.owner if self.asks else None,
            query_recipient=self.sharing.is_recipient if self.sharing else None,
            dashboard_role=self.dashboards.role_of if self.dashboards else None,
        )
