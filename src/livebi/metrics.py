"""Prometheus metrics. Each app gets its own registry, so several apps (tests) coexist."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("livebi_connections", "Open client connections", ["transport"], registry=r)
        self.ws_connections = self.connections.labels("ws")  # every connect counts itself here
        self.messages_received = Counter("livebi_messages_received_total", "Client ops received", ["op"], registry=r)
        self.op_errors = Counter("livebi_op_errors_total", "Error replies sent", ["code"], registry=r)
        self.frames_queued = Counter("livebi_frames_queued_total", "Publication frames queued to connections", registry=r)
        self.publications = Counter("livebi_publications_total", "Publications on channels", ["type"], registry=r)
        self.queries = Counter("livebi_queries_total", "Questions answered", ["status"], registry=r)
        self.query_errors = Counter(
            "livebi_query_errors_total", "Questions that ended in an error, by error code", ["code"], registry=r
        )
        self.query_seconds = Histogram(
            "livebi_query_seconds",
            "Question latency from ask to result/error",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.op_seconds = Histogram(
            "livebi_op_seconds", "Time to handle one client op", ["op"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5), registry=r,
        )
        self.internal_errors = Counter(
            "livebi_internal_errors_total", "Bugs caught while answering (logged with a traceback)", ["component"], registry=r
        )
        self.live_refreshes = Counter(
            "livebi_live_refreshes_total", "Live widget refreshes by reason and outcome", ["reason", "state"], registry=r
        )
        self.live_queries = Counter(
            "livebi_live_queries_total", "Warehouse queries run by live refreshes (one per single flight)", registry=r
        )
        self.live_dashboards = Gauge("livebi_live_dashboards", "Dashboards live on this process", registry=r)
        self.broker_degraded = Gauge(
            "livebi_broker_degraded", "1 while the Redis broker is unreachable and this node serves its clients alone", registry=r
        )
        self.broker_outages = Counter("livebi_broker_outages_total", "Times the Redis broker became unreachable", registry=r)
        self.slow_consumers = Counter("livebi_slow_consumers_total", "Connections closed as slow consumers", registry=r)
        # Children of the per-op metrics by op name: ``labels()`` validates and joins its labels
        # under a lock on every call, and every client op (two per connect) needed two of them.
        self._op_children: dict[str, tuple[Any, Any]] = {}

    def op_handled(self, op: str, seconds: float) -> None:
        """Count one client op (``op`` is a protocol op name or "invalid": a bounded set)."""
        children = self._op_children.get(op)
        if children is None:
            children = self._op_children[op] = (self.messages_received.labels(op), self.op_seconds.labels(op))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
