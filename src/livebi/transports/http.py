"""REST routes: login, logout, tickets, the caller's profile, warehouses, example questions,
history, stored results, health, livez, metrics, API docs. Thin adapters over the services; every
route except login, config, health, livez, metrics and the API docs needs a bearer token or the
browser's session cookie (with ``X-CSRF-Token`` on state-changing requests; see
:mod:`.browser_session`), and metrics, the details of health and the API docs answer only the
callers ``metrics_access`` / ``api_docs`` admit (``/health`` answers everyone, without details).

Auth routes:

- ``POST /api/login`` ``{username, password}`` -> ``{token, user}``, and sets the browser's
  session and CSRF cookies; 401 on a wrong password, 429 with ``Retry-After`` when the client
  address or the username is over its login limits or the hashing pool is busy (see
  :mod:`livebi.auth_limits`).
- ``POST /api/ticket`` -> ``{ticket, expires_in}``: a single-use ticket for ``/ws?ticket=`` or
  ``/sse?ticket=``, so the long-lived token never travels in a URL (and a browser never needs
  the token in its scripts: the cookie gets it tickets).
- ``POST /api/logout`` and ``POST /api/logout-all``: revoke the user's tokens and tickets
  (revocation is per user: logout ends every session of the user, like logout-all), clear the
  session cookies, and close the user's open connections on this process with 4001; other
  processes refuse the tokens within ``user_cache_s`` and close their connections on the next
  op or, idle ones, in a sweep (:meth:`Services.close_revoked`).

- ``GET /api/queries/{query_id}/result``: the stored result of a finished question, for its
  asker and the users it was shared with; 404 for anyone else, exactly as for a question that
  does not exist or whose result is gone, so strangers learn nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from ..auth import AuthError, LoginThrottled, User
from ..memory_limit import memory_status
from ..permissions import Refusal, operator_refusal
from ..pipeline import AskFailed
from ..protocol import CloseCode, ErrorCode, ProtocolError, dumps
from ..services import Services
from .browser_session import authenticated_user, clear_session_cookies, set_session_cookies
from .client_address import of_connection

router = APIRouter()

SWAGGER_CDN = "https://cdn.jsdelivr.net"
_QUERY_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")  # the ids query:<id> channels take


def services_of(request: Request) -> Services:
    return request.app.state.services


async def current_user(request: Request) -> User:
    """The caller (bearer token or session cookie): the dependency of every user route."""
    return await authenticated_user(request)


class LoginBody(BaseModel):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=1024)


@router.post("/api/login")
async def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    services = services_of(request)
    address = of_connection(request, services.settings.trusted_proxies)
    try:
        user, token = await services.auth.login(body.username, body.password, address=address)
    except LoginThrottled as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except AuthError as exc:
        raise HTTPException(401, str(exc)) from None
    set_session_cookies(request, response, token)
    return {"token": token, "user": user.public()}


@router.post("/api/ticket")
async def ticket(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    value, ttl_s = services_of(request).auth.issue_ticket(user)
    return {"ticket": value, "expires_in": ttl_s}


async def _revoke(request: Request) -> Response:
    """Revoke the caller's tokens and clear the browser's cookies, which also go when the
    credential was already invalid (401): a dead cookie must not linger either way."""
    services = services_of(request)
    try:
        user = await current_user(request)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        response: Response = JSONResponse({"detail": exc.detail}, status_code=401, headers=exc.headers)
    else:
        await services.auth.revoke(user.id)
        closed = await services.connections.close_user(user.id, CloseCode.unauthenticated, "token revoked")
        response = JSONResponse({"revoked": True, "connections_closed": closed})
    clear_session_cookies(request, response)
    return response


@router.post("/api/logout")
async def logout(request: Request) -> Response:
    return await _revoke(request)


@router.post("/api/logout-all")
async def logout_all(request: Request) -> Response:
    return await _revoke(request)


@router.get("/api/me")
async def me(user: User = Depends(current_user)) -> dict[str, Any]:
    return {"user": user.public()}


@router.get("/api/warehouses")
async def warehouses(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    """The warehouses the caller may query; ``default`` marks the one questions use unnamed."""
    services = services_of(request)
    allowed = services.warehouse_access.allowed(user)
    return {"warehouses": [{**services.warehouses[name].public_info(), "default": i == 0}
                           for i, name in enumerate(allowed)]}


@router.get("/api/examples")
async def examples(request: Request, warehouse: str | None = None, user: User = Depends(current_user)) -> dict[str, Any]:
    services = services_of(request)
    try:
        name = services.warehouse_access.resolve(user, warehouse)
    except ProtocolError as exc:
        raise HTTPException(403 if exc.code is ErrorCode.forbidden else 404, exc.message) from None
    try:
        questions = await services.pipeline.examples(name)
    except AskFailed as exc:
        raise HTTPException(404, exc.message) from None
    return {"questions": questions}


@router.get("/api/history")
async def history(request: Request, limit: int = 50, user: User = Depends(current_user)) -> dict[str, Any]:
    limit = max(1, min(limit, 500))
    return {"queries": await services_of(request).store.history(user.id, limit=limit)}


@router.get("/api/queries/{query_id}/result")
async def query_result(query_id: str, request: Request, user: User = Depends(current_user)) -> Response:
    """The stored result data of a finished question (as its ``result`` publication carried it),
    for its asker and the users it was shared with; 404 otherwise."""
    services = services_of(request)
    result = await services.sharing.readable_result(user, query_id) if _QUERY_ID.fullmatch(query_id) else None
    if result is None:
        raise HTTPException(404, f"no stored result for query {query_id!r}")
    body = await asyncio.to_thread(dumps, result)  # may be megabytes: off the event loop
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/api/config")
async def client_config(request: Request) -> dict[str, Any]:
    """What clients need before connecting: which transports and features are on."""
    s = services_of(request).settings
    return {
        "websocket": s.websocket,
        # Where to open it when not /ws on this port (ws_server = "websockets"): the same host.
        "websocket_port": s.websockets_port(),
        "sse": True,
        "features": {"progress_streaming": s.progress_streaming, "batching": s.batching, "presence": s.presence},
        "max_message_bytes": s.max_message_bytes,
    }


# Operator endpoints ---------------------------------------------------------------------------


def _operator_refusal(request: Request, mode: str) -> Refusal | None:
    """Why this caller may not read operator-only data under ``mode``; None: it may."""
    return operator_refusal(mode, client_host=request.client.host if request.client else None,
                            headers=request.headers, token=services_of(request).settings.metrics_token)


def require_operator(request: Request, mode: str) -> None:
    """Raise 401 (token mode: no or a wrong token) or 403 (not a direct loopback caller)."""
    refusal = _operator_refusal(request, mode)
    if refusal is Refusal.bad_token:
        raise HTTPException(401, "a valid metrics token is required", headers={"WWW-Authenticate": "Bearer"})
    if refusal is Refusal.not_loopback:
        raise HTTPException(403, "only direct connections from this host may read this")


@router.get("/livez", include_in_schema=False)
async def livez() -> dict[str, str]:
    """Liveness for anyone (load balancers, orchestrators): the process answers HTTP."""
    return {"status": "ok"}


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """``{"status": "ok"}`` for anyone; with connection counts, running queries and warehouse
    names for callers that ``metrics_access`` admits."""
    services = services_of(request)
    if _operator_refusal(request, services.settings.metrics_access) is not None:
        return {"status": "ok"}
    return {
        "status": "ok",
        "connections": services.connections.count(),
        "running_queries": services.asks.running_count() if services.asks else 0,
        "warehouses": list(services.warehouses),
        "live_dashboards": services.live.active_count if services.live else None,
        "change_detection": services.live.detection_status() if services.live else {},
        "answer_reuse": services.reuse_status(),
        "memory": memory_status(),
        "broker": services.broker.status(),
        "cluster": services.cluster.status() if services.cluster is not None else None,
        # remote agents: transport now (websocket, or http while degraded) and calls per transport
        "agents": services.agents.status() if services.agents else {},
    }


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    services = services_of(request)
    require_operator(request, services.settings.metrics_access)
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4")


def _require_api_docs(request: Request) -> None:
    mode = services_of(request).settings.api_docs
    if mode == "off":
        raise HTTPException(404, "Not Found")
    require_operator(request, mode)


@router.get("/openapi.json", include_in_schema=False)
async def openapi_schema(request: Request) -> dict[str, Any]:
    _require_api_docs(request)
    return request.app.openapi()


@router.get("/api/docs", include_in_schema=False)
async def api_docs(request: Request) -> Response:
    """Swagger UI; its script and style come from a CDN, so the page gets its own CSP that
    allows that CDN and, by hash, the one inline script that starts it."""
    _require_api_docs(request)
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="livebi API", swagger_favicon_url="data:,")
    html = page.body.decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    )
    csp = (f"default-src 'self'; script-src {SWAGGER_CDN} {hashes}; style-src {SWAGGER_CDN} 'unsafe-inline'; "
           "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
           "form-action 'self'; object-src 'none'")
    return HTMLResponse(html, headers={"Content-Security-Policy": csp})
