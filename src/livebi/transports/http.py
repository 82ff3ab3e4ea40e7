"""REST routes: login, logout, tickets, the caller's profile, warehouses, example questions,
history, health, metrics. Thin adapters over the services; every route except login, config,
health and metrics needs a bearer token.

Auth routes:

- ``POST /api/login`` ``{username, password}`` -> ``{token, user}``; 401 on a wrong password,
  429 with ``Retry-After`` when the client address or the username is over its login limits
  or the hashing pool is busy (see :mod:`livebi.auth_limits`).
- ``POST /api/ticket`` (bearer) -> ``{ticket, expires_in}``: a single-use ticket for
  ``/ws?ticket=`` or ``/sse?ticket=``, so the long-lived token never travels in a URL.
- ``POST /api/logout`` and ``POST /api/logout-all`` (bearer): revoke the user's tokens and
  tickets (revocation is per user: logout ends every session of the user, like logout-all)
  and close the user's open connections on this process with 4001; other processes refuse
  the tokens within ``user_cache_s`` and close their connections on the next op.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..auth import AuthError, LoginThrottled, User
from ..pipeline import AskFailed
from ..protocol import CloseCode
from ..services import Services
from .client_address import of_connection

router = APIRouter()


def services_of(request: Request) -> Services:
    return request.app.state.services


async def current_user(request: Request) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        return await services_of(request).auth.authenticate(token.strip())
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


class LoginBody(BaseModel):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=1024)


@router.post("/api/login")
async def login(body: LoginBody, request: Request) -> dict[str, Any]:
    services = services_of(request)
    address = of_connection(request, services.settings.trusted_proxies)
    try:
        user, token = await services.auth.login(body.username, body.password, address=address)
    except LoginThrottled as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except AuthError as exc:
        raise HTTPException(401, str(exc)) from None
    return {"token": token, "user": user.public()}


@router.post("/api/ticket")
async def ticket(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    value, ttl_s = services_of(request).auth.issue_ticket(user)
    return {"ticket": value, "expires_in": ttl_s}


async def _revoke(request: Request, user: User) -> dict[str, Any]:
    services = services_of(request)
    await services.auth.revoke(user.id)
    closed = await services.connections.close_user(user.id, CloseCode.unauthenticated, "token revoked")
    return {"revoked": True, "connections_closed": closed}


@router.post("/api/logout")
async def logout(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    return await _revoke(request, user)


@router.post("/api/logout-all")
async def logout_all(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    return await _revoke(request, user)


@router.get("/api/me")
async def me(user: User = Depends(current_user)) -> dict[str, Any]:
    return {"user": user.public()}


@router.get("/api/warehouses")
async def warehouses(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    services = services_of(request)
    default = services.pipeline.default_warehouse
    return {"warehouses": [{**wh.public_info(), "default": name == default} for name, wh in services.warehouses.items()]}


@router.get("/api/examples")
async def examples(request: Request, warehouse: str | None = None, user: User = Depends(current_user)) -> dict[str, Any]:
    try:
        questions = await services_of(request).pipeline.examples(warehouse)
    except AskFailed as exc:
        raise HTTPException(404, exc.message) from None
    return {"questions": questions}


@router.get("/api/history")
async def history(request: Request, limit: int = 50, user: User = Depends(current_user)) -> dict[str, Any]:
    limit = max(1, min(limit, 500))
    return {"queries": await services_of(request).store.history(user.id, limit=limit)}


@router.get("/api/config")
async def client_config(request: Request) -> dict[str, Any]:
    """What clients need before connecting: which transports and features are on."""
    s = services_of(request).settings
    return {
        "websocket": s.websocket,
        "sse": True,
        "features": {"progress_streaming": s.progress_streaming, "batching": s.batching, "presence": s.presence},
        "max_message_bytes": s.max_message_bytes,
    }


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    services = services_of(request)
    return {
        "status": "ok",
        "connections": services.connections.count(),
        "running_queries": services.asks.running_count() if services.asks else 0,
        "warehouses": list(services.warehouses),
    }


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(services_of(request).metrics.render(), media_type="text/plain; version=0.0.4")
