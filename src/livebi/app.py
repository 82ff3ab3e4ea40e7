"""The FastAPI application factory: wires every component from one Settings object."""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from . import __version__
from .config import Settings
from .security_headers import SecurityHeadersMiddleware, security_headers
from .services import Services
from .transports import alerts, dashboards, http, ingest, sse
from .transports.websocket import websocket_endpoint
from .transports.ws_direct import WebSocketTransportMiddleware

WEB_DIR = Path(str(resources.files("livebi") / "web"))


def plotly_js_path() -> Path:
    """plotly.js as shipped inside the plotly Python package: no CDN, no npm."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _renderable(error: dict) -> dict:
    """A validation error without its ``input`` when that cannot be JSON (NaN, Infinity)."""
    try:
        json.dumps(jsonable_encoder(error.get("input")), allow_nan=False)
    except ValueError:
        return {key: value for key, value in error.items() if key != "input"}
    return error


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the bad fields. FastAPI's own handler echoes each bad input and fails (500)
    on a NaN or Infinity, which Python's JSON parser accepts in a body."""
    return JSONResponse({"detail": jsonable_encoder([_renderable(e) for e in exc.errors()])}, status_code=422)


class LivebiApp(FastAPI):
    """FastAPI whose own WebSocket endpoints (``/ws``) are served before any of the framework's
    layers: its error middleware and wrappers each stay on the stack (a coroutine frame with its
    locals) for a connection's whole life, and cost every connect a trip through them (issue
    11). Every other scope, other WebSocket paths included, takes the ordinary path."""

    ws_transport: WebSocketTransportMiddleware | None = None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        transport = self.ws_transport
        if transport is not None and scope["type"] == "websocket" and not self.root_path:
            if await transport.serve(scope, receive, send, app=self):
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = Services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    # The API docs are routes in transports.http, served only as the api_docs setting allows.
    app = LivebiApp(title="livebi", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_middleware(SecurityHeadersMiddleware, headers=security_headers(settings.websockets_port()))
    # Called first by the app itself: sees uvicorn's own send, and serves /ws without the
    # framework's layers (LivebiApp).
    app.ws_transport = WebSocketTransportMiddleware(None, routes={"/ws": websocket_endpoint})
    app.include_router(http.router)
    app.include_router(sse.router)
    app.include_router(dashboards.router)
    app.include_router(alerts.router)
    app.include_router(ingest.router)

    plotly_js = plotly_js_path()

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_bundle() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app
