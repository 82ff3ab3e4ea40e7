"""The ``livebi`` command line: demo, serve, ask, user management, generated docs."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, List, Optional, TypeVar

import typer

from .config import Settings, configuration_markdown

app = typer.Typer(help="livebi: ask questions about your data in plain language, live.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users in the metadata store.", no_args_is_help=True)
docs_app = typer.Typer(help="Print generated documentation.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(docs_app, name="docs")

DEMO_USERS = (("demo", "demo"), ("alice", "alice"), ("bob", "bob"))


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"livebi {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """livebi: ask questions about your data in plain language, live."""
T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _parse_warehouses(values: list[str] | None) -> dict[str, str] | None:
    """``NAME=URL`` or a bare URL (named after its file or database)."""
    if not values:
        return None
    result: dict[str, str] = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or "://" in name:
            url = value
            tail = url.rstrip("/").rsplit("/", 1)[-1] or "warehouse"
            name = tail.split("?")[0].rsplit(".", 1)[0] or "warehouse"
        result[name] = url
    return result


def _run_server(settings: Settings, log_level: str) -> None:
    from .server import build_server

    # A process of its own: it may limit its address space (memory_headroom_mb).
    build_server(settings, log_level=log_level, limit_memory=True).run()


async def ensure_users(settings: Settings, users: tuple[tuple[str, str], ...]) -> None:
    """Create the users that are missing in ``settings``' store."""
    from .auth import hash_password
    from .store import MetadataStore

    store = await MetadataStore.open(settings.resolved_store_url())
    try:
        for name, password in users:
            if await store.get_user(username=name) is None:
                await store.add_user(name, hash_password(password))
    finally:
        await store.close()


async def demo_logins_in(store_url: str, users: tuple[tuple[str, str], ...]) -> list[str]:
    """Names of ``users`` whose password in the store is still the demo's (e.g. demo/demo)."""
    from .auth import verify_password
    from .store import MetadataStore

    store = await MetadataStore.open(store_url)
    try:
        found = []
        for name, password in users:
            row = await store.get_user(username=name)
            if row is not None and await asyncio.to_thread(verify_password, row["password_hash"], password):
                found.append(name)
        return found
    finally:
        await store.close()


def demo_settings(
    *, data_dir: Path | None, port: int, host: str, store: str | None, rows: int, warehouse_path: Path,
    live_rate: float = 0.0,
) -> Settings:
    """The demo server's settings: its own store and secret key under data_dir/demo, never the
    default store ``livebi serve`` uses (so demo/demo can never log in to a real server).

    ``live_rate`` > 0 starts the live simulator, which needs the warehouse writable: the demo
    user may then also insert rows through the ingest API."""
    base = _settings(data_dir=data_dir)
    demo_dir = base.data_dir / "demo"
    return _settings(
        port=port, host=host, data_dir=base.data_dir, demo_rows=rows,
        store_url=store or f"sqlite:///{demo_dir / 'livebi.db'}",
        secret_key=_settings(data_dir=demo_dir).resolved_secret_key(),
        warehouses={"demo": f"duckdb:///{warehouse_path}"}, today=_demo_today(),
        demo_live_rate=live_rate, ingest_access={"demo": ["demo"]} if live_rate > 0 else None,
    )


async def ensure_live_dashboard_in(settings: Settings) -> str:
    """Create (or repair) the demo's "Live sales" dashboard in ``settings``' store; its id."""
    import datetime

    from .demo.live import ensure_live_dashboard
    from .store import MetadataStore

    store = await MetadataStore.open(settings.resolved_store_url())
    try:
        return await ensure_live_dashboard(store, today=settings.today or datetime.date.today())
    finally:
        await store.close()


def _demo_today() -> Any:
    """The demo's "today" (end of its data) unless LIVEBI_TODAY says otherwise."""
    import os

    from .demo.generate import DEMO_TODAY

    return None if os.environ.get("LIVEBI_TODAY") else DEMO_TODAY


def _ensure_demo_data(settings: Settings, rows: int) -> Path:
    from .demo.generate import ensure_demo

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    typer.echo(f"Preparing the demo warehouse in {settings.data_dir} ({rows:,} order rows)…", err=True)
    return ensure_demo(settings.data_dir, rows)


@app.command()
def demo(
    port: int = typer.Option(8000, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    store: Optional[str] = typer.Option(None, help="Metadata store URL (default: sqlite in the data directory)."),
    rows: int = typer.Option(1_000_000, help="Order rows in the generated demo warehouse."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the demo warehouse and store live (default ~/.livebi)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    live_rate: float = typer.Option(
        2.0, "--live-rate", min=0.0, max=10_000.0, envvar="LIVEBI_DEMO_LIVE_RATE",
        help="Orders per second the live simulator inserts into the demo warehouse (0: off; the file is then "
             "opened read-only, so `livebi ask` in another process can read it too).",
    ),
) -> None:
    """Generate the demo warehouse if missing and serve it with demo logins (in a store of
    its own, data_dir/demo/livebi.db, that `livebi serve` never uses), with orders arriving
    live and a "Live sales" dashboard that shows them."""
    path = _ensure_demo_data(_settings(data_dir=data_dir), rows)
    settings = demo_settings(data_dir=data_dir, port=port, host=host, store=store, rows=rows, warehouse_path=path,
                             live_rate=live_rate)
    asyncio.run(ensure_users(settings, DEMO_USERS))
    dashboard_id = asyncio.run(ensure_live_dashboard_in(settings))
    typer.echo(f"\n  livebi demo: http://{host}:{port}/")
    typer.echo("  logins: " + ", ".join(f"{u} / {p}" for u, p in DEMO_USERS))
    typer.echo(f"  the demo data ends {settings.today}; relative periods count from there (LIVEBI_TODAY overrides)")
    live = f"{live_rate:g} orders/s arrive" if live_rate > 0 else "no orders arrive (--live-rate 0)"
    typer.echo(f"  live: {live}; dashboard \"Live sales\": http://{host}:{port}/#/dashboards/{dashboard_id}\n")
    _run_server(settings, log_level)


@app.command()
def serve(
    warehouse: Optional[List[str]] = typer.Option(None, help="Warehouse as NAME=URL or URL; repeat for several (first is default)."),
    store: Optional[str] = typer.Option(None, help="Metadata store URL."),
    host: Optional[str] = typer.Option(None, help="Interface to bind."),
    port: Optional[int] = typer.Option(None, help="Port to serve on."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve livebi on the given warehouses (settings also come from LIVEBI_* variables)."""
    settings = _settings(warehouses=_parse_warehouses(warehouse), store_url=store, host=host, port=port)
    if not settings.warehouses:
        _ensure_demo_data(settings, settings.demo_rows)
        settings = _settings(
            warehouses=_parse_warehouses(warehouse), store_url=store, host=host, port=port, today=_demo_today()
        )
    found = asyncio.run(demo_logins_in(settings.resolved_store_url(), DEMO_USERS))
    if found:
        # An earlier `livebi demo` put these users into this store: refuse to serve publicly
        # known passwords.
        typer.echo(
            f"error: the store {settings.resolved_store_url()} has demo logins ({', '.join(found)}) with their "
            "demo passwords, left by an earlier `livebi demo`. Remove them (`livebi user remove NAME`) or "
            "change their passwords (`livebi user passwd NAME`) first.",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(f"livebi serving http://{settings.host}:{settings.port}/", err=True)
    _run_server(settings, log_level)


@app.command()
def agent(
    kind: str = typer.Argument(..., help="Which agent to serve: nlp, data or viz."),
    port: int = typer.Option(8101, help="Port to serve on."),
    host: Optional[str] = typer.Option(None, help="Interface to bind (default: the host setting, 127.0.0.1)."),
    warehouse: Optional[List[str]] = typer.Option(None, help="Warehouse as NAME=URL or URL (nlp and data agents; the server's names)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve one agent over WebSocket (/agent) with HTTP (/agent/call) as its fallback, for
    servers whose nlp_agent_urls, data_agent_urls or viz_agent_urls name it. Needs the shared
    secret in LIVEBI_AGENT_TOKEN; other settings (limits, LLM) come from LIVEBI_* as for serve."""
    from .agents.remote.service import MIN_TOKEN_CHARS, run_agent
    from .agents.remote.wire import AGENTS

    if kind not in AGENTS:
        raise typer.BadParameter(f"the agent is one of {', '.join(AGENTS)}, not {kind!r}")
    settings = _settings(warehouses=_parse_warehouses(warehouse), host=host)
    if len(settings.agent_token) < MIN_TOKEN_CHARS:
        typer.echo(f"error: set LIVEBI_AGENT_TOKEN (at least {MIN_TOKEN_CHARS} characters, the same as the servers'): "
                   "an agent never serves unauthenticated callers", err=True)
        raise typer.Exit(2)
    if kind != "viz" and not settings.warehouses:
        _ensure_demo_data(settings, settings.demo_rows)
        settings = _settings(host=host, today=_demo_today())
    typer.echo(f"livebi {kind} agent on ws://{settings.host}:{port}/agent (HTTP fallback: /agent/call)", err=True)
    run_agent(kind, settings, host=settings.host, port=port, log_level=log_level)


@app.command()
def ask(
    question: List[str] = typer.Argument(..., help="One or more questions (quote each)."),
    warehouse: Optional[str] = typer.Option(None, help="Warehouse URL (default: the demo warehouse)."),
    fmt: str = typer.Option("table", "--format", help="table or json (one JSON object per question per line)."),
    sql: bool = typer.Option(False, "--sql", help="Treat each argument as a SELECT instead of a question."),
    chart: Optional[str] = typer.Option(None, help="Chart type to ask for."),
    semantic_layer: Optional[Path] = typer.Option(None, help="Semantic-layer YAML for this warehouse (docs/semantic-layer.md)."),
) -> None:
    """Answer questions without a server."""
    if fmt not in ("table", "json"):
        raise typer.BadParameter("--format must be table or json")
    settings = _settings()
    if warehouse:
        urls = {"warehouse": warehouse}
    else:
        urls = {"demo": f"duckdb:///{_ensure_demo_data(settings, settings.demo_rows)}"}
        settings = _settings(today=_demo_today())
    if semantic_layer is not None:
        settings = settings.model_copy(update={"semantic_layers": {next(iter(urls)): semantic_layer}})
    failures = asyncio.run(_ask_all(settings, urls, question, fmt=fmt, as_sql=sql, chart=chart))
    raise typer.Exit(1 if failures == len(question) else 0)


async def _ask_all(settings: Settings, urls: dict[str, str], questions: list[str], *, fmt: str, as_sql: bool, chart: str | None) -> int:
    from .agents.data import DataAgent
    from .agents.nlp import SemanticLayerError
    from .pipeline import AskFailed, AskRequest, Pipeline, new_query_id
    from .services import build_nlp_agent, warehouse_options
    from .warehouse.registry import open_warehouse

    warehouses = {name: open_warehouse(name, url, **warehouse_options(settings, name)) for name, url in urls.items()}
    failures = 0
    try:
        try:
            nlp = build_nlp_agent(settings)
            await nlp.check_semantic_layers(warehouses)
        except SemanticLayerError as exc:
            typer.echo(f"error: semantic layer {exc}", err=True)
            raise typer.Exit(2) from None
        pipeline = Pipeline(
            warehouses=warehouses, nlp=nlp,
            data=DataAgent(
                timeout_s=settings.query_timeout_s, row_cap=settings.row_cap,
                max_result_bytes=settings.max_result_bytes, max_value_chars=settings.max_value_chars,
                max_sql_chars=settings.max_sql_chars, max_sql_depth=settings.max_sql_depth,
            ),
        )
        for text in questions:
            req = AskRequest(sql=text, chart=chart) if as_sql else AskRequest(question=text, chart=chart)
            try:
                result = await pipeline.answer(new_query_id(), req, lambda *a: None)
            except AskFailed as exc:
                failures += 1
                error = {k: v for k, v in exc.data("").items() if k != "query_id"}
                _emit_error(text, error, fmt)
                continue
            _emit_result(text, result, fmt)
    finally:
        for wh in warehouses.values():
            await wh.close()
    return failures


def _emit_result(question: str, result: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        out = {key: result[key] for key in ("sql", "columns", "rows", "row_count", "chart", "timings_ms")}
        out = {"question": question, **out, "engine": result["engine"], "explanation": result["explanation"], "assumptions": result["assumptions"]}
        out.update({key: result.get(key) for key in ("confidence", "confidence_reasons", "low_confidence")})
        sys.stdout.write(json.dumps(out, default=str) + "\n")
        return
    typer.echo(f"\n? {question}")
    if result["explanation"]:
        typer.echo(f"  {result['explanation']}")
    if result.get("low_confidence"):
        typer.echo(f"  Please check (confidence {result['confidence']:.0%}): {'; '.join(result['confidence_reasons'])}")
    for note in result["assumptions"]:
        typer.echo(f"  (assumed: {note})")
    typer.echo(f"  SQL: {result['sql']}")
    typer.echo(_table(result["columns"], result["rows"][:25]))
    more = result["row_count"] - min(25, len(result["rows"]))
    tail = f" ({more:,} more)" if more > 0 else ""
    typer.echo(f"  {result['row_count']:,} rows{tail}; chart: {result['chart']['type']}; {result['timings_ms']['total']:.0f} ms")


def _emit_error(question: str, error: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps({"question": question, "error": error}) + "\n")
        return
    typer.echo(f"\n? {question}")
    typer.echo(f"  error in {error['stage']} ({error['code']}): {error['message']}")
    for s in error.get("suggestions", []):
        typer.echo(f"    try: {s}")


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in columns]] + [["" if v is None else (f"{v:,.2f}" if isinstance(v, float) else str(v)) for v in row] for row in rows]
    widths = [min(40, max(len(r[i]) for r in cells)) for i in range(len(columns))]
    lines = ["  " + "  ".join(c[:w].ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# Users ---------------------------------------------------------------------------------------


def _on_store(store: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(store)`` on the metadata store at ``store`` (default: the settings')."""
    from .store import MetadataStore

    async def run() -> T:
        s = await MetadataStore.open(_settings(store_url=store).resolved_store_url())
        try:
            return await action(s)
        finally:
            await s.close()

    return asyncio.run(run())


@user_app.command("add")
def user_add(
    name: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, help="The user's password."),
    store: Optional[str] = typer.Option(None, help="Metadata store URL."),
) -> None:
    """Create a user (or reset an existing user's password, revoking their tokens)."""
    from .auth import hash_password
    from .store import UserExists

    async def add(s: Any) -> str:
        try:
            await s.add_user(name, hash_password(password))
            return "created"
        except UserExists:
            await s.set_password(name, hash_password(password))
            return "password updated, tokens revoked"

    typer.echo(f"user {name}: {_on_store(store, add)}")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True, help="The new password."),
    store: Optional[str] = typer.Option(None, help="Metadata store URL."),
) -> None:
    """Change a user's password and revoke every token of the user (running servers refuse
    them within user_cache_s and close their open connections about as soon)."""
    from .auth import hash_password

    if not _on_store(store, lambda s: s.set_password(name, hash_password(password))):
        typer.echo(f"no user {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"user {name}: password changed, tokens revoked")


@user_app.command("list")
def user_list(store: Optional[str] = typer.Option(None, help="Metadata store URL.")) -> None:
    """List users."""
    for row in _on_store(store, lambda s: s.list_users()):
        typer.echo(f"{row['username']}\t{row['id']}\t{row['created_at']}")


@user_app.command("remove")
def user_remove(name: str, store: Optional[str] = typer.Option(None, help="Metadata store URL.")) -> None:
    """Remove a user (running servers refuse their tokens within user_cache_s)."""
    if not _on_store(store, lambda s: s.remove_user(name)):
        typer.echo(f"no user {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"user {name}: removed")


# Live: PostgreSQL change triggers ----------------------------------------------------------

live_app = typer.Typer(help="Live dashboards: PostgreSQL change notifications.", no_args_is_help=True)
app.add_typer(live_app, name="live")
_ADMIN_URL_HELP = (
    "PostgreSQL URL of a role that may create functions and triggers on the tables (their "
    "owner); not the warehouse's read-only role."
)


def _on_triggers(action: str, url: str, schema: str, tables: list[str] | None) -> None:
    from .warehouse.changes_postgres import TriggerError, install_triggers, remove_triggers

    run = install_triggers if action == "install" else remove_triggers
    try:
        done = asyncio.run(run(url, schema=schema, tables=tables or []))
    except TriggerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    verb = "notifies changes" if action == "install" else "no longer notifies"
    for name in done:
        typer.echo(f"{name}: {verb}")
    if not done:
        typer.echo("no table to change" if action == "install" else "no trigger found")


@live_app.command("install-triggers")
def live_install_triggers(
    url: str = typer.Option(..., help=_ADMIN_URL_HELP),
    schema: str = typer.Option("public", help="Schema of the tables (the function is created there too)."),
    table: Optional[List[str]] = typer.Option(None, help="Table to watch; repeat for several (default: every table of the schema)."),
) -> None:
    """Create statement-level triggers that NOTIFY livebi_changes with the table's name on every
    INSERT, UPDATE, DELETE and TRUNCATE, so live dashboards refresh at once (idempotent; see
    docs/live.md)."""
    _on_triggers("install", url, schema, table)


@live_app.command("remove-triggers")
def live_remove_triggers(
    url: str = typer.Option(..., help=_ADMIN_URL_HELP),
    schema: str = typer.Option("public", help="Schema of the tables."),
    table: Optional[List[str]] = typer.Option(None, help="Table; repeat for several (default: every table of the schema)."),
) -> None:
    """Drop the triggers install-triggers created (and its function once unused; idempotent)."""
    _on_triggers("remove", url, schema, table)


# Docs ----------------------------------------------------------------------------------------


@docs_app.command("config")
def docs_config() -> None:
    """Print docs/configuration.md (generated from the settings)."""
    sys.stdout.write(configuration_markdown())


@docs_app.command("schema")
def docs_schema() -> None:
    """Print the protocol's JSON schema."""
    from .protocol import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@docs_app.command("functions")
def docs_functions() -> None:
    """Print docs/sql-functions.md (the functions a query may call, per dialect)."""
    from .warehouse.functions import functions_markdown

    sys.stdout.write(functions_markdown())


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
