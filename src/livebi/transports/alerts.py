"""REST routes for alerts: list, create, delete the caller's own.

Thin adapters over :class:`livebi.live.alert_service.AlertService`. Like the dashboard routes:
a bearer token or the browser's session cookie (with ``X-CSRF-Token`` on POST and DELETE) is
needed (401 without); refusals map onto HTTP as ``forbidden`` 403 (a dashboard the caller may not
view, a warehouse they may not query), ``not_found`` 404 (no such dashboard, widget, or alert of
the caller's), ``invalid_op`` 400 (a bad field, or too many alerts); a body of the wrong shape
gets 422 naming the field.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ..auth import User
from .dashboards import _call as call_service  # the same ProtocolError -> HTTP mapping
from .http import current_user, services_of

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

AlertIdPath = Path(..., max_length=64, description="The alert's id, a_<12 hex>.")
Op = Literal[">", ">=", "<", "<="]
Aggregate = Literal["last", "first", "max", "min", "sum", "count"]


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dashboard_id: str = Field(..., min_length=1, max_length=64)
    widget_id: str = Field(..., min_length=1, max_length=64)
    op: Op
    threshold: float = Field(..., allow_inf_nan=False, description="The value the widget's number is compared with.")
    column: str | None = Field(None, min_length=1, max_length=200,
                               description="The result column to read; null: the first numeric column.")
    aggregate: Aggregate = Field("last", description="How the column becomes one number: the last or first row's "
                                 "value, max, min, sum, or count (the number of rows).")
    label: str | None = Field(None, max_length=200, description="Shown as the notification's title (default: the widget's title).")


class Alert(BaseModel):
    id: str
    dashboard_id: str
    widget_id: str
    column: str | None
    aggregate: Aggregate
    op: Op
    threshold: float
    label: str
    state: Literal["above", "below", "unknown"] = Field(..., description="Where the value was at the last refresh.")
    condition: str = Field(..., description="The condition in words, e.g. 'revenue > 10,000'.")
    created_at: str
    last_fired_at: str | None
    dashboard_title: str | None
    widget_title: str | None
    status: Literal["active", "widget_removed", "no_access"]


class AlertList(BaseModel):
    alerts: list[Alert]


@router.get("", response_model=AlertList)
async def list_alerts(request: Request, user: User = Depends(current_user)) -> dict:
    """The caller's alerts, oldest first (nobody else's)."""
    return {"alerts": await call_service(services_of(request).alerts.list_for(user))}


@router.post("", status_code=201, response_model=Alert)
async def create_alert(body: CreateBody, request: Request, user: User = Depends(current_user)) -> dict:
    """An alert on a widget of a dashboard the caller may view; it fires once each time a
    refresh crosses the condition, as a ``notification`` on ``user:<id>``."""
    return await call_service(services_of(request).alerts.create(user, **body.model_dump()))


@router.delete("/{alert_id}", status_code=204, response_class=Response)
async def delete_alert(request: Request, alert_id: str = AlertIdPath, user: User = Depends(current_user)) -> Response:
    """Only the caller's own alerts; any other id is 404."""
    await call_service(services_of(request).alerts.delete(user, alert_id))
    return Response(status_code=204)
