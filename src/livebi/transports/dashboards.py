"""REST routes for dashboards: list, create, read, delete, members, sharing.

Thin adapters over :class:`livebi.dashboards.service.DashboardService`, which checks the caller's
role on every call; its refusals map onto HTTP: ``forbidden`` 403 (a dashboard the caller may
not see or change), ``not_found`` 404 (no such dashboard or user), ``invalid_op`` 400. Every
route needs a bearer token (401 without). Edits go over the ``edit`` op, not REST, so that they
are ordered with the publications on ``dashboard:<id>``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool

from ..auth import User
from ..protocol import ChartSpec, DashboardDescription, DashboardTitle, ErrorCode, ProtocolError, RefreshSpec
from .http import current_user, services_of

router = APIRouter(prefix="/api/dashboards", tags=["dashboards"])

_STATUS = {ErrorCode.forbidden: 403, ErrorCode.not_found: 404, ErrorCode.invalid_op: 400,
           ErrorCode.unauthenticated: 401}

DashboardIdPath = Path(..., max_length=64, description="The dashboard's id, d_<12 hex>.")
UsernamePath = Path(..., max_length=64)
Role = Literal["owner", "editor", "viewer"]


# -- request and response bodies (the OpenAPI entries) --------------------------------------------


class UserRef(BaseModel):
    id: str
    username: str


class Widget(BaseModel):
    id: str
    title: str
    question: str | None
    sql: str | None
    warehouse: str | None
    chart: ChartSpec
    x: int
    y: int
    w: int
    h: int
    refresh: RefreshSpec


class Dashboard(BaseModel):
    id: str
    title: str
    description: str
    owner: UserRef
    public: bool = Field(..., description="Read-only for every user of the server.")
    version: int = Field(..., description="0 at creation, +1 per applied edit op.")
    widgets: list[Widget]
    created_at: str
    updated_at: str
    role: Role = Field(..., description="The caller's role.")


class DashboardSummary(BaseModel):
    id: str
    title: str
    description: str
    owner: UserRef
    public: bool
    role: Role
    version: int
    updated_at: str
    widget_count: int


class DashboardList(BaseModel):
    dashboards: list[DashboardSummary]


class CreateBody(BaseModel):
    title: DashboardTitle
    description: DashboardDescription = ""


class Member(BaseModel):
    user: UserRef
    role: Role


class Members(BaseModel):
    members: list[Member] = Field(..., description="The owner first, then editors and viewers.")
    public: bool


class MemberBody(BaseModel):
    role: Literal["editor", "viewer"]


class Sharing(BaseModel):
    public: StrictBool


# -- routes ----------------------------------------------------------------------------------------


async def _call(awaitable):
    try:
        return await awaitable
    except ProtocolError as exc:
        raise HTTPException(_STATUS.get(exc.code, 400), exc.message) from None


def _service(request: Request):
    return services_of(request).dashboards


@router.get("", response_model=DashboardList)
async def list_dashboards(request: Request, user: User = Depends(current_user)) -> dict:
    """Dashboards the caller owns, is a member of, or that are public (newest change first)."""
    return {"dashboards": await _call(_service(request).list_for(user))}


@router.post("", status_code=201, response_model=Dashboard)
async def create_dashboard(body: CreateBody, request: Request, user: User = Depends(current_user)) -> dict:
    return await _call(_service(request).create(user, title=body.title, description=body.description))


@router.get("/{dashboard_id}", response_model=Dashboard)
async def get_dashboard(request: Request, dashboard_id: str = DashboardIdPath, user: User = Depends(current_user)) -> dict:
    """The snapshot: clients apply ``dashboard_update`` publications after its ``version``."""
    return await _call(_service(request).get(dashboard_id, user))


@router.delete("/{dashboard_id}", status_code=204, response_class=Response)
async def delete_dashboard(request: Request, dashboard_id: str = DashboardIdPath, user: User = Depends(current_user)) -> Response:
    """Owner only. Viewers get a ``deleted`` update and are unsubscribed."""
    await _call(_service(request).delete(dashboard_id, user))
    return Response(status_code=204)


@router.get("/{dashboard_id}/members", response_model=Members)
async def list_members(request: Request, dashboard_id: str = DashboardIdPath, user: User = Depends(current_user)) -> dict:
    return await _call(_service(request).members(dashboard_id, user))


@router.put("/{dashboard_id}/members/{username}", response_model=Members)
async def set_member(body: MemberBody, request: Request, dashboard_id: str = DashboardIdPath,
                     username: str = UsernamePath, user: User = Depends(current_user)) -> dict:
    """Owner only: add a user by name with a role, or change their role."""
    return await _call(_service(request).set_member(dashboard_id, user, username, body.role))


@router.delete("/{dashboard_id}/members/{username}", response_model=Members)
async def remove_member(request: Request, dashboard_id: str = DashboardIdPath, username: str = UsernamePath,
                        user: User = Depends(current_user)) -> dict:
    """Owner only. The removed user's connections on this process are unsubscribed."""
    return await _call(_service(request).remove_member(dashboard_id, user, username))


@router.put("/{dashboard_id}/sharing", response_model=Sharing)
async def set_sharing(body: Sharing, request: Request, dashboard_id: str = DashboardIdPath,
                      user: User = Depends(current_user)) -> dict:
    """Owner only: ``public`` makes the dashboard readable (viewer role) by every user."""
    return await _call(_service(request).set_public(dashboard_id, user, body.public))


# -- live dashboards ------------------------------------------------------------------------------


class LiveWidgets(BaseModel):
    live: bool = Field(..., description="False when live dashboards are switched off: run widgets yourself.")
    active: bool = Field(False, description="Whether the server refreshes this dashboard now (someone watches it).")
    widgets: dict[str, dict] = Field(
        default_factory=dict,
        description="Per widget id, its latest finished dashboard_refresh (state done or failed), as published.",
    )


class RefreshBody(BaseModel):
    widget_id: str | None = Field(None, pattern=r"^w_[0-9a-f]{8}$", description="One widget; omitted: all of them.")


class RefreshQueued(BaseModel):
    dashboard_id: str
    widgets: list[str]


@router.get("/{dashboard_id}/live", response_model=LiveWidgets)
async def live_widgets(request: Request, dashboard_id: str = DashboardIdPath, user: User = Depends(current_user)) -> dict:
    """What a new viewer shows at once: each widget's latest result, kept by the live service."""
    live = services_of(request).live
    if live is None:
        await _call(_service(request).get(dashboard_id, user))  # the same refusals either way
        return {"live": False, "active": False, "widgets": {}}
    return await _call(live.snapshot_for(user, dashboard_id))


@router.post("/{dashboard_id}/refresh", response_model=RefreshQueued)
async def refresh(request: Request, body: RefreshBody | None = None, dashboard_id: str = DashboardIdPath,
                  user: User = Depends(current_user)) -> dict:
    """Viewer role: refresh one widget or all now; outcomes arrive as ``dashboard_refresh``."""
    live = services_of(request).live
    if live is None:
        raise HTTPException(409, "live dashboards are switched off on this server")
    return await _call(live.refresh_for(user, dashboard_id, body.widget_id if body else None))
