"""REST route of the ingest API: ``POST /api/tables/{table}/rows?warehouse=NAME``.

A thin adapter over :class:`livebi.live.ingest.IngestService`. Authenticated like every ``/api``
route (a bearer token, or the browser's session cookie with its ``X-CSRF-Token``). The body is
``{"rows": [{column: value, ...}, ...]}`` (1..``ingest_max_rows`` rows, at most
``ingest_max_body_bytes``; a larger body is refused with 413 before it is parsed, and parsing runs
off the event loop). The answer is ``{"warehouse", "table", "inserted"}``; errors are
``{"detail": message, "code"}`` (plus ``details``, one ``{"row", "column", "message"}`` per bad
value, and ``problems`` for ``invalid_rows``) with the statuses of
:data:`livebi.live.ingest.STATUS`. Nothing is written unless every row is.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..auth import User
from ..live.ingest import IngestError
from .http import current_user, services_of

router = APIRouter(tags=["ingest"])


class IngestBody(BaseModel):
    """The request body (documented for the OpenAPI schema; parsed by hand, off the loop)."""

    rows: list[dict[str, Any]] = Field(..., description="Row objects, column name -> JSON value.")


class Inserted(BaseModel):
    warehouse: str
    table: str
    inserted: int


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            return None
    return bytes(raw)


def _rows_of(raw: bytes) -> Any:
    """The ``rows`` of a body (runs in a worker thread: megabytes of JSON)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise IngestError("invalid_body", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or "rows" not in body:
        raise IngestError("invalid_body", 'the body must be a JSON object {"rows": [...]}')
    extra = sorted(set(body) - {"rows"})
    if extra:
        raise IngestError("invalid_body", f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}: "
                          'the body is {"rows": [...]}')
    return body["rows"]


@router.post(
    "/api/tables/{table}/rows",
    response_model=Inserted,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": IngestBody.model_json_schema()}}}},
)
async def insert_rows(
    request: Request,
    table: str = Path(..., min_length=1, max_length=256, description="The table's name, as the warehouse schema spells it."),
    warehouse: str | None = Query(None, max_length=128, description="The warehouse; default: the caller's default one."),
    user: User = Depends(current_user),
) -> Any:
    """Insert rows into a table in one transaction, then refresh the live widgets that read it."""
    services = services_of(request)
    limit = services.settings.ingest_max_body_bytes
    try:
        services.ingest.authorize(user, warehouse)  # before reading a body nobody may send
        raw = await _read_body(request, limit)
        if raw is None:
            raise IngestError("too_large", f"the body is larger than {limit} bytes (ingest_max_body_bytes)")
        rows = await asyncio.to_thread(_rows_of, raw)
        return await services.ingest.insert(user, warehouse, table, rows)
    except IngestError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
