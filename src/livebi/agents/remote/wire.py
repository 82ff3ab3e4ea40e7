"""The wire protocol between a livebi server and a remote agent.

One JSON object per WebSocket message, or per line of an HTTP NDJSON stream:

* server -> agent: ``{"id": <str>, "op": <name>, "args": {...}}`` and, over WebSocket,
  ``{"id": <str>, "op": "cancel"}``;
* agent -> server: first ``{"type": "hello", "agent": <kind>, "protocol": 1, "max_message_bytes": <int>}``
  (WebSocket only), then per call any number of ``{"id", "type": "progress", "args": [...]}``
  and exactly one final ``{"id", "type": "result", "data": {...}}`` or ``{"id", "type":
  "error", "kind", "code", "message", "suggestions"}``.

``kind`` tells the server which exception the in-process agent would have raised, so an error
keeps its code and its meaning (a SQL safety refusal stays a refusal, a timeout a timeout).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from ...warehouse.base import QueryResult, QueryTimeout, WarehouseError
from ...warehouse.safety import UnsafeSQL
from ..nlp.llm import LLMFailure
from ..nlp.parser import NotUnderstood, ParsedQuestion
from ..viz.model import Chart

AGENTS = ("nlp", "data", "viz")
#: ops each kind of agent serves
OPS: dict[str, tuple[str, ...]] = {"nlp": ("answer", "repair"), "data": ("run",), "viz": ("chart",)}
#: the pipeline stage each agent works in (AskFailed.stage of its failures)
STAGE_OF = {"nlp": "nlp_processing", "data": "data_processing", "viz": "visualization"}

#: the version of this protocol, said in ``hello``; a server refuses an agent speaking another
PROTOCOL = 1
WS_PATH = "/agent"
HTTP_PATH = "/agent/call"


class WireError(ValueError):
    """A message that is not valid JSON of the expected shape, or too large."""


class RemoteAgentError(Exception):
    """The remote agent failed with a bug (``internal``) or refused a malformed call: the
    pipeline reports it as it reports a bug of an in-process agent."""

    def __init__(self, agent: str, code: str, message: str) -> None:
        super().__init__(f"{agent} agent: {code}: {message}")
        self.code = code


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)


def loads(raw: str | bytes, *, max_bytes: int) -> dict[str, Any]:
    """Parse one message; raises WireError when it is too large or not a JSON object."""
    if len(raw) > max_bytes:
        raise WireError(f"message of {len(raw):,} bytes is larger than {max_bytes:,}")
    try:
        message = json.loads(raw)
    except ValueError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError("not a JSON object")
    return message


#: messages up to this size are encoded and decoded on the event loop (well under a
#: millisecond); larger ones (results) in a worker thread, so other connections keep being served
INLINE_BYTES = 64 * 1024


async def encode(message: dict[str, Any], *, large: bool = False) -> str:
    """:func:`dumps`, in a worker thread when the caller knows the message is ``large``."""
    return await asyncio.to_thread(dumps, message) if large else dumps(message)


async def decode(raw: str | bytes, *, max_bytes: int) -> dict[str, Any]:
    """:func:`loads`, in a worker thread for a message larger than INLINE_BYTES."""
    if len(raw) > INLINE_BYTES:
        return await asyncio.to_thread(loads, raw, max_bytes=max_bytes)
    return loads(raw, max_bytes=max_bytes)


def base_urls(url: str) -> tuple[str, str]:
    """``(websocket url, http url)`` of an agent given as ``ws://``, ``wss://``, ``http://`` or
    ``https://host:port`` (a path after the port is ignored)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("ws", "wss", "http", "https"):
        raise ValueError(f"agent URL must start with ws://, wss://, http:// or https://, not {url!r}")
    host = rest.split("/", 1)[0]
    if not host:
        raise ValueError(f"agent URL has no host: {url!r}")
    secure = scheme in ("wss", "https")
    return f"{'wss' if secure else 'ws'}://{host}{WS_PATH}", f"{'https' if secure else 'http'}://{host}{HTTP_PATH}"


# -- errors ----------------------------------------------------------------------------------


def error_message(call_id: str, exc: BaseException) -> dict[str, Any]:
    """The final ``error`` message for ``exc`` raised by an agent while serving a call."""
    if isinstance(exc, NotUnderstood):
        kind, code, message, suggestions = "not_understood", exc.code, exc.message, exc.suggestions
    elif isinstance(exc, LLMFailure):
        kind, code, message, suggestions = "llm", "llm_failure", exc.reason, []
    elif isinstance(exc, WarehouseError):
        kind, code, message = "warehouse", exc.code, exc.message
        suggestions = list(getattr(exc, "suggestions", []) or [])
    else:
        kind, code, message, suggestions = "internal", "internal", f"internal error: {type(exc).__name__}", []
    return {"id": call_id, "type": "error", "kind": kind, "code": str(getattr(code, "value", code)),
            "message": message, "suggestions": list(suggestions)}


def raise_error(agent: str, message: dict[str, Any]) -> None:
    """Raise what the in-process agent would have raised for an ``error`` message."""
    kind, code = message.get("kind"), str(message.get("code", "internal"))
    text = str(message.get("message", ""))
    suggestions = [str(s) for s in message.get("suggestions") or []]
    if kind == "not_understood":
        raise NotUnderstood(code, text, suggestions)
    if kind == "llm":
        raise LLMFailure(text)
    if kind == "warehouse":
        if code == "query_timeout":
            timeout = QueryTimeout.__new__(QueryTimeout)  # the agent's message, not a new one
            WarehouseError.__init__(timeout, code, text)
            raise timeout
        raise UnsafeSQL(code, text, suggestions=suggestions)  # a WarehouseError with suggestions
    raise RemoteAgentError(agent, code, text)


# -- values ----------------------------------------------------------------------------------


def result_to_json(result: QueryResult) -> dict[str, Any]:
    return {
        "columns": list(result.columns), "column_kinds": list(result.column_kinds), "rows": result.rows,
        "row_count": result.row_count, "truncated": result.truncated, "elapsed_ms": result.elapsed_ms,
    }


def result_from_json(data: dict[str, Any]) -> QueryResult:
    try:
        columns = [str(c) for c in data["columns"]]
        kinds = [str(k) for k in data["column_kinds"]]
        rows = data["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
            raise WireError("rows must be lists as long as columns")
        if len(kinds) != len(columns):
            raise WireError("column_kinds must be as long as columns")
        return QueryResult(columns=columns, column_kinds=kinds, rows=rows, row_count=len(rows),
                           truncated=bool(data["truncated"]), elapsed_ms=float(data.get("elapsed_ms") or 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"bad result: {exc!r}") from None


def parsed_from_json(data: dict[str, Any]) -> ParsedQuestion:
    return _from_json(ParsedQuestion, data)


def chart_from_json(data: dict[str, Any]) -> Chart:
    return _from_json(Chart, data)


def _from_json(cls: Any, data: dict[str, Any]) -> Any:
    """A dataclass from its JSON form (unknown keys ignored); WireError when fields are missing."""
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise WireError(f"bad {cls.__name__}: {exc}") from None
