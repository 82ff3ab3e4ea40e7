"""Security headers on every HTTP response: a pure ASGI middleware.

The Content-Security-Policy is the backstop should hostile text ever reach the page as markup:
only scripts served by livebi itself run (no inline scripts, no eval, no other origins), the
page cannot be framed (clickjacking), and nothing is sent to other origins. Verified against
the real UI in a real browser (tests/e2e/test_security_browser.py), which fails on any CSP
violation. Why each directive is what it is:

- ``script-src 'self'``: the UI is ES modules plus plotly.min.js, all same-origin; plotly.js
  draws the SVG charts livebi builds without ``eval`` (only its WebGL/map traces would need it).
- ``style-src 'self' 'unsafe-inline'``: plotly.js injects ``<style>`` elements and sets
  ``style`` attributes while drawing. Inline style cannot run script; it is the usual exception.
- ``img-src 'self' data: blob:``: PNG export rasterises the chart through data:/blob: URLs.
- ``connect-src 'self'``: REST, SSE and the WebSocket; CSP level 3 ``'self'`` also matches
  ``ws:``/``wss:`` on the same host and port (Chromium, Firefox, Safari).
- ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY`` for old browsers), ``base-uri
  'none'``, ``form-action 'self'``, ``object-src 'none'``.

A response that sets its own Content-Security-Policy keeps it (the opt-in API docs page needs
one that allows its CDN); the other headers are always added unless already present.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
))

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)


def security_headers(websocket_port: int | None = None) -> tuple[tuple[bytes, bytes], ...]:
    """:data:`SECURITY_HEADERS`, with ``connect-src`` also allowing WebSockets to
    ``websocket_port`` on any host (``ws_server = "websockets"``: 'self' covers only the
    page's own port; the page's host is not known here, behind proxies)."""
    if websocket_port is None:
        return SECURITY_HEADERS
    policy = CONTENT_SECURITY_POLICY.replace(
        "connect-src 'self'", f"connect-src 'self' ws://*:{websocket_port} wss://*:{websocket_port}"
    )
    return ((b"content-security-policy", policy.encode()), *SECURITY_HEADERS[1:])

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response that does not set them itself.

    WebSocket handshakes are passed through untouched: browsers apply none of these headers to
    them, and the page that opens the socket already carries the policy.
    """

    def __init__(self, app: ASGIApp, *, headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(name, value) for name, value in self.headers if name not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
