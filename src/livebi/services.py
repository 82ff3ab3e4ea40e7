"""The running server's components, built from settings and shared by every transport."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from .agents.data import DataAgent
from .agents.nlp import NLPAgent
from .auth import Authenticator, TokenSigner, User
from .config import Settings
from .metrics import Metrics
from .pipeline import AskService, Pipeline
from .protocol import ErrorCode, ProtocolError
from .realtime.broker import open_broker
from .realtime.hub import Delivery, Hub
from .realtime.manager import ConnectionManager
from .store import MetadataStore
from .warehouse.base import Warehouse
from .warehouse.registry import open_warehouse

log = logging.getLogger(__name__)

CHANNEL_RE = re.compile(r"^(query|dashboard|user):([A-Za-z0-9_\-]{1,64})$|^system$")


class Services:
    """Everything a transport needs: auth, hub, broker, asks. Built by :meth:`start`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.hub = Hub(history_size=settings.history_size, history_ttl=settings.history_ttl_s)
        self.connections = ConnectionManager(self.hub, on_frame_queued=self.metrics.frames_queued.inc)
        self.broker = open_broker(settings.broker_url, self.hub, self._deliver)
        self.store: MetadataStore | None = None
        self.auth: Authenticator | None = None
        self.warehouses: dict[str, Warehouse] = {}
        self.pipeline: Pipeline | None = None
        self.asks: AskService | None = None
        self._prune_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        self.store = await MetadataStore.open(s.resolved_store_url())
        self.auth = Authenticator(self.store, TokenSigner(s.resolved_secret_key(), ttl_s=s.token_ttl_s))
        self.warehouses = {name: open_warehouse(name, url) for name, url in s.resolved_warehouses().items()}
        self.pipeline = Pipeline(
            warehouses=self.warehouses,
            nlp=NLPAgent(today=s.today, max_question_chars=s.max_question_chars),
            data=DataAgent(timeout_s=s.query_timeout_s, row_cap=s.row_cap),
        )
        self.asks = AskService(
            self.pipeline,
            publish=self.publish,
            store=self.store,
            progress_streaming=s.progress_streaming,
            max_concurrent_per_user=s.max_concurrent_queries_per_user,
            on_finished=self._query_finished,
        )
        await self.broker.start()
        self._prune_task = asyncio.create_task(self._prune_loop(), name="hub-prune")

    async def stop(self) -> None:
        if self._prune_task:
            self._prune_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prune_task
        if self.asks:
            await self.asks.shutdown()
        await self.broker.stop()
        for wh in self.warehouses.values():
            with contextlib.suppress(Exception):
                await wh.close()
        if self.store:
            await self.store.close()

    # Publishing -----------------------------------------------------------------------------

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> None:
        self.metrics.publications.labels(type).inc()
        await self.broker.publish(channel, type, data)

    def _deliver(self, delivery: Delivery) -> None:
        self.connections.deliver(delivery)

    def _query_finished(self, status: str, seconds: float) -> None:
        self.metrics.queries.labels(status).inc()
        self.metrics.query_seconds.observe(seconds)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(30.0, self.settings.history_ttl_s / 4)))
            self.hub.prune()

    # Permissions ----------------------------------------------------------------------------

    async def authorize_channel(self, user: User, channel: str) -> None:
        """Raise ProtocolError unless ``user`` may subscribe to ``channel``."""
        match = CHANNEL_RE.match(channel)
        if match is None:
            raise ProtocolError(
                ErrorCode.unknown_channel,
                f"unknown channel {channel!r}: expected query:<id>, dashboard:<id>, user:<id> or system",
            )
        kind, ident = match.group(1), match.group(2)
        if kind is None:  # system
            return
        if kind == "query":
            owner = await self.asks.owner(ident) if self.asks else None
            if owner is None:
                raise ProtocolError(ErrorCode.not_found, f"no query {ident!r}")
            if owner != user.id:
                raise ProtocolError(ErrorCode.forbidden, f"query {ident!r} belongs to another user")
            return
        if kind == "user":
            if ident != user.id:
                raise ProtocolError(ErrorCode.forbidden, "you may only subscribe to your own user channel")
            return
        raise ProtocolError(ErrorCode.not_found, f"no {kind} {ident!r}")
