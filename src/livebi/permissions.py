"""Who may do what, decided in one place: channel subscriptions, warehouses, operator endpoints.

Pure rules (no I/O of their own): the transports and the session ask these and turn a refusal
into their own error form (a ``forbidden`` reply, HTTP 401/403). Keeping every rule here means a
new route or op that takes a warehouse or a channel has one function to call, not a copy to
write.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import re
from typing import Awaitable, Callable, Mapping, Sequence

from .auth import User
from .protocol import ErrorCode, ProtocolError

CHANNEL_RE = re.compile(r"^(query|dashboard|user):([A-Za-z0-9_\-]{1,64})$|^system$")

# Headers a reverse proxy adds; a loopback peer that sends one is relaying someone else.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host", "x-forwarded-proto")


# --- channels ------------------------------------------------------------------------------------


async def authorize_channel(
    user: User, channel: str, *, query_owner: Callable[[str], Awaitable[str | None]] | None,
    dashboard_role: Callable[[str, User], Awaitable[str | None]] | None = None,
) -> None:
    """Raise ProtocolError unless ``user`` may subscribe to ``channel``.

    Args:
        query_owner: looks up the user id that asked a query (None: no query is known).
        dashboard_role: the user's role on a dashboard (None: none); raises ``not_found``
            for a dashboard that does not exist. Any role may subscribe (viewers too).

    Raises:
        ProtocolError: ``unknown_channel`` for a name of no known form, ``not_found`` for a
            query (or dashboard) that does not exist, ``forbidden`` for someone else's.
    """
    match = CHANNEL_RE.match(channel)
    if match is None:
        raise ProtocolError(
            ErrorCode.unknown_channel,
            f"unknown channel {channel!r}: expected query:<id>, dashboard:<id>, user:<id> or system",
        )
    kind, ident = match.group(1), match.group(2)
    if kind is None:  # system
        return
    if kind == "query":
        owner = await query_owner(ident) if query_owner else None
        if owner is None:
            raise ProtocolError(ErrorCode.not_found, f"no query {ident!r}")
        if owner != user.id:
            raise ProtocolError(ErrorCode.forbidden, f"query {ident!r} belongs to another user")
        return
    if kind == "user":
        if ident != user.id:
            raise ProtocolError(ErrorCode.forbidden, "you may only subscribe to your own user channel")
        return
    if kind == "dashboard" and dashboard_role is not None:
        if await dashboard_role(ident, user) is None:
            raise ProtocolError(ErrorCode.forbidden, f"dashboard {ident!r} is not shared with you")
        return
    raise ProtocolError(ErrorCode.not_found, f"no {kind} {ident!r}")


# --- dashboards ----------------------------------------------------------------------------------

#: Dashboard roles, weakest first: each may do everything the ones before it may.
DASHBOARD_ROLES = ("viewer", "editor", "owner")


def dashboard_role(*, user_id: str, owner_id: str, member_role: str | None, public: bool) -> str | None:
    """The role of ``user_id`` on a dashboard: its owner, a member's stored role, ``viewer``
    for everyone when it is public, otherwise None (a stranger)."""
    if user_id == owner_id:
        return "owner"
    if member_role in DASHBOARD_ROLES:
        return member_role
    return "viewer" if public else None


def require_dashboard_role(role: str | None, needed: str, *, dashboard_id: str, action: str) -> None:
    """Raise ``forbidden`` unless ``role`` is at least ``needed`` (``action`` says what for)."""
    if role is None:
        raise ProtocolError(ErrorCode.forbidden, f"dashboard {dashboard_id!r} is not shared with you")
    if DASHBOARD_ROLES.index(role) < DASHBOARD_ROLES.index(needed):
        higher = " (or owner)" if needed == "editor" else ""
        raise ProtocolError(ErrorCode.forbidden, f"you are a {role} of dashboard {dashboard_id!r}; to {action} you must be its {needed}{higher}")


# --- warehouses ----------------------------------------------------------------------------------


class WarehouseAccess:
    """The ``warehouse_access`` setting: usernames allowed on each listed warehouse.

    A warehouse that is not listed is open to every user; an empty list allows nobody. Rules
    naming a warehouse that is not configured are refused at construction, because a typo would
    otherwise leave the intended warehouse open to everyone.
    """

    def __init__(self, rules: Mapping[str, Sequence[str]], warehouses: Sequence[str]) -> None:
        unknown = [name for name in rules if name not in warehouses]
        if unknown:
            raise ValueError(
                f"warehouse_access names warehouses that are not configured: {', '.join(map(repr, unknown))} "
                f"(configured: {', '.join(warehouses)})"
            )
        self._rules = {name: frozenset(users) for name, users in rules.items()}
        self._names = list(warehouses)

    def allows(self, user: User, warehouse: str) -> bool:
        """Whether ``user`` may query ``warehouse`` (a configured name)."""
        allowed = self._rules.get(warehouse)
        return allowed is None or user.username in allowed

    def allowed(self, user: User) -> list[str]:
        """The warehouses ``user`` may query, in configuration order."""
        return [name for name in self._names if self.allows(user, name)]

    def resolve(self, user: User, name: str | None) -> str:
        """The warehouse a request of ``user`` runs on.

        Args:
            name: the warehouse the request names; None: the user's default, which is the first
                configured warehouse the user may query (so a user kept off the global default
                still gets answers without naming one).

        Raises:
            ProtocolError: ``unknown_warehouse`` (the message lists only warehouses the user may
                query), or ``forbidden`` (the user may not query it, or any warehouse at all).
        """
        allowed = self.allowed(user)
        if name is None:
            if not allowed:
                raise ProtocolError(ErrorCode.forbidden, "you may not query any warehouse on this server")
            return allowed[0]
        if name not in self._names:
            raise ProtocolError(
                ErrorCode.unknown_warehouse,
                f"no warehouse named {name!r}; available: {', '.join(allowed) or 'none'}",
            )
        if name not in allowed:
            raise ProtocolError(ErrorCode.forbidden, f"you may not query warehouse {name!r}")
        return name


# --- operator endpoints (/metrics, detailed /health, API docs) -----------------------------------


class Refusal(enum.Enum):
    """Why an operator endpoint refused a caller."""

    not_loopback = "not_loopback"  # loopback mode, and the caller is remote or behind a proxy
    bad_token = "bad_token"  # token mode, and no or the wrong bearer token


def is_direct_loopback(client_host: str | None, headers: Mapping[str, str]) -> bool:
    """Whether the peer is this host and is not relaying someone else's request.

    A reverse proxy on the same host connects from loopback; the forwarding headers it adds
    give it away. A proxy configured to add none cannot be told apart, which is why deployments
    behind a proxy should use ``metrics_access=token``.
    """
    if client_host is None or any(h in headers for h in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(client_host)
    except ValueError:
        return False  # a unix socket path or a name: not provably this host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time compare)."""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def operator_refusal(
    mode: str, *, client_host: str | None, headers: Mapping[str, str], token: str = ""
) -> Refusal | None:
    """None when a caller may read an operator endpoint under ``mode``, else why not.

    Args:
        mode: ``public``, ``loopback`` or ``token`` (the ``metrics_access`` values).
        headers: the request headers, lower-case names.
        token: the expected bearer token in ``token`` mode.
    """
    if mode == "public":
        return None
    if mode == "token":
        return None if bearer_matches(headers.get("authorization", ""), token) else Refusal.bad_token
    if mode == "loopback":
        return None if is_direct_loopback(client_host, headers) else Refusal.not_loopback
    raise ValueError(f"unknown operator access mode {mode!r}")
