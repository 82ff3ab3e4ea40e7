"""Authentication: argon2 password hashes, signed session tokens, single-use tickets, revocation.

Session tokens are ``<payload>.<signature>``: the payload is base64url JSON ``{"uid", "usr",
"ver", "exp"}`` and the signature an HMAC-SHA256 of it with the server's secret key. They are
stateless, so every node that shares the key accepts them. ``ver`` is the user's token version
when the token was issued (tokens of the previous release have none: version 0); logging out
and changing the password bump the version in the store, which revokes every older token.

Tickets are the same format with ``"typ": "ticket"``, a random ``jti`` and a short lifetime
(``ticket_ttl_s``). They authenticate one WebSocket or SSE connection through the URL, where
long-lived tokens must never go (proxies and access logs keep URLs). Single use is enforced per
process, and across nodes through Redis when the cluster has it (``shared_tickets``,
:mod:`livebi.cluster.tickets`).

Every check looks the user's token version up again, at most every ``user_cache_s`` per user:
on this process revocation takes effect at once (the cache is updated), on other processes or
nodes within ``user_cache_s``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from .auth_limits import LoginGuard, LoginThrottled
from .store import MetadataStore

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["AuthError", "Authenticator", "LoginThrottled", "TokenSigner", "User", "build_authenticator", "hash_password", "verify_password"]

_hasher = PasswordHasher()


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    username: str
    version: int = 0  # the token version the credential was issued under

    def public(self) -> dict[str, str]:
        return {"id": self.id, "username": self.username}


class AuthError(Exception):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches. Only a mismatch (or a hash that is not argon2) is False:
    argon2 failing for another reason (it could not allocate its memory, under the server's
    address-space limit) raises, so the caller reports an error instead of "wrong password"."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: str, *, ttl_s: int) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()
        self.ttl_s = ttl_s

    def issue(self, user: User, *, now: float | None = None) -> str:
        """A session token for ``user`` (bearer header, auth op), valid ``ttl_s``."""
        return self._encode({"uid": user.id, "usr": user.username, "ver": user.version}, self.ttl_s, now)

    def issue_ticket(self, user: User, *, ttl_s: float, now: float | None = None) -> tuple[str, str]:
        """A single-use connection ticket and its id (the caller tracks its use)."""
        jti = secrets.token_urlsafe(12)
        claims = {"uid": user.id, "usr": user.username, "ver": user.version, "typ": "ticket", "jti": jti}
        return self._encode(claims, ttl_s, now), jti

    def verify(self, token: str, *, now: float | None = None) -> User:
        """Return a session token's user. Raises AuthError when malformed, forged, expired or a ticket."""
        claims, user = self._decode(token, now)
        if "typ" in claims:
            raise AuthError("not a session token")
        return user

    def verify_ticket(self, ticket: str, *, now: float | None = None) -> tuple[User, str]:
        """Return a ticket's user and id. Raises AuthError as :meth:`verify` does."""
        claims, user = self._decode(ticket, now)
        if claims.get("typ") != "ticket" or not isinstance(claims.get("jti"), str):
            raise AuthError("not a ticket: get one from POST /api/ticket")
        return user, claims["jti"]

    def derive(self, purpose: str, value: str) -> str:
        """A MAC of ``value`` for ``purpose`` under the server key: a value only this server
        (and nodes sharing its key) can compute, e.g. the CSRF token bound to a session token."""
        return _b64(hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest())

    def _encode(self, claims: dict, ttl_s: float, now: float | None) -> str:
        # Fractional seconds: a whole-second expiry would cut short-lived tickets by up to 1 s.
        claims = {**claims, "exp": round((now if now is not None else time.time()) + ttl_s, 3)}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def _decode(self, token: str, now: float | None) -> tuple[dict, User]:
        if not isinstance(token, str) or not token.isascii():
            raise AuthError("malformed token")
        try:
            payload, signature = token.split(".", 1)
        except ValueError:
            raise AuthError("malformed token") from None
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise AuthError("invalid token signature")
        try:
            claims = json.loads(_unb64(payload))
            user = User(str(claims["uid"]), str(claims["usr"]), int(claims.get("ver", 0)))
            exp = float(claims["exp"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuthError("malformed token") from None
        if exp < (now if now is not None else time.time()):
            raise AuthError("token expired")
        return claims, user

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


class Authenticator:
    """Logs users in against the metadata store, checks tokens and tickets, revokes them.

    Args:
        guard: admission control for password checks (rate limits, one attempt in flight per
            address and username, bounded pool); None admits everything (tests, CLI).
        hash_slots: argon2 verifications run at once (each holds a thread).
        user_cache_s: how long a user's existence and token version are trusted without a
            store lookup; revocations by other processes take effect at most this late.
        ticket_ttl_s: lifetime of connection tickets.
    """

    def __init__(
        self,
        store: MetadataStore,
        signer: TokenSigner,
        *,
        guard: LoginGuard | None = None,
        hash_slots: int = 2,
        user_cache_s: float = 30.0,
        ticket_ttl_s: float = 30.0,
    ) -> None:
        self.store = store
        self.signer = signer
        self.guard = guard
        self._hashing = asyncio.Semaphore(hash_slots)
        self.user_cache_s = user_cache_s
        self.ticket_ttl_s = ticket_ttl_s
        # user id -> (when looked up, current token version). A reconnect storm would otherwise
        # do one store query per connection.
        self._seen: dict[str, tuple[float, int]] = {}
        self._used_tickets: dict[str, float] = {}  # ticket id -> expiry (wall clock)
        #: several nodes: the record of tickets redeemed anywhere (livebi.cluster.tickets)
        self.shared_tickets: Any = None

    async def login(self, username: str, password: str, *, address: str = "") -> tuple[User, str]:
        """Check a password and issue a session token.

        Raises:
            LoginThrottled: refused before checking (rate limit, busy pool); nothing was spent.
            AuthError: wrong username or password.
        """
        if self.guard is not None:
            self.guard.check(address, username)
            self.guard.begin(address, username)
        valid = False
        try:
            row = await self.store.get_user(username=username)
            # Verify against a dummy hash when the user is unknown so timing does not reveal it.
            password_hash = row["password_hash"] if row else _DUMMY_HASH
            # argon2 is deliberately slow (~0.2 s): off the event loop, a few at a time.
            async with self._hashing:
                valid = await asyncio.to_thread(verify_password, password_hash, password) and row is not None
        finally:
            if self.guard is not None:
                self.guard.end(address, username, failed=not valid)
        if not valid:
            raise AuthError("invalid username or password")
        version = await self._version(row["id"], refresh=True)
        user = User(row["id"], row["username"], version or 0)
        return user, self.signer.issue(user)

    async def authenticate(self, token: str) -> User:
        """The user of a valid, current session token; raises AuthError otherwise."""
        user = self.signer.verify(token)
        await self.check_current(user)
        return user

    def issue_ticket(self, user: User) -> tuple[str, float]:
        """A single-use ticket for ``user`` (already authenticated) and its lifetime in seconds."""
        return self.signer.issue_ticket(user, ttl_s=self.ticket_ttl_s)[0], self.ticket_ttl_s

    async def redeem_ticket(self, ticket: str) -> User:
        """The user of a valid, unused, current ticket, which is used up; AuthError otherwise."""
        user, jti = self.signer.verify_ticket(ticket)
        now = time.time()
        if jti in self._used_tickets:
            raise AuthError("ticket already used: get a fresh one from POST /api/ticket")
        if len(self._used_tickets) > 1000:
            self._used_tickets = {k: exp for k, exp in self._used_tickets.items() if exp >= now}
        self._used_tickets[jti] = now + self.ticket_ttl_s + 1
        if self.shared_tickets is not None and not await self.shared_tickets.first_use(jti, self.ticket_ttl_s):
            raise AuthError("ticket already used: get a fresh one from POST /api/ticket")
        await self.check_current(user)
        return user

    async def check_current(self, user: User) -> None:
        """Raise AuthError when ``user`` was removed or their credential's version revoked."""
        version = await self._version(user.id)
        if version is None:
            raise AuthError("user no longer exists")
        if user.version < version:
            raise AuthError("token revoked")

    async def still_valid(self, user: User) -> bool:
        """Whether a connection authenticated as ``user`` may go on (cached, cheap)."""
        try:
            await self.check_current(user)
        except AuthError:
            return False
        return True

    async def revoke(self, user_id: str) -> int:
        """Revoke every token and ticket of a user issued so far; returns the new version."""
        version = await self.store.bump_token_version(user_id)
        self._remember(user_id, version)
        return version

    async def _version(self, user_id: str, *, refresh: bool = False) -> int | None:
        now = time.monotonic()
        cached = self._seen.get(user_id)
        if not refresh and cached is not None and now - cached[0] < self.user_cache_s:
            return cached[1]
        version = await self.store.token_version(user_id)
        if version is None:
            self._seen.pop(user_id, None)
        else:
            self._remember(user_id, version, now)
        return version

    def _remember(self, user_id: str, version: int, now: float | None = None) -> None:
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen[user_id] = (time.monotonic() if now is None else now, version)


def build_authenticator(settings: "Settings", store: MetadataStore) -> Authenticator:
    """The server's Authenticator with every limit taken from ``settings``."""
    s = settings
    guard = LoginGuard(
        address_rate_per_s=s.login_rate_per_address_per_min / 60, address_burst=s.login_burst_per_address,
        username_failures_per_s=s.login_failures_per_username_per_min / 60, username_burst=s.login_failures_per_username,
        hash_slots=s.login_hash_workers, queue_max=s.login_queue_max,
    )
    return Authenticator(
        store, TokenSigner(s.resolved_secret_key(), ttl_s=s.token_ttl_s), guard=guard,
        hash_slots=s.login_hash_workers, user_cache_s=s.user_cache_s, ticket_ttl_s=s.ticket_ttl_s,
    )


_DUMMY_HASH = _hasher.hash("livebi-dummy-password")
