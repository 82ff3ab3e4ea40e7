"""Authentication: argon2 password hashes and signed, expiring session tokens.

Tokens are ``<payload>.<signature>``: the payload is base64url JSON ``{"uid", "usr", "exp"}``
and the signature an HMAC-SHA256 of it with the server's secret key. They are stateless, so
every node that shares the key accepts them; a user removed from the store is refused when the
token is used because the user is looked up again.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .store import MetadataStore

_hasher = PasswordHasher()


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    username: str

    def public(self) -> dict[str, str]:
        return {"id": self.id, "username": self.username}


class AuthError(Exception):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
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
        exp = int((now if now is not None else time.time()) + self.ttl_s)
        payload = _b64(json.dumps({"uid": user.id, "usr": user.username, "exp": exp}, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str, *, now: float | None = None) -> User:
        """Return the token's user. Raises AuthError when malformed, forged or expired."""
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
            uid, usr, exp = str(claims["uid"]), str(claims["usr"]), int(claims["exp"])
        except (ValueError, KeyError, TypeError):
            raise AuthError("malformed token") from None
        if exp < (now if now is not None else time.time()):
            raise AuthError("token expired")
        return User(uid, usr)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


class Authenticator:
    """Logs users in against the metadata store and checks tokens."""

    def __init__(self, store: MetadataStore, signer: TokenSigner, *, user_cache_s: float = 30.0) -> None:
        self.store = store
        self.signer = signer
        self._hashing = asyncio.Semaphore(2)
        # user id -> time it was last seen in the store. A reconnect storm would otherwise do one
        # store query per connection; a removed user is refused at most user_cache_s later.
        self.user_cache_s = user_cache_s
        self._seen: dict[str, float] = {}

    async def login(self, username: str, password: str) -> tuple[User, str]:
        row = await self.store.get_user(username=username)
        # Verify against a dummy hash when the user is unknown so timing does not reveal it.
        password_hash = row["password_hash"] if row else _DUMMY_HASH
        # argon2 is deliberately slow (~0.2 s): run it off the event loop, a few at a time.
        async with self._hashing:
            valid = await asyncio.to_thread(verify_password, password_hash, password)
        if not valid or row is None:
            raise AuthError("invalid username or password")
        user = User(row["id"], row["username"])
        return user, self.signer.issue(user)

    async def authenticate(self, token: str) -> User:
        user = self.signer.verify(token)
        now = time.monotonic()
        seen = self._seen.get(user.id)
        if seen is not None and now - seen < self.user_cache_s:
            return user
        if await self.store.get_user(user_id=user.id) is None:
            self._seen.pop(user.id, None)
            raise AuthError("user no longer exists")
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen[user.id] = now
        return user


_DUMMY_HASH = _hasher.hash("livebi-dummy-password")
