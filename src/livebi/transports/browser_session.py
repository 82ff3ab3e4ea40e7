"""Who makes an HTTP request: a bearer token (API clients) or the browser's session cookie.

Browsers keep their login in cookies that scripts cannot read, so a cross-site script (XSS) can
not carry the token away: ``POST /api/login`` sets

- ``livebi_session``: the session token; ``HttpOnly``, ``SameSite=Strict``, ``Path=/``, and
  ``Secure`` when the login came over HTTPS (directly, or said by a trusted proxy's
  ``X-Forwarded-Proto``) or the ``session_cookie_secure`` setting is on;
- ``livebi_csrf``: a CSRF token scripts of the page can read (not ``HttpOnly``), a MAC of the
  session token under the server key, so it cannot be forged or planted without the session.

A request authenticated by the cookie that changes state (any method but GET, HEAD, OPTIONS)
must carry the CSRF token in ``X-CSRF-Token`` (double submit, checked against the cookie and
against the session it is bound to, in constant time), else 403: SameSite=Strict already keeps
other sites' requests from carrying the cookie; this holds even where SameSite does not (old
browsers, a sibling subdomain). A request with an ``Authorization: Bearer`` header is judged by
the header alone, so API clients are unaffected by any cookie. Logout clears both cookies.
"""

from __future__ import annotations

import dataclasses
import hmac

from fastapi import HTTPException, Request, Response

from ..auth import AuthError, User
from .client_address import from_trusted_proxy

SESSION_COOKIE = "livebi_session"
CSRF_COOKIE = "livebi_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclasses.dataclass(frozen=True)
class Credential:
    token: str
    from_cookie: bool


def credential_of(request: Request) -> Credential | None:
    """The request's session token: the bearer header's, else the session cookie's."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return Credential(token.strip(), from_cookie=False)
    cookie = request.cookies.get(SESSION_COOKIE)
    return Credential(cookie, from_cookie=True) if cookie else None


def csrf_token(request: Request, session_token: str) -> str:
    """The CSRF token bound to ``session_token``."""
    return request.app.state.services.auth.signer.derive("csrf", session_token)


def csrf_ok(request: Request, session_token: str) -> bool:
    """Whether the ``X-CSRF-Token`` header equals the CSRF cookie and the session's token."""
    given = request.headers.get(CSRF_HEADER, "").encode()
    cookie = request.cookies.get(CSRF_COOKIE, "").encode()
    expected = csrf_token(request, session_token).encode()
    # Both compared whatever the first says: constant time, no early exit to time.
    matches_cookie = hmac.compare_digest(given, cookie)
    matches_session = hmac.compare_digest(given, expected)
    return bool(given) and matches_cookie and matches_session


async def authenticated_user(request: Request) -> User:
    """The user a request is authenticated as (bearer header or session cookie).

    Raises:
        HTTPException: 401 without valid credentials; 403 for a cookie-authenticated,
            state-changing request without the right ``X-CSRF-Token``.
    """
    credential = credential_of(request)
    if credential is None:
        raise HTTPException(
            401, "missing credentials: an Authorization: Bearer token, or the session cookie POST /api/login sets",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if credential.from_cookie and request.method not in SAFE_METHODS and not csrf_ok(request, credential.token):
        raise HTTPException(
            403, f"missing or wrong {CSRF_HEADER} header: requests authenticated by the session cookie that change "
            f"state must send the {CSRF_COOKIE} cookie's value in it",
        )
    try:
        return await request.app.state.services.auth.authenticate(credential.token)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def _secure(request: Request) -> bool:
    """Whether cookies set in answer to ``request`` must be ``Secure``."""
    settings = request.app.state.services.settings
    if settings.session_cookie_secure or request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else ""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https" and from_trusted_proxy(peer, settings.trusted_proxies)


def set_session_cookies(request: Request, response: Response, token: str) -> None:
    """Log the browser in: the session cookie and its CSRF cookie, living as long as the token."""
    max_age = request.app.state.services.settings.token_ttl_s
    secure = _secure(request)
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict")
    response.set_cookie(CSRF_COOKIE, csrf_token(request, token), max_age=max_age, path="/", secure=secure,
                        httponly=False, samesite="strict")


def clear_session_cookies(request: Request, response: Response) -> None:
    """Log the browser out: both cookies expire at once."""
    secure = _secure(request)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, httponly=False, samesite="strict")
