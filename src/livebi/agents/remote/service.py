"""``livebi agent nlp|data|viz``: one agent served over WebSocket, with HTTP as its fallback.

* ``GET /health``: ``{"status": "ok", "agent": <kind>}`` (no secret needed: for load balancers).
* ``GET /stats``: calls served per transport, cancelled and refused (needs the token).
* ``WS /agent``: the handshake must carry ``Authorization: Bearer <agent_token>`` (refused with
  HTTP 403 otherwise); the agent says ``hello``, then serves calls, several at once if sent,
  each with its progress and one final message (:mod:`.wire`). ``cancel`` stops a call, and so
  does closing the socket (every call on it).
* ``POST /agent/call``: one call as the body, same token in the header (401 otherwise); the
  answer is an NDJSON stream: progress lines, a heartbeat line every few seconds of silence,
  then the final line. Closing the stream stops the call.

Every limit applies here as it does in a server: SQL is validated again (a caller with the
token still cannot write), results are bounded by row_cap and max_result_bytes, messages by
agent_max_message_bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ...config import Settings
from ...pipeline import small_result
from ...warehouse.base import Warehouse, WarehouseError
from ..data import DataAgent, cap_result
from ..viz import ChartHint, choose_chart
from .wire import (
    AGENTS, HTTP_PATH, OPS, PROTOCOL, WS_PATH, WireError, decode, dumps, encode, error_message, parsed_from_json,
    result_from_json, result_to_json,
)

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
MIN_TOKEN_CHARS = 16

Emit = Callable[[Any], None]  # a message: a dict, or a final one serialized already


class AgentWork:
    """What one kind of agent does for a call: the same agent objects a server runs in process."""

    def __init__(self, agent: str, settings: Settings) -> None:
        if agent not in AGENTS:
            raise ValueError(f"agent must be one of {', '.join(AGENTS)}, not {agent!r}")
        self.agent = agent
        self.settings = settings
        self.warehouses: dict[str, Warehouse] = {}
        self.nlp: Any = None
        self.data: DataAgent | None = None

    async def start(self) -> None:
        from ...services import build_nlp_agent, warehouse_options
        from ...warehouse.registry import open_warehouse

        s = self.settings
        if self.agent == "viz":
            return
        self.warehouses = {name: open_warehouse(name, url, **warehouse_options(s, name))
                           for name, url in s.resolved_warehouses().items()}
        for warehouse in self.warehouses.values():
            await warehouse.check_access()
        if self.agent == "data":
            self.data = DataAgent(timeout_s=s.query_timeout_s, row_cap=s.row_cap, max_result_bytes=s.max_result_bytes,
                                  max_value_chars=s.max_value_chars, max_sql_chars=s.max_sql_chars,
                                  max_sql_depth=s.max_sql_depth)
        else:
            self.nlp = build_nlp_agent(s)
            await self.nlp.check_semantic_layers(self.warehouses)

    async def stop(self) -> None:
        for warehouse in self.warehouses.values():
            try:
                await warehouse.close()
            except Exception:  # noqa: BLE001 - one warehouse must not keep the others open
                log.exception("closing warehouse %s failed", warehouse.name)

    def _warehouse(self, args: dict[str, Any]) -> Warehouse:
        name = _text(args, "warehouse")
        try:
            return self.warehouses[name]
        except KeyError:
            raise WarehouseError("unknown_warehouse", f"this {self.agent} agent has no warehouse named {name!r}") from None

    async def run(self, op: str, args: dict[str, Any], progress: Callable[..., None]) -> Any:
        """The result data of ``op``; raises what the agent raises (see wire.error_message)."""
        if op not in OPS[self.agent]:
            raise WireError(f"the {self.agent} agent has no op {op!r}")
        if self.agent == "data":
            assert self.data is not None
            wh = self._warehouse(args)
            sql = await self.data.validate(_text(args, "sql"), wh)  # again: the caller is not trusted
            result = await self.data.run(sql, wh, progress)
            return result_to_json(result)
        if self.agent == "nlp":
            wh = self._warehouse(args)
            model = await self.nlp.model_for(wh)
            question = _text(args, "question")
            if op == "answer":
                parsed = await self.nlp.answer(question, model, wh, on_substage=progress)
            else:
                parsed = await self.nlp.repair(question, parsed_from_json(_dict(args, "parsed")),
                                               _text(args, "message"), model, wh, on_substage=progress)
            return parsed.to_dict()
        # viz: bounding and charting walk every value: off the loop unless the result is small
        raw = _dict(args, "result")
        rows = raw.get("rows")
        if isinstance(rows, list) and small_result(len(rows), len(raw.get("columns") or [])):
            return self._chart(args, raw)
        return await asyncio.to_thread(self._chart, args, raw)

    def _chart(self, args: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
        """The chart for the result in ``raw``, bounded like any result before it is charted."""
        s = self.settings
        result = result_from_json(raw)
        if result.row_count > s.row_cap:
            result.rows, result.row_count, result.truncated = result.rows[: s.row_cap], s.row_cap, True
        result = cap_result(result, max_bytes=s.max_result_bytes, max_value_chars=s.max_value_chars)
        hint = ChartHint.from_dict(args.get("hint") if isinstance(args.get("hint"), dict) else None)
        requested = args.get("requested") if isinstance(args.get("requested"), str) else None
        question = args.get("question") if isinstance(args.get("question"), str) else ""
        return choose_chart(question, result, hint, requested=requested).to_dict()


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise WireError(f"args.{key} must be a string")
    return value


def _dict(args: dict[str, Any], key: str) -> dict[str, Any]:
    value = args.get(key)
    if not isinstance(value, dict):
        raise WireError(f"args.{key} must be an object")
    return value


class AgentService:
    """The agent's server: authentication, calls, cancellation, counts."""

    def __init__(self, work: AgentWork, *, token: str, max_message_bytes: int) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"an agent needs an agent_token of at least {MIN_TOKEN_CHARS} characters")
        self.work = work
        self.agent = work.agent
        self._token = token.encode()
        self.max_message_bytes = max_message_bytes
        self.stats = {"websocket": 0, "http": 0, "cancelled": 0, "refused": 0, "failed": 0}

    def authorized(self, headers: Any) -> bool:
        scheme, _, given = (headers.get("authorization") or "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)
        if not ok:
            self.stats["refused"] += 1
        return ok

    async def serve_call(self, message: dict[str, Any], emit: Emit, transport: str) -> None:
        """Run the call in ``message``; every message for it goes to ``emit`` (a dict, or the
        final one already serialized), the final one last."""
        call_id = str(message.get("id") or "")
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def progress(*args: Any) -> None:  # the parser reports from its worker thread
            out = {"id": call_id, "type": "progress", "args": list(args)}
            if threading.get_ident() == loop_thread:
                emit(out)
            else:
                loop.call_soon_threadsafe(emit, out)

        try:
            op, args = message.get("op"), message.get("args")
            if not isinstance(op, str) or not isinstance(args, dict):
                raise WireError("a call needs op (a string) and args (an object)")
            data = await self.work.run(op, args, progress)
            # serialized once, off the loop when it carries rows (a result may be megabytes)
            final = await encode({"id": call_id, "type": "result", "data": data}, large=op in ("run", "chart"))
            if len(final) > self.max_message_bytes:
                final = {"id": call_id, "type": "error", "kind": "internal", "code": "too_large",
                         "message": "the result is larger than agent_max_message_bytes", "suggestions": []}
            self.stats[transport] += 1
        except asyncio.CancelledError:
            self.stats["cancelled"] += 1
            raise
        except WireError as exc:
            self.stats["failed"] += 1
            log.warning("refused a malformed call: %s", exc)
            final = {"id": call_id, "type": "error", "kind": "bad_request", "code": "invalid_op",
                     "message": str(exc), "suggestions": []}
        except Exception as exc:  # noqa: BLE001 - every outcome goes back to the caller
            self.stats["failed"] += 1
            final = error_message(call_id, exc)
            if final["kind"] == "internal":  # a bug: logged with its traceback, told as internal
                log.exception("%s agent call %s failed", self.agent, call_id)
        emit(final)

    # -- transports -----------------------------------------------------------------------

    async def websocket(self, websocket: WebSocket) -> None:
        if not self.authorized(websocket.headers):
            await websocket.close(code=4001)  # before accept: the handshake gets HTTP 403
            return
        await websocket.accept()
        outgoing: asyncio.Queue[dict[str, Any] | str] = asyncio.Queue()
        calls: dict[str, asyncio.Task[None]] = {}

        async def write() -> None:
            while True:
                out = await outgoing.get()
                await websocket.send_text(out if isinstance(out, str) else dumps(out))

        writer = asyncio.create_task(write(), name="agent-ws-writer")
        outgoing.put_nowait({"type": "hello", "agent": self.agent, "protocol": PROTOCOL,
                             "max_message_bytes": self.max_message_bytes})
        try:
            while True:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                raw = frame.get("text") or frame.get("bytes") or b""
                try:
                    message = await decode(raw, max_bytes=self.max_message_bytes)
                except WireError as exc:
                    outgoing.put_nowait({"type": "error", "kind": "bad_request", "code": "bad_json", "message": str(exc)})
                    continue
                call_id = str(message.get("id") or "")
                if message.get("op") == "cancel":
                    task = calls.get(call_id)
                    if task is not None:
                        task.cancel()
                    continue
                task = asyncio.create_task(self.serve_call(message, outgoing.put_nowait, "websocket"),
                                           name=f"agent-call-{call_id}")
                calls[call_id] = task
                task.add_done_callback(lambda _t, key=call_id: calls.pop(key, None))
        finally:
            # the caller went away: nobody waits for these calls any more
            for task in list(calls.values()):
                task.cancel()
            await asyncio.gather(*calls.values(), return_exceptions=True)
            writer.cancel()
            (outcome,) = await asyncio.gather(writer, return_exceptions=True)
            # a send to a socket the caller closed is expected here; anything else is a bug
            if isinstance(outcome, Exception) and not isinstance(outcome, (WebSocketDisconnect, OSError, RuntimeError)):
                log.error("the %s agent's WebSocket writer failed", self.agent, exc_info=outcome)

    async def http_call(self, request: Request) -> Response:
        if not self.authorized(request.headers):
            return JSONResponse({"error": "unauthenticated"}, status_code=401)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_message_bytes:
                return JSONResponse({"error": "too_large"}, status_code=413)
        try:
            message = await decode(bytes(body), max_bytes=self.max_message_bytes)
        except WireError as exc:
            return JSONResponse({"error": "bad_json", "message": str(exc)}, status_code=400)
        outgoing: asyncio.Queue[dict[str, Any] | str] = asyncio.Queue()
        task = asyncio.create_task(self.serve_call(message, outgoing.put_nowait, "http"), name="agent-http-call")

        async def stream() -> Any:
            try:
                while True:
                    try:
                        out = await asyncio.wait_for(outgoing.get(), HEARTBEAT_S)
                    except TimeoutError:
                        yield b'{"type":"heartbeat"}\n'
                        continue
                    if isinstance(out, str):  # the final message, serialized already
                        yield (out + "\n").encode()
                        return
                    yield (dumps(out) + "\n").encode()
                    if out.get("type") in ("result", "error"):
                        return
            finally:  # the caller closed the stream (cancel) or it is over
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

        return StreamingResponse(stream(), media_type="application/x-ndjson",
                                 headers={"X-Livebi-Agent": f"{self.agent}/{PROTOCOL}"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "agent": self.agent})

    async def stats_route(self, request: Request) -> Response:
        if not self.authorized(request.headers):
            return JSONResponse({"error": "unauthenticated"}, status_code=401)
        return JSONResponse({"agent": self.agent, **self.stats})


def create_agent_app(agent: str, settings: Settings) -> Starlette:
    """The agent's ASGI app for ``settings`` (agent_token required)."""
    work = AgentWork(agent, settings)
    service = AgentService(work, token=settings.agent_token, max_message_bytes=settings.agent_max_message_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await work.start()
        try:
            yield
        finally:
            await work.stop()

    app = Starlette(routes=[
        Route("/health", service.health),
        Route("/stats", service.stats_route),
        WebSocketRoute(WS_PATH, service.websocket),
        Route(HTTP_PATH, service.http_call, methods=["POST"]),
    ], lifespan=lifespan)
    app.state.service = service
    return app


def run_agent(agent: str, settings: Settings, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``agent`` on ``host:port`` until interrupted."""
    import uvicorn

    from ...server import redact_token_logs

    app = create_agent_app(agent, settings)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            ws_max_size=settings.agent_max_message_bytes, ws_per_message_deflate=False,
                            proxy_headers=False)
    redact_token_logs()
    uvicorn.Server(config).run()
