"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for the LLM tests.

Each request to ``POST /v1/chat/completions`` takes the next step of the script (the last step
repeats): a string is the assistant's reply, an int an HTTP error status, ``Sleep(s)`` waits
before replying (a client timeout), ``Raw(body)`` sends that body as is. Requests are recorded
with their headers so tests can read the prompt.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass
class Sleep:
    seconds: float
    then: str = "SELECT 1"


@dataclasses.dataclass
class Raw:
    body: str
    status: int = 200


class ChatServer:
    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                step = server._next({"path": self.path, "body": body, "headers": dict(self.headers)})
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = step.then
                if isinstance(step, int):
                    self._send(step, json.dumps({"error": {"message": "scripted failure"}}))
                elif isinstance(step, Raw):
                    self._send(step.status, step.body)
                else:
                    reply = {"id": "x", "object": "chat.completion", "model": body.get("model"),
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": step}}]}
                    self._send(200, json.dumps(reply))

            def _send(self, status: int, text: str) -> None:
                data = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _next(self, request: dict[str, Any]) -> Any:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def prompt(self, i: int = 0) -> str:
        """All message contents of request ``i``, joined."""
        return "\n".join(m["content"] for m in self.requests[i]["body"]["messages"])
