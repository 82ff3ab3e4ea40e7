"""Running the app under uvicorn, with a graceful shutdown that clients can recover from.

On SIGTERM/SIGINT livebi stops accepting connections, lets every connection's outgoing queue
drain (up to ``shutdown_drain_s``), then closes WebSockets with 1012 (service restart) and ends
SSE streams with a ``close`` event carrying 1012. Clients reconnect with backoff and resubscribe
with ``since``; with the memory broker history does not survive, so they are told
``recovered: false`` and reload.

A server built with ``memory_headroom_mb`` > 0 (only the CLI's) limits its address space once
startup is over (:mod:`livebi.memory_limit`).
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

import uvicorn

from .app import create_app
from .config import Settings
from .memory_limit import limit_address_space, size_mb
from .transports.ws_server import max_message_frame_bytes
from .transports.ws_protocol import protocol_class as ws_protocol_class


_TOKEN = re.compile(r"((?:token|ticket)=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Masks ``?token=`` (refused, but clients may still send one) and ``?ticket=`` in uvicorn's
    access and connection logs: both are credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN.sub(r"\1***", record.msg)
        return True


def redact_token_logs() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, memory_headroom_mb: int | None = None) -> None:
        """``memory_headroom_mb``: None leaves the address space alone; 0 too, with a warning."""
        super().__init__(config)
        self.memory_headroom_mb = memory_headroom_mb

    ws_server: Any = None  # the websockets library's server, when ws_server = "websockets"

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        state = getattr(self.config.app, "state", None)
        if state is not None and not self.should_exit:
            settings = state.services.settings
            port = settings.websockets_port()
            if port is not None:
                from .transports import ws_server

                self.ws_server = await ws_server.start(state.services, host=settings.host, port=port)
                logging.getLogger("uvicorn.error").info("WebSockets also served on port %d (ws_server)", port)
        if self.memory_headroom_mb is not None and not self.should_exit:
            # After the lifespan: the store, warehouses and live service are open and counted.
            state = self.config.app.state
            engines = {
                name: mb for name, wh in state.services.warehouses.items()
                if (mb := size_mb(getattr(wh, "memory_limit", ""))) is not None
            }
            limit_address_space(self.memory_headroom_mb, engine_limits_mb=engines, log=logging.getLogger("uvicorn.error"))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # refuse new connections while the old ones drain
        ws = self.ws_server
        if ws is not None:
            ws.close(close_connections=False)  # its connections are closed below, with 1012
        state = getattr(self.config.app, "state", None)  # the FastAPI app built by build_server
        if state is not None:
            await state.services.begin_shutdown()
        if ws is not None:
            from .transports.ws_server import close_remaining

            await close_remaining(ws, timeout=self.config.timeout_graceful_shutdown or 5)
        await super().shutdown(sockets=sockets)


def build_server(settings: Settings, *, log_level: str = "info", limit_memory: bool = False) -> Server:
    """A uvicorn server for ``settings``. ``limit_memory`` applies ``memory_headroom_mb`` (an
    address-space limit on the whole process): only for a process of its own, never one that
    hosts the server next to other work (tests)."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # uvicorn's sans-io WebSocket protocol with smaller per-connection state (issue 11).
        ws=ws_protocol_class(),
        ws_max_size=max_message_frame_bytes(settings.max_message_bytes),
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ws_per_message_deflate=settings.ws_compression,
        timeout_graceful_shutdown=max(5, int(settings.shutdown_drain_s) + 3),
        lifespan="on",
        # uvicorn would trust X-Forwarded-For from 127.0.0.1 by default; the client address is
        # decided by the trusted_proxies setting alone (livebi.transports.client_address).
        proxy_headers=False,
    )
    server = Server(config, memory_headroom_mb=settings.memory_headroom_mb if limit_memory else None)
    redact_token_logs()
    return server
