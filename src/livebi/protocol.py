"""The livebi wire protocol: ops, replies, publications, error and close codes.

Client -> server: one JSON object per op, ``{"id": <int>, "op": <name>, ...}``.
Server -> client: a reply per op (``{"id", "ok": true, "data"}`` or ``{"id", "ok": false,
"error": {...}}``) and publications on subscribed channels (``{"channel", "epoch", "seq", "type",
"ts", "data"}``), possibly several at once in one ``message_batch`` frame.

The same JSON travels over the WebSocket and the HTTP fallback. ``docs/protocol.md`` documents it
and ``livebi docs schema`` exports the JSON schema generated from these models.
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, StringConstraints, ValidationError, field_validator, model_validator

# ---------------------------------------------------------------------------------------------
# Codes


class ErrorCode(str, enum.Enum):
    """Error codes carried in ``error.code`` of replies and ``error`` publications."""

    # Envelope / transport
    bad_json = "bad_json"  # the frame is not a JSON object
    too_large = "too_large"  # the frame exceeds max_message_bytes
    unknown_op = "unknown_op"  # "op" names no operation
    invalid_op = "invalid_op"  # fields missing or of the wrong type
    unauthenticated = "unauthenticated"  # the op needs a logged-in connection
    forbidden = "forbidden"  # authenticated, but not allowed (e.g. someone else's query)
    unknown_channel = "unknown_channel"  # the channel name has no known form
    not_found = "not_found"  # the query, warehouse or object does not exist
    too_many_queries = "too_many_queries"  # the user has max_concurrent_queries_per_user running
    too_many_connections = "too_many_connections"  # connection limit reached (per user or overall)
    rate_limited = "rate_limited"  # more ops per second than op_rate_per_s allows
    not_subscribed = "not_subscribed"  # presence on a channel the connection is not subscribed to
    feature_disabled = "feature_disabled"  # a feature flag switched this off
    internal = "internal"  # a bug: logged server side, the connection stays open
    # Ask pipeline (``error`` publications on query:<id>, stage says where)
    empty_question = "empty_question"
    question_too_long = "question_too_long"
    not_understood = "not_understood"
    unknown_warehouse = "unknown_warehouse"
    invalid_sql = "invalid_sql"
    multiple_statements = "multiple_statements"
    forbidden_sql = "forbidden_sql"
    unknown_table = "unknown_table"
    unknown_column = "unknown_column"
    query_failed = "query_failed"
    warehouse_unavailable = "warehouse_unavailable"
    query_timeout = "query_timeout"
    resources_exceeded = "resources_exceeded"  # the query needed more memory than the server allows
    cancelled = "cancelled"
    # Remote agents (agents/remote; the stage names the agent)
    agent_unavailable = "agent_unavailable"
    agent_pool_exhausted = "agent_pool_exhausted"


ERROR_HELP: dict[str, str] = {
    "bad_json": "The frame is not a JSON object.",
    "too_large": "The frame is larger than max_message_bytes; nothing in it was applied.",
    "unknown_op": "The op field names no operation.",
    "invalid_op": "Fields are missing or of the wrong type; `details` lists them.",
    "unauthenticated": "The connection has not authenticated, or its token or ticket is invalid, expired, used or revoked (the message says which).",
    "forbidden": "The user may not do this (e.g. subscribe to another user's query, edit a dashboard as a viewer, subscribe to a dashboard not shared with them).",
    "unknown_channel": "The channel name is not of a known form (query:, dashboard:, user:, system).",
    "not_found": "The query, dashboard, widget, user or other object does not exist (a widget removed by someone else: `details.widget_id`).",
    "too_many_queries": "The user already has max_concurrent_queries_per_user questions running.",
    "too_many_connections": "The user (max_connections_per_user) or the server (max_connections) has too many connections.",
    "rate_limited": "The connection sent more than op_rate_per_s ops per second; the op was not applied.",
    "not_subscribed": "Presence needs a subscription to the channel first.",
    "feature_disabled": "A feature flag switched this feature off.",
    "internal": "An unexpected server error; it is logged and the connection stays open.",
    "empty_question": "The question is empty.",
    "question_too_long": "The question is longer than max_question_chars.",
    "not_understood": "The NLP agent could not map the question to the schema; see suggestions.",
    "unknown_warehouse": "The named warehouse is not configured.",
    "invalid_sql": "The SQL does not parse.",
    "multiple_statements": "Only one statement is allowed.",
    "forbidden_sql": "Only read-only SELECT queries are allowed (no writes, pragmas, file access).",
    "unknown_table": "The SQL names a table the warehouse does not have; see suggestions.",
    "unknown_column": "The SQL names a column the table does not have; see suggestions.",
    "query_failed": "The warehouse engine reported an error.",
    "warehouse_unavailable": "The warehouse could not be opened or reached.",
    "query_timeout": "The query ran longer than query_timeout_s and was stopped.",
    "resources_exceeded": "The query needed more memory (or a larger value) than the server allows; only this query failed. Ask for less: filter, aggregate, shorter values.",
    "cancelled": "The question was cancelled (cancel op or the asker disconnected).",
    "agent_unavailable": "The remote agent of the stage (nlp_agent_urls, data_agent_urls, viz_agent_urls) could not be reached over WebSocket or HTTP; try again shortly.",
    "agent_pool_exhausted": "Every connection to the stage's remote agent was busy for agent_pool_timeout_s (agent_max_connections); try again shortly.",
}


class CloseCode(enum.IntEnum):
    """WebSocket close codes livebi uses (4000-4999 are application codes)."""

    normal = 1000
    going_away = 1001  # the peer went away (browser navigation, dead heartbeat)
    message_too_big = 1009  # a frame beyond the transport's hard limit
    service_restart = 1012  # the server is shutting down: reconnect and resubscribe with since
    try_again_later = 1013  # the server is at max_connections: reconnect later with backoff
    unauthenticated = 4001  # no valid token (query parameter or first auth op) in time
    feature_disabled = 4003  # the WebSocket transport is switched off (HTTP-only mode)
    slow_consumer = 4008  # the outgoing queue overflowed: reconnect and recover from history
    too_many_connections = 4009  # the user has max_connections_per_user connections open
    too_many_unauthenticated = 4029  # the address has max_unauthenticated_per_address sockets waiting to authenticate


CLOSE_HELP: dict[int, str] = {
    1000: "Normal closure.",
    1001: "Going away: the peer left or stopped answering heartbeats.",
    1009: "A frame exceeded the transport's hard size limit.",
    1012: "The server is restarting: reconnect with backoff and resubscribe with `since`.",
    1013: "The server is at max_connections: reconnect later with backoff.",
    4001: "Unauthenticated: the token or ticket was missing, invalid, expired, used or revoked (the reason says which), a token was put in the URL (use a ticket), or auth did not come in time.",
    4003: "The WebSocket transport is switched off (HTTP-only mode): use the SSE fallback.",
    4008: "Slow consumer: the connection's outgoing queue overflowed; reconnect and recover.",
    4009: "Too many connections for this user (max_connections_per_user).",
    4029: "Too many connections from this address are waiting to authenticate (max_unauthenticated_per_address): authenticate the open ones (ticket in the URL or a first auth op) or close them.",
}


class Stage(str, enum.Enum):
    nlp_processing = "nlp_processing"
    data_processing = "data_processing"
    visualization = "visualization"


#: Substages of each stage, in order, with the overall percent reached when each starts.
SUBSTAGES: dict[str, tuple[tuple[str, int], ...]] = {
    "nlp_processing": (("intent_extraction", 5), ("schema_linking", 12), ("sql_generation", 20)),
    "data_processing": (("sql_validation", 25), ("queued", 27), ("sql_execution", 30), ("result_processing", 80)),
    "visualization": (("chart_selection", 85), ("chart_generation", 92)),
}

# ---------------------------------------------------------------------------------------------
# Client -> server ops


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(..., description="Client-chosen id echoed in the reply.")


class Since(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epoch: str
    seq: int = Field(..., ge=0)


class SubscribeTarget(BaseModel):
    """One channel to subscribe to from the ``auth`` op, optionally resuming after ``since``."""

    model_config = ConfigDict(extra="forbid")
    channel: str = Field(..., max_length=200)
    since: Since | None = None


MAX_AUTH_SUBSCRIBE = 50


class AuthOp(_Op):
    """Authenticate the connection with a token from ``POST /api/login``; with ``subscribe``,
    also subscribe to those channels in the same round trip (each answered in the reply's
    ``subscribed``, in order; a refused channel does not fail the op)."""

    op: Literal["auth"]
    token: str = Field(..., max_length=4096)
    subscribe: list[str | SubscribeTarget] | None = Field(None, max_length=MAX_AUTH_SUBSCRIBE)


class SubscribeOp(_Op):
    """Subscribe to a channel; with ``since`` the reply replays what was missed."""

    op: Literal["subscribe"]
    channel: str = Field(..., max_length=200)
    since: Since | None = None


class UnsubscribeOp(_Op):
    op: Literal["unsubscribe"]
    channel: str = Field(..., max_length=200)


class AskOp(_Op):
    """Ask a question in plain language, or run a SELECT (``sql``) through the same stages."""

    op: Literal["ask"]
    question: str | None = Field(None, max_length=20_000)
    sql: str | None = Field(None, max_length=20_000)
    warehouse: str | None = Field(None, description="Warehouse name; default: the first configured.")
    chart: str | None = Field(None, description="Chart type the user asks for; default: chosen.")
    fresh: bool = Field(
        False,
        description="Read the warehouse now: no result from the result cache, no sharing a query already running "
        "(the answer then refreshes the cache).",
    )


class CancelOp(_Op):
    op: Literal["cancel"]
    query_id: str = Field(..., max_length=100)


class PingOp(_Op):
    op: Literal["ping"]


class PresenceOp(_Op):
    """List who is on a channel; with ``state``, also set this connection's presence state."""

    op: Literal["presence"]
    channel: str = Field(..., max_length=200)
    state: dict[str, Any] | None = Field(None, description="Small JSON object, e.g. {\"editing\": \"w1\"}.")


# Dashboard edits ------------------------------------------------------------------------------
# The bounds of the dashboard data model (docs/protocol.md, "Dashboards"). Every field an edit
# carries is checked here, strictly (no "3" for 3, no true for 1), so the pure op application in
# livebi.dashboards.model only ever sees well-formed values.

GRID_COLUMNS = 12
MAX_WIDGET_ROWS = 24  # tallest widget, in row units
MAX_GRID_Y = 10_000  # lowest row a widget may start at
MAX_EDIT_OPS = 50  # ops in one edit
MAX_CHART_SETTINGS_BYTES = 4096


def _clean_text(value: str) -> str:
    # NUL cannot be stored by PostgreSQL text columns, and a lone surrogate (valid JSON escape,
    # invalid Unicode) cannot be encoded by any driver: refuse both here, as bad input, instead
    # of failing later inside the store as an internal error.
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def _text(*, min_length: int = 0, max_length: int) -> Any:
    """A string type with length bounds and no NUL or lone surrogate (bounds checked first)."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_clean_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ChartSpec(_Strict):
    """A widget's chart choice; ``settings`` is a small JSON object the UI owns."""

    type: _text(max_length=50) | None = Field(None, description="Chart type (null: chosen from the result).")
    settings: dict[str, Any] = Field(default_factory=dict, description=f"At most {MAX_CHART_SETTINGS_BYTES} bytes of JSON.")

    @field_validator("settings")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        except (ValueError, UnicodeEncodeError, RecursionError):
            raise ValueError("settings must be plain JSON (no NaN, valid Unicode, not nested too deeply)") from None
        if size > MAX_CHART_SETTINGS_BYTES or "\\u0000" in json.dumps(value):
            raise ValueError(f"settings must be at most {MAX_CHART_SETTINGS_BYTES} bytes of JSON without NUL characters")
        return value


class RefreshSpec(_Strict):
    """How a widget stays current while its dashboard is watched (see docs/live.md)."""

    interval_s: int | None = Field(
        None, ge=1, le=86_400,
        description="Refresh every this many seconds (the server's live_min_interval_s is the floor); null: no timer.",
    )
    on_data_change: bool = Field(False, description="Refresh at once when a table the widget reads changes.")


WidgetTitle = _text(min_length=1, max_length=200)
WidgetQuestion = _text(max_length=500)
WidgetSQL = _text(max_length=20_000)
WarehouseName = _text(min_length=1, max_length=128)
DashboardTitle = _text(min_length=1, max_length=200)
DashboardDescription = _text(max_length=2000)


class NewWidget(_Strict):
    """The widget of ``add_widget``; the server assigns its id. Omitted placement: x 0, below
    every other widget, 6 columns wide, 4 rows high."""

    title: WidgetTitle
    question: WidgetQuestion | None = None
    sql: WidgetSQL | None = None
    warehouse: WarehouseName | None = None
    chart: ChartSpec = Field(default_factory=ChartSpec)
    x: int = Field(0, ge=0, le=GRID_COLUMNS - 1)
    y: int = Field(None, ge=0, le=MAX_GRID_Y)
    w: int = Field(6, ge=1, le=GRID_COLUMNS)
    h: int = Field(4, ge=1, le=MAX_WIDGET_ROWS)
    refresh: RefreshSpec = Field(default_factory=RefreshSpec)


class _Fields(_Strict):
    """The fields an update op sets: only those the client named, at least one."""

    @model_validator(mode="after")
    def _not_empty(self) -> "_Fields":
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self


class WidgetFields(_Fields):
    """Fields ``update_widget`` may set (at least one); ``question``, ``sql`` and ``warehouse``
    may be set to null. ``chart`` and ``refresh`` are replaced whole."""

    title: WidgetTitle = None
    question: WidgetQuestion | None = None
    sql: WidgetSQL | None = None
    warehouse: WarehouseName | None = None
    chart: ChartSpec = None
    refresh: RefreshSpec = None


class DashboardFields(_Fields):
    """Fields ``update_dashboard`` may set (at least one)."""

    title: DashboardTitle = None
    description: DashboardDescription = None


WidgetId = Annotated[str, Field(pattern=r"^w_[0-9a-f]{8}$")]


class AddWidget(_Strict):
    type: Literal["add_widget"]
    widget: NewWidget


class RemoveWidget(_Strict):
    type: Literal["remove_widget"]
    widget_id: WidgetId


class MoveWidget(_Strict):
    type: Literal["move_widget"]
    widget_id: WidgetId
    x: int = Field(..., ge=0, le=GRID_COLUMNS - 1)
    y: int = Field(..., ge=0, le=MAX_GRID_Y)


class ResizeWidget(_Strict):
    type: Literal["resize_widget"]
    widget_id: WidgetId
    w: int = Field(..., ge=1, le=GRID_COLUMNS)
    h: int = Field(..., ge=1, le=MAX_WIDGET_ROWS)


class UpdateWidget(_Strict):
    type: Literal["update_widget"]
    widget_id: WidgetId
    fields: WidgetFields


class UpdateDashboard(_Strict):
    type: Literal["update_dashboard"]
    fields: DashboardFields


DashboardOp = Annotated[
    Union[AddWidget, RemoveWidget, MoveWidget, ResizeWidget, UpdateWidget, UpdateDashboard],
    Field(discriminator="type"),
]
DASHBOARD_OP_TYPES = ("add_widget", "remove_widget", "move_widget", "resize_widget", "update_widget", "update_dashboard")
DashboardId = Annotated[str, Field(pattern=r"^d_[0-9a-f]{12}$", description="d_<12 hex>")]


class EditOp(_Op):
    """Apply 1..50 dashboard ops atomically (all or none), in order, to the latest state."""

    op: Literal["edit"]
    dashboard_id: DashboardId
    ops: list[DashboardOp] = Field(..., min_length=1, max_length=MAX_EDIT_OPS)


class RefreshOp(_Op):
    """Refresh a dashboard's widgets now (viewer role): one widget, or all of them. The reply
    lists the widgets asked to refresh; each outcome arrives as ``dashboard_refresh`` (reason
    ``manual``) on ``dashboard:<id>``."""

    op: Literal["refresh"]
    dashboard_id: DashboardId
    widget_id: WidgetId | None = None


class ShareOp(_Op):
    """Send a finished question's result to named users, or to a dashboard's members and owner
    (everyone but the sharer). Exactly one of ``usernames`` and ``dashboard_id``. Only the
    asker may share; recipients may then subscribe to ``query:<id>`` and fetch its result."""

    op: Literal["share"]
    query_id: str = Field(..., max_length=100)
    usernames: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, min_length=1, max_length=50, description="Recipients by username (1-50)."
    )
    dashboard_id: str | None = Field(None, max_length=100, description="Share with this dashboard's members and owner.")


ClientOp = Annotated[
    Union[AuthOp, SubscribeOp, UnsubscribeOp, AskOp, CancelOp, PingOp, PresenceOp, EditOp, ShareOp, RefreshOp],
    Field(discriminator="op"),
]
OP_NAMES = ("auth", "subscribe", "unsubscribe", "ask", "cancel", "ping", "presence", "edit", "share", "refresh")
_client_op_adapter: TypeAdapter[Any] = TypeAdapter(ClientOp)


class ProtocolError(Exception):
    """A client message that cannot be processed; becomes an error reply."""

    def __init__(self, code: ErrorCode, message: str, *, op_id: int | None = None, details: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.op_id = op_id
        self.details = details

    def reply(self) -> dict[str, Any]:
        return error_reply(self.op_id, self.code, self.message, details=self.details)


def parse_op(raw: str | bytes, *, max_bytes: int) -> Any:
    """Parse and validate one client frame into an op model.

    Raises:
        ProtocolError: with the code that tells the client what was wrong; ``op_id`` is set
            whenever the frame carried a usable id so the client can match the error.
    """
    if len(raw) > max_bytes:
        raise ProtocolError(ErrorCode.too_large, f"message of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise ProtocolError(ErrorCode.bad_json, "message is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(ErrorCode.bad_json, f"message is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.bad_json, "message must be a JSON object")
    op_id = obj.get("id") if isinstance(obj.get("id"), int) and not isinstance(obj.get("id"), bool) else None
    op = obj.get("op")
    if op not in OP_NAMES:
        raise ProtocolError(
            ErrorCode.unknown_op, f"unknown op {op!r}; expected one of {', '.join(OP_NAMES)}", op_id=op_id
        )
    try:
        return _client_op_adapter.validate_python(obj)
    except ValidationError as exc:
        raise invalid_op(exc, f"invalid {op} op", op_id=op_id, skip=1) from None


def invalid_op(exc: ValidationError, what: str, *, op_id: int | None = None, skip: int = 0) -> ProtocolError:
    """An ``invalid_op`` error listing each field pydantic refused (``skip`` leading parts of
    each location dropped: the op name of the tagged union)."""
    details = [
        {"field": ".".join(str(p) for p in err["loc"][skip:]) or "op", "problem": err["msg"]}
        for err in exc.errors(include_url=False)
    ]
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
    return ProtocolError(ErrorCode.invalid_op, f"{what}: {summary}", op_id=op_id, details=details)


# ---------------------------------------------------------------------------------------------
# Server -> client


def ok_reply(op_id: int | None, data: Any = None) -> dict[str, Any]:
    return {"id": op_id, "ok": True, "data": data if data is not None else {}}


def error_reply(
    op_id: int | None, code: ErrorCode | str, message: str, *, details: Any = None, **extra: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": str(getattr(code, "value", code)), "message": message}
    if details is not None:
        error["details"] = details
    error.update(extra)
    return {"id": op_id, "ok": False, "error": error}


class Publication(BaseModel):
    """A message published on a channel (as sent to every subscriber)."""

    channel: str
    epoch: str = Field(..., description="Changes when the channel's history is lost.")
    seq: int = Field(..., description="Increases by one per publication on the channel.")
    type: str
    ts: float = Field(..., description="Server time (Unix seconds) of publication.")
    data: dict[str, Any]


class ProgressData(BaseModel):
    query_id: str
    stage: Stage
    substage: str
    progress: float = Field(..., ge=0, le=100, description="Overall percent of the whole question.")
    details: str = ""
    rows_processed: int = 0


class ErrorData(BaseModel):
    query_id: str
    stage: Stage
    code: str
    message: str
    suggestions: list[str] = Field(default_factory=list)


class ResultData(BaseModel):
    query_id: str
    question: str | None
    warehouse: str
    engine: str = Field(..., description="'parser', 'llm' or 'sql' (the user wrote the SQL).")
    sql: str
    explanation: str = ""
    assumptions: list[str] = Field(default_factory=list)
    alternatives: list[str] = Field(default_factory=list)
    confidence: float | None = Field(
        None, ge=0, le=1,
        description="How sure the engine is of its reading of the question (0-1); null for SQL the user wrote.",
    )
    confidence_reasons: list[str] = Field(
        default_factory=list, description="Why the confidence is below 1, the biggest doubt first (at most 5).",
    )
    low_confidence: bool = Field(
        False, description="The confidence is below llm_confidence_threshold: clients ask the user to check the assumptions.",
    )
    columns: list[str]
    column_kinds: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    chart: dict[str, Any]
    warnings: list[str] = Field(
        default_factory=list,
        description="Things that went wrong without losing the answer, e.g. a chart that could not be built (the rows come as a table).",
    )
    timings_ms: dict[str, float]
    cached: bool = Field(
        False,
        description="The rows come from the result cache: read for an earlier question, and no change to the tables "
        "the query reads was seen since (see as_of, cache_age_s; ask with fresh: true to read them again).",
    )
    as_of: str | None = Field(
        None, description="When the query that read the rows started (ISO 8601, UTC); null when not known.",
    )
    cache_age_s: float | None = Field(None, description="Seconds since as_of when the result is cached; else null.")


class UserRef(BaseModel):
    id: str
    username: str


class SharedQueryResultData(BaseModel):
    """Published on ``user:<id>`` of each recipient of a ``share`` op."""

    query_id: str
    shared_by: UserRef
    question: str | None = Field(..., description="The question as asked (None when the asker wrote SQL).")
    warehouse: str
    result: ResultData = Field(..., description="The result data as it was published on query:<id>.")
    shared_at: str = Field(..., description="ISO 8601 time the share was recorded.")


class PresenceMember(BaseModel):
    conn_id: str
    user_id: str
    username: str
    state: dict[str, Any]
    joined_at: float


class PresenceData(BaseModel):
    """Presence on a ``dashboard:<id>`` channel, at most one per ``presence_coalesce_ms``.

    ``changes``: who joined, changed state (``updated``) or left (``left``: conn ids) since the
    last one; apply ``left`` first. ``count``: the channel lists no members (more than
    ``presence_max_members``): drop the list and show the count. ``members``: the channel lists
    members again; ``members`` is all of them."""

    event: Literal["changes", "count", "members"]
    count: int = Field(..., description="Members on the channel (on this process).")
    joined: list[PresenceMember] = Field(default_factory=list)
    updated: list[PresenceMember] = Field(default_factory=list)
    left: list[str] = Field(default_factory=list, description="conn_id of each member that left.")
    members: list[PresenceMember] = Field(default_factory=list, description="Everyone (event members only).")


class DashboardUpdateData(BaseModel):
    """One applied edit op (``version`` is the dashboard's version after it), or a change that
    is not an edit (``members``, ``sharing``, ``deleted``: ``version`` unchanged)."""

    dashboard_id: str
    update_type: Literal[
        "add_widget", "remove_widget", "move_widget", "resize_widget", "update_widget", "update_dashboard",
        "members", "sharing", "deleted",
    ]
    data: dict[str, Any]
    user_id: str = Field(..., description="Who made the change.")
    version: int
    timestamp: str = Field(..., description="ISO 8601 UTC; for edits, the snapshot's updated_at.")


class AlertNotificationData(BaseModel):
    """``notification`` on ``user:<id>`` when one of the user's alerts fired: a refresh of its
    widget crossed into the condition (once per crossing, not on every refresh while it holds)."""

    kind: Literal["alert"]
    alert_id: str
    dashboard_id: str
    widget_id: str
    title: str = Field(..., description="The alert's label, else the widget's title.")
    message: str = Field(..., description="What happened, e.g. 'Revenue is 12,345, above 10,000'.")
    value: float = Field(..., description="The value that crossed the threshold.")
    threshold: float
    op: Literal[">", ">=", "<", "<="]
    timestamp: str = Field(..., description="ISO 8601 UTC time it fired (stored as the alert's last_fired_at).")


class ServiceDegradationData(BaseModel):
    """``service_degradation`` on ``system``: a part of the service this node depends on is
    away (``active: true``) or back (``active: false``)."""

    active: bool
    component: str = Field(..., description="What degraded, e.g. 'broker' (Redis unreachable) or 'data_agent'.")
    mode: str = Field(..., description="How the node carries on, e.g. 'single-node', or 'cluster' once back; for an agent its transport.")
    message: str = Field(..., description="What it means for users, in plain words.")
    transport: str | None = Field(
        None, description="For a remote agent: how this node reaches it now, 'http' (degraded) or 'websocket'.",
    )


class MessageBatch(BaseModel):
    type: Literal["message_batch"]
    batch_id: str
    timestamp: float
    messages: list[dict[str, Any]]


PUBLICATION_TYPES: dict[str, type[BaseModel] | None] = {
    "progress": ProgressData,
    "result": ResultData,
    "error": ErrorData,
    "presence": PresenceData,
    "dashboard_update": DashboardUpdateData,
    "shared_query_result": SharedQueryResultData,
    "notification": AlertNotificationData,
    "service_degradation": ServiceDegradationData,
}


def json_schema() -> dict[str, Any]:
    """The JSON schema of every client op and server message, for docs and client authors."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "livebi wire protocol",
        "client_ops": TypeAdapter(ClientOp).json_schema(),
        "publication": Publication.model_json_schema(),
        "message_batch": MessageBatch.model_json_schema(),
        "publication_data": {name: model.model_json_schema() for name, model in PUBLICATION_TYPES.items() if model},
        "error_codes": {code.value: ERROR_HELP[code.value] for code in ErrorCode},
        "close_codes": {str(int(code)): CLOSE_HELP[int(code)] for code in CloseCode},
    }


def dumps(obj: Any) -> str:
    """Compact JSON used for every frame (NaN is not valid JSON: callers sanitize values)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)
