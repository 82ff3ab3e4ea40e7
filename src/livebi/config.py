"""Every livebi setting, declared once.

Each field has a default and help text. Environment variables ``LIVEBI_<NAME>`` set them, the
CLI maps its flags onto them, and ``docs/configuration.md`` is generated from this class
(``livebi docs config``); a test fails when the document drifts.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path.home() / ".livebi"


class Settings(BaseSettings):
    """livebi configuration. Groups: server, backends, security, limits, features, NLP."""

    model_config = SettingsConfigDict(env_prefix="LIVEBI_", extra="ignore", validate_default=True)

    # Server
    host: str = Field("127.0.0.1", description="Interface the HTTP/WebSocket server binds to.")
    port: int = Field(8000, description="TCP port of the HTTP/WebSocket server.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory for the demo warehouse and the default metadata store.",
    )

    # Backends (chosen by URL)
    warehouses: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Warehouses by name, e.g. '{\"sales\": \"duckdb:///sales.duckdb\"}' (JSON in the "
            "environment). The first one is the default for questions that name none. Empty: "
            "the generated demo warehouse."
        ),
    )
    store_url: str = Field(
        "",
        description="Metadata store URL: sqlite:///path or postgresql://... Empty: sqlite in data_dir.",
    )
    broker_url: str = Field(
        "memory://",
        description=(
            "Broker URL: memory:// (one process, history in memory) or redis://host:port/db (several "
            "processes or nodes share channels; seq, epoch and history live in Redis; see docs/deployment.md)."
        ),
    )
    redis_prefix: str = Field(
        "livebi:",
        description="Prefix of every Redis key and pub/sub channel the Redis broker uses (deployments sharing one Redis use different prefixes).",
    )
    redis_meta_ttl_s: float = Field(
        7 * 86400.0,
        description=(
            "Seconds a channel's epoch and seq stay in Redis after its last publication (at least history_ttl_s); "
            "past it the channel starts a new epoch."
        ),
    )
    redis_retry_s: float = Field(
        1.0,
        description=(
            "Seconds between attempts to reach Redis again while the Redis broker runs in single-node mode; every 5 times "
            "this, a node also checks that its pub/sub connection still delivers (a hung Redis or a silent network cut)."
        ),
    )
    live_lease_s: float = Field(
        6.0, ge=1, le=600,
        description=(
            "With the Redis broker: lifetime of the lease a node holds on a live dashboard it refreshes (renewed every "
            "third of it). When that node dies, another node with viewers takes over within about this long."
        ),
    )
    sse_forward_timeout_s: float = Field(
        5.0, gt=0, le=60,
        description=(
            "With the Redis broker: how long a node waits for the node holding an SSE stream to answer an op POSTed "
            "to it for that stream; no answer means the stream is gone (404)."
        ),
    )

    # Security
    secret_key: str = Field(
        "",
        description=(
            "Key that signs session tokens. Empty: a random key is generated and kept in "
            "data_dir/secret.key so tokens survive restarts."
        ),
    )
    token_ttl_s: int = Field(12 * 3600, description="Lifetime of a login token in seconds.")
    auth_timeout_s: float = Field(
        5.0,
        description=(
            "Seconds a WebSocket may stay open without authenticating (ticket in the URL or a "
            "first auth op); then it is closed with 4001."
        ),
    )
    # Security: exposure (operator endpoints, per-warehouse access; see SECURITY.md)
    metrics_access: Literal["loopback", "token", "public"] = Field(
        "loopback",
        description=(
            "Who may read /metrics and the details of /health (connections, running queries, "
            "warehouse names); everyone else gets /health as {\"status\": \"ok\"}. loopback: "
            "direct connections from this host without proxy headers (X-Forwarded-For, Forwarded, "
            "X-Real-IP); token: 'Authorization: Bearer <metrics_token>' (use this behind a reverse "
            "proxy, whose connections come from loopback too); public: anyone."
        ),
    )
    metrics_token: str = Field(
        "", description="Bearer token for metrics_access=token (at least 16 characters; required in that mode)."
    )
    api_docs: Literal["off", "loopback", "public"] = Field(
        "off",
        description=(
            "Serve the OpenAPI schema (/openapi.json) and Swagger UI (/api/docs, which loads its "
            "script and style from cdn.jsdelivr.net). off: neither; loopback: as for metrics_access; "
            "public: anyone."
        ),
    )
    warehouse_access: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Usernames allowed on each warehouse, e.g. '{\"finance\": [\"alice\", \"bob\"]}' (JSON in "
            "the environment); an empty list allows nobody. A warehouse not listed is open to every "
            "user. A user's default warehouse is the first configured one they may use. Naming a "
            "warehouse that is not configured stops startup."
        ),
    )

    @model_validator(mode="after")
    def _metrics_token_for_token_mode(self) -> "Settings":
        if self.metrics_access == "token" and len(self.metrics_token) < 16:
            raise ValueError("metrics_access=token needs a metrics_token of at least 16 characters")
        return self

    # Authentication edges: login limits, unauthenticated sockets, tickets, proxies.
    login_rate_per_address_per_min: float = Field(
        30.0, description="Login attempts per minute one client address may make (token bucket); more get HTTP 429 with Retry-After."
    )
    login_burst_per_address: int = Field(20, description="Login attempts one client address may make in a burst above the rate.")
    login_failures_per_username_per_min: float = Field(
        6.0, description="Failed logins per minute allowed for one username from all addresses together; more get HTTP 429."
    )
    login_failures_per_username: int = Field(
        10, description="Failed logins for one username allowed in a burst above login_failures_per_username_per_min."
    )
    login_hash_workers: int = Field(
        2, description="Password verifications (argon2, ~0.2 s of CPU each) run at once; one per client address and per username at most."
    )
    login_queue_max: int = Field(
        8, description="Logins that may wait for a verification slot; more are refused at once with HTTP 429 instead of queueing."
    )
    max_unauthenticated_per_address: int = Field(
        16,
        description=(
            "WebSockets one client address may hold open before authenticating; more are closed "
            "at once with 4029. They never count against max_connections."
        ),
    )
    max_unauthenticated: int = Field(
        1000, description="WebSockets waiting to authenticate, from all addresses together; more are closed with 1013."
    )
    ticket_ttl_s: float = Field(
        30.0, description="Lifetime of a connection ticket (POST /api/ticket), good for one /ws or /sse connection."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For names the "
            "client, e.g. '[\"10.0.0.0/8\"]' (JSON in the environment). Empty: the client is "
            "the socket peer and X-Forwarded-For is ignored."
        ),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    # Browser sessions (the login cookie; transports/browser_session.py)
    session_cookie_secure: bool = Field(
        False,
        description=(
            "Always mark the browser's session and CSRF cookies Secure (sent over HTTPS only). "
            "Off: they are Secure when the login came over HTTPS, directly or as a trusted "
            "proxy's X-Forwarded-Proto says; turn it on behind a TLS proxy that does not say so."
        ),
    )

    # Limits
    query_timeout_s: float = Field(30.0, description="Seconds a warehouse query may run before it is stopped.")
    row_cap: int = Field(10_000, description="Most rows a query result carries; more are cut and flagged.")
    max_result_bytes: int = Field(
        2 * 1024 * 1024, description="Largest result (JSON bytes, estimated) a question returns; more rows are cut and flagged."
    )
    max_value_chars: int = Field(10_000, description="Longest text value in a result; longer ones are cut with '…'.")
    max_message_bytes: int = Field(64 * 1024, description="Largest client message accepted, in bytes.")
    max_question_chars: int = Field(500, description="Longest natural-language question accepted.")
    max_sql_chars: int = Field(
        100_000, description="Longest SQL statement validated (typed, generated or from the LLM); longer ones are refused with invalid_sql."
    )
    max_sql_depth: int = Field(
        100, description="Deepest bracket nesting of a SQL statement, checked before parsing; deeper ones are refused with invalid_sql."
    )
    warehouse_schemas: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Schemas each warehouse exposes to queries, by warehouse name, in the order unqualified "
            "table names resolve, e.g. '{\"sales\": [\"public\", \"analytics\"]}'. Default: main "
            "(DuckDB, SQLite), public (PostgreSQL). Other schemas, other catalogs and system "
            "schemas are never readable."
        ),
    )
    max_concurrent_queries_per_user: int = Field(
        4, description="Questions one user may have running at once; more are refused."
    )
    warehouse_max_concurrent_queries: int = Field(
        8,
        description=(
            "Queries one warehouse runs at once (capped by what its connector can run); more wait "
            "in a fair queue, reported as 'queued' progress and not counted against query_timeout_s."
        ),
    )
    warehouse_max_concurrent_queries_per_user: int = Field(
        2,
        description=(
            "Queries of one user a warehouse runs at once, so no account can hold every slot; "
            "waiting queries are served round-robin across users."
        ),
    )
    outgoing_queue_bytes: int = Field(
        4 * 1024 * 1024,
        description="Bytes queued for one connection before it is closed as a slow consumer.",
    )
    batch_max_messages: int = Field(64, description="Most publications sent in one message_batch frame.")
    batch_max_bytes: int = Field(256 * 1024, description="Largest message_batch frame, in bytes.")
    max_connections: int = Field(10_000, description="Open connections (all transports) one process accepts; more are closed with 1013.")
    max_connections_per_user: int = Field(50, description="Open connections one user may have; more are refused (4009).")
    op_rate_per_s: float = Field(50.0, description="Ops per second one connection may send (token bucket); 0 switches the limit off.")
    op_burst: int = Field(100, description="Ops a connection may send in a burst above op_rate_per_s.")
    ws_ping_interval_s: float = Field(20.0, description="Seconds between WebSocket heartbeat pings (dead peers are dropped).")
    ws_ping_timeout_s: float = Field(20.0, description="Seconds to wait for a heartbeat pong before dropping the peer.")
    ws_compression: bool = Field(
        False,
        description="Negotiate permessage-deflate on WebSockets. Off by default: compressing every frame once per connection cost ~40 % of the server's CPU per delivered message in benchmarks.",
    )
    ws_direct_frames: bool = Field(
        True,
        description="Write outgoing WebSocket frames pre-built, straight to the socket (one frame built per publication "
        "for all subscribers), instead of through the ASGI send. Used only on uvicorn's WebSocket implementations and "
        "without compression; off: every frame takes the ASGI path (for comparison).",
    )
    ws_native_upgrade: bool = Field(
        True,
        description="Serve /ws straight from livebi's WebSocket protocol once uvicorn hands the upgrade over: the 101 "
        "is sent at once and the session runs without an ASGI scope, ASGI messages or Starlette's wrapper (a third less "
        "server CPU per connect). Off: /ws goes through the ASGI app like any other scope (for ASGI middleware that must "
        "see it). Only with livebi's own protocol class (uvicorn's default ws implementation).",
    )
    ws_server: Literal["asgi", "websockets"] = Field(
        "asgi",
        description="Which server accepts WebSockets for browsers and clients that read /api/config: 'asgi' (/ws on the "
        "HTTP port, through uvicorn) or 'websockets' (the websockets library's own server on ws_port, in the same process, "
        "running the same session code: cheaper connects, no second HTTP parse; /ws on the HTTP port stays served too).",
    )
    ws_port: int = Field(
        0, ge=0, le=65535,
        description="TCP port of the websockets server when ws_server is 'websockets'; 0: port + 1. Browsers are sent "
        "there (GET /api/config), so a proxy in front must forward it too.",
    )
    user_cache_s: float = Field(
        30.0, description="Seconds a token's user is trusted without a store lookup (a removed user is refused at most this late)."
    )
    sse_heartbeat_s: float = Field(15.0, description="Seconds of silence after which an SSE stream sends a comment heartbeat.")
    shutdown_drain_s: float = Field(2.0, description="Seconds a graceful shutdown waits for outgoing queues to drain before closing with 1012.")
    history_size: int = Field(1000, description="Publications each channel keeps for recovery.")
    history_ttl_s: float = Field(300.0, description="Seconds a publication stays in channel history.")
    history_bytes_per_channel: int = Field(
        8 * 1024 * 1024, description="Bytes of publications one channel's history keeps (the oldest go first)."
    )
    history_bytes_total: int = Field(
        256 * 1024 * 1024,
        description="Bytes of publications all channel histories keep together; past it the oldest anywhere go first.",
    )
    finished_channel_grace_s: float = Field(
        60.0,
        description=(
            "Seconds a finished query:<id> channel (result or error published) is kept once no one is "
            "subscribed, so a client that dropped can still recover its answer; then it is forgotten."
        ),
    )
    progress_interval_s: float = Field(
        0.25, description="Seconds between engine progress reports while a query runs (<= 0.5)."
    )
    # Engine limits: the engines bound themselves, whatever SQL validation lets through
    # (docs/deployment.md).
    warehouse_allow_privileged_role: bool = Field(
        False,
        description=(
            "Serve a PostgreSQL warehouse even when its role can write or administer (superuser, "
            "CREATEROLE, write grants, unlimited temp_file_limit, ...): a loud warning is logged "
            "instead of refusing. For development only; docs/deployment.md has the read-only role recipe."
        ),
    )
    duckdb_memory_limit: str = Field(
        "", description="Memory the DuckDB engine may use, e.g. '2GB'. Empty: a quarter of the machine's RAM, at most half of memory_headroom_mb. Queries cannot change it."
    )
    duckdb_threads: int = Field(0, description="Threads the DuckDB engine uses. 0: the CPUs this process may run on.")
    duckdb_max_temp_directory_size: str = Field(
        "4GB",
        description="Disk DuckDB may spill to (in data_dir/duckdb-temp) when a query outgrows duckdb_memory_limit. Empty: no spilling.",
    )
    postgres_work_mem: str = Field("64MB", description="PostgreSQL work_mem of every query (memory per sort or hash before it spills).")
    postgres_temp_file_limit: str = Field(
        "1GB",
        description=(
            "Most temporary-file space one PostgreSQL query may use. Only a superuser can set it, so "
            "the warehouse role must carry it (ALTER ROLE ... SET temp_file_limit); a role with a "
            "higher or no limit is refused. Empty: no check."
        ),
    )
    sqlite_hard_heap_limit: int = Field(
        0,
        description=(
            "SQLite hard_heap_limit in bytes. Process-wide: every SQLite database in the process "
            "(the default metadata store too) fails with 'out of memory' beyond it. 0: off."
        ),
    )
    memory_headroom_mb: int = Field(
        4096, ge=0,
        description=(
            "Megabytes the server process may grow by after startup: `livebi serve` and `livebi demo` "
            "limit their address space (RLIMIT_AS) to their size once started plus this, so a query "
            "building a huge value (which duckdb_memory_limit does not bound) fails with "
            "resources_exceeded instead of taking the machine's memory. Keep duckdb_memory_limit "
            "below it. Applies to the whole process; an operator's lower limit (ulimit -v) is kept. 0: off."
        ),
    )

    stored_queries_per_user: int = Field(
        1000, description="Questions kept in each user's history in the metadata store; older ones are deleted."
    )
    max_stored_sql_chars: int = Field(
        20_000, description="Longest SQL (and question) text stored in the history; longer text is cut with '…'."
    )
    # Dashboards
    max_dashboards_per_user: int = Field(
        200, description="Dashboards one user may own; creating more is refused (400) until one is deleted."
    )
    dashboard_ops_kept: int = Field(
        10_000,
        description="Op log rows kept per dashboard (the newest); older ones are deleted as edits come, so the log cannot grow without bound. The snapshot always holds the whole state.",
    )
    # Alerts
    alerts_per_user: int = Field(
        100, ge=0,
        description="Alerts (conditions on a dashboard widget's value that notify their user) one user may have; creating more is refused (400) until one is deleted.",
    )

    # Ingest and the live demo (POST /api/tables/{table}/rows; docs/ingest.md)
    ingest_access: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Usernames allowed to insert rows into each warehouse through POST /api/tables/{table}/rows, "
            "e.g. '{\"sales\": [\"etl\"]}' (JSON in the environment); they must also be allowed to query it "
            "(warehouse_access). A warehouse not listed takes no rows (409 ingest_disabled). Listing one makes "
            "livebi able to write to it: a DuckDB file is opened read-write (queries stay validated read-only "
            "SELECTs with external access off), SQLite gets a separate writable connection used only by ingest, "
            "PostgreSQL needs a writer URL in ingest_urls. Naming a warehouse that is not configured stops startup."
        ),
    )
    ingest_urls: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "PostgreSQL warehouses: the URL ingest connects with, by warehouse name, e.g. "
            "'{\"pg\": \"postgresql://writer@db/warehouse\"}'. The warehouse's own URL keeps its read-only role; "
            "this role needs INSERT on the tables it feeds. Without one, ingest into that warehouse is refused."
        ),
    )
    ingest_max_rows: int = Field(10_000, ge=1, description="Most rows one ingest request may carry; more are refused (400) and nothing is written.")
    ingest_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest ingest request body, in bytes; larger ones are refused with 413 before they are parsed."
    )
    demo_live_rate: float = Field(
        0.0,
        ge=0.0,
        le=10_000.0,
        description=(
            "Orders per second the live simulator inserts into the generated demo warehouse (named demo, which "
            "must be listed in ingest_access) through the ingest code path; `livebi demo --live-rate` sets it. 0: off."
        ),
    )

    # Features (each real-time feature can be switched off)
    progress_streaming: bool = Field(
        True, description="Publish progress messages while a question is answered (off: only result/error)."
    )
    batching: bool = Field(True, description="Coalesce queued publications into message_batch frames.")
    presence: bool = Field(
        True, description="Track who is on dashboard channels and publish coalesced joins, updates and leaves; "
        "system answers the presence op with a count only.",
    )
    presence_coalesce_ms: int = Field(
        250, ge=0, le=60_000,
        description="Joins, state updates and leaves on a dashboard channel are folded into one presence "
        "publication per this many milliseconds (presence traffic stays O(1) per connect).",
    )
    presence_max_members: int = Field(
        100, ge=1, le=100_000,
        description="A channel with more members than this publishes presence counts only; it lists members "
        "again once it has at most half as many.",
    )
    presence_count_interval_ms: int = Field(
        5000, ge=0, le=600_000,
        description="A channel past presence_max_members publishes its member count at most once per this many "
        "milliseconds.",
    )
    gc_tuning: bool = Field(
        True, description="Tune the cyclic garbage collector for many long-lived connections: freeze what start-up "
        "built, freeze long-lived objects every gc_freeze_interval_s, raise the generation-0 threshold "
        "(docs/architecture.md, 'Garbage collection'). Off: CPython's defaults.",
    )
    gc_threshold0: int = Field(
        50_000, ge=700, le=10_000_000,
        description="Net allocations between generation-0 collections when gc_tuning is on (CPython: 700).",
    )
    gc_freeze_interval_s: float = Field(
        60.0, ge=0, le=86_400,
        description="Seconds between freezes of long-lived objects when gc_tuning is on; 0: only after start-up.",
    )
    gc_unfreeze_interval_s: float = Field(
        3600.0, ge=0, le=604_800,
        description="Seconds between full collections over the frozen objects (one ordinary pause; reclaims any "
        "garbage cycle among them) when gc_tuning is on; 0: never.",
    )
    websocket: bool = Field(
        True, description="Serve the /ws WebSocket endpoint. Off: HTTP-only mode (SSE stream + POST ops) for everything."
    )

    # Live dashboards
    live_dashboards: bool = Field(
        True,
        description="Refresh watched dashboards on the server (intervals, data changes, manual), one query for "
        "all viewers. Off: no scheduler, the refresh op answers feature_disabled and each viewer runs widgets itself.",
    )
    live_min_interval_s: float = Field(
        5.0, ge=0.2, le=86_400,
        description="Shortest refresh interval a widget gets, whatever it asks for; also how long a widget's "
        "result counts as fresh when a dashboard is opened again.",
    )
    live_alert_interval_s: float = Field(
        60.0, ge=1, le=86_400,
        description="How often a widget with alerts but no refresh interval of its own refreshes, so its alerts "
        "are checked while nobody watches its dashboard.",
    )
    live_cache_bytes: int = Field(
        256 * 1024 * 1024, ge=0,
        description="Memory for the latest result of each widget (what a new viewer sees at once); least "
        "recently refreshed widgets are forgotten first.",
    )

    # Live: change detection (warehouse/changes.py; docs/live.md)
    live_change_poll_s: float = Field(
        2.0,
        gt=0,
        description=(
            "Seconds between two polls of a warehouse for changed rows in the tables live "
            "widgets read (only while someone watches them; nothing runs otherwise). "
            "PostgreSQL's own statistics may lag up to ~10 s behind a write without the triggers."
        ),
    )
    live_postgres_listen: bool = Field(
        True,
        description=(
            "PostgreSQL warehouses: also LISTEN on channel livebi_changes (one connection per "
            "warehouse while something is watched), so tables with the triggers of `livebi live "
            "install-triggers` are refreshed at once."
        ),
    )

    # Reusing answers (answer_cache.py; docs/architecture.md, "Concurrent askers")
    result_cache_s: float = Field(
        60.0, ge=0,
        description=(
            "Longest a question's result is reused for the same SQL on the same warehouse (results say "
            "cached, with as_of). An entry is dropped as soon as the warehouse's change detection sees a "
            "table it reads change (within live_change_poll_s; PostgreSQL's statistics may lag more) or "
            "ingest writes one; this age bounds what detection cannot see (a view whose definition calls "
            "current_date, a PostgreSQL write its statistics do not show yet). Queries calling now(), "
            "random()... themselves are never reused. "
            "0: off (identical questions running at the same moment still share one query)."
        ),
    )
    result_cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0,
        description="Memory (estimated) for cached results; least recently used go first. 0: no result cache.",
    )
    ask_single_flight: bool = Field(
        True,
        description="Questions whose validated SQL on a warehouse is identical and running at the same moment share "
        "one execution (each asker keeps its own progress and result). Off: each runs its own (for comparison).",
    )
    parse_cache_entries: int = Field(
        2048, ge=0,
        description="Offline parses of questions kept per process, keyed by the warehouse's semantic model (a schema "
        "change gives new keys), the date and the question. 0: none.",
    )
    validation_cache_entries: int = Field(
        4096, ge=0,
        description="SQL statements whose validation is kept per process, keyed by warehouse, schema and text. 0: none.",
    )

    # NLP
    today: datetime.date | None = Field(
        None, description="Date that relative periods ('last 6 months') count from. Empty: the real date."
    )
    semantic_layers: dict[str, Path] = Field(
        default_factory=dict,
        description=(
            "Semantic-layer YAML files by warehouse name, e.g. '{\"demo\": \"examples/demo-semantic.yaml\"}' "
            "(JSON in the environment): synonyms, metrics, default aggregations, hidden columns "
            "(docs/semantic-layer.md). A file that does not load or fit its schema stops startup."
        ),
    )
    schema_check_interval_s: float = Field(
        10.0,
        description=(
            "Seconds between cheap checks that a warehouse's tables and columns are unchanged; a "
            "change rebuilds the NLP model before the next question. 0: check before every question."
        ),
    )
    llm_base_url: str = Field(
        "",
        description=(
            "OpenAI-compatible chat-completions endpoint, e.g. https://api.openai.com/v1 or "
            "http://localhost:11434/v1 (Ollama). Empty: the offline parser answers alone."
        ),
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM endpoint.")
    llm_api_key: str = Field("", description="Bearer key for the LLM endpoint (empty: no Authorization header).")
    llm_timeout_s: float = Field(
        30.0, description="Seconds an LLM request may take before the offline parser answers instead."
    )
    llm_mode: Literal["fallback", "first"] = Field(
        "fallback",
        description=(
            "fallback: the offline parser answers and the LLM is asked only when the parser cannot "
            "understand the question or is not confident of its answer (llm_confidence_threshold); "
            "first: the LLM answers and the "
            "parser is the fallback when it fails or writes invalid SQL."
        ),
    )
    llm_confidence_threshold: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description=(
            "Parser confidence (0-1) below which an answer is low-confidence: with llm_mode=fallback "
            "the LLM answers instead, and the answer card asks the user to check the assumptions "
            "(whether or not an LLM is configured). Every ignored word, spelling fix or assumption "
            "lowers the confidence; an unused word that changes the meaning (not, never, without, "
            "growth...) lowers it sharply."
        ),
    )

    # Remote agents (agents/remote; docs/agents.md). Empty URL lists: the agent runs in process.
    nlp_agent_urls: list[str] = Field(
        default_factory=list,
        description=(
            "Remote NLP agents (`livebi agent nlp`), e.g. '[\"ws://10.0.0.5:8101\"]' (JSON in the environment); "
            "calls go round-robin over them. Empty: the NLP agent runs in this process."
        ),
    )
    data_agent_urls: list[str] = Field(
        default_factory=list,
        description="Remote data agents (`livebi agent data`), as nlp_agent_urls. Empty: queries run in this process.",
    )
    viz_agent_urls: list[str] = Field(
        default_factory=list,
        description="Remote viz agents (`livebi agent viz`), as nlp_agent_urls. Empty: charts are built in this process.",
    )
    agent_token: str = Field(
        "",
        description=(
            "Shared secret between livebi servers and their remote agents (at least 16 characters): the server "
            "sends it as 'Authorization: Bearer', `livebi agent` refuses every call without it and does not start "
            "without one."
        ),
    )
    agent_min_connections: int = Field(
        1, ge=0, description="WebSocket connections each remote agent pool opens at startup and keeps open while idle."
    )
    agent_max_connections: int = Field(
        16, ge=1,
        description="Calls one server runs at once on each kind of remote agent (one connection each); more wait up to agent_pool_timeout_s.",
    )
    agent_pool_timeout_s: float = Field(
        5.0, gt=0, description="Seconds a call waits for a free connection to a remote agent before failing with agent_pool_exhausted."
    )
    agent_connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to open a connection to a remote agent.")
    agent_call_attempts: int = Field(
        4, ge=1,
        description=(
            "Attempts of one call when the connection to a remote agent fails (calls are read-only, so they are "
            "retried, on the next URL, after an exponential backoff with jitter); then agent_unavailable."
        ),
    )
    agent_ws_failures_before_http: int = Field(
        2, ge=1,
        description=(
            "Consecutive WebSocket failures after which a server reaches that kind of remote agent over HTTP "
            "(streamed NDJSON) and says so on the system channel (service_degradation)."
        ),
    )
    agent_probe_interval_s: float = Field(
        5.0, gt=0,
        description="Seconds between attempts to reopen a WebSocket to a remote agent reached over HTTP (with backoff and jitter); on success WebSocket is used again.",
    )
    agent_backoff_base_s: float = Field(0.1, gt=0, description="First reconnection delay to a remote agent, doubled on each failure (with jitter).")
    agent_backoff_max_s: float = Field(5.0, gt=0, description="Longest reconnection delay to a remote agent.")
    agent_max_message_bytes: int = Field(
        16 * 1024 * 1024, ge=64 * 1024,
        description="Largest message between a server and a remote agent (both sides refuse larger ones; results are bounded by max_result_bytes first).",
    )

    # Demo
    demo_rows: int = Field(1_000_000, description="Order rows generated for the demo warehouse.")

    @field_validator("progress_interval_s")
    @classmethod
    def _at_least_twice_a_second(cls, value: float) -> float:
        if not 0.01 <= value <= 0.5:
            raise ValueError("progress_interval_s must be between 0.01 and 0.5 (progress at least twice a second)")
        return value

    # Derived values -------------------------------------------------------------------------

    def websockets_port(self) -> int | None:
        """The websockets server's port (``ws_server = "websockets"``), else None."""
        if self.ws_server != "websockets" or not self.websocket:
            return None
        return self.ws_port or self.port + 1

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'livebi.db'}"

    def resolved_warehouses(self) -> dict[str, str]:
        if self.warehouses:
            return dict(self.warehouses)
        return {"demo": f"duckdb:///{self.data_dir / 'demo.duckdb'}"}

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        import secrets

        import os

        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        # Created 0600 from the start: no moment at which another user could read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


def settings_table() -> list[dict[str, Any]]:
    """Name, env var, type, default and help of every setting (feeds the docs and CLI help)."""
    rows = []
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default: Any = "(computed)" if name == "data_dir" else field.default_factory()
        else:
            default = field.default
        annotation = getattr(field.annotation, "__name__", None) or str(field.annotation)
        rows.append(
            {
                "name": name,
                "env": f"LIVEBI_{name.upper()}",
                "type": annotation.replace("typing.", ""),
                "default": default,
                "help": field.description or "",
            }
        )
    return rows


def configuration_markdown() -> str:
    """The text of docs/configuration.md, generated from :class:`Settings`."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `livebi docs config` from livebi/config.py; do not edit by hand -->",
        "",
        "Every setting can be given as an environment variable (`LIVEBI_<NAME>`); `livebi serve`",
        "and `livebi demo` also take the most common ones as flags. Dict settings take JSON.",
        "",
        "| setting | environment | default | what it does |",
        "|---|---|---|---|",
    ]
    for row in settings_table():
        default = row["default"]
        shown = "" if default in ("", None, {}) else f"`{default}`"
        lines.append(f"| `{row['name']}` | `{row['env']}` | {shown} | {row['help']} |")
    lines.append("")
    return "\n".join(lines)
