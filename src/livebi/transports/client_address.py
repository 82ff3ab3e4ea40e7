"""Which client an HTTP request or WebSocket comes from, for per-address limits.

The socket peer, unless it is one of ``trusted_proxies``: then ``X-Forwarded-For`` is read from
the right (the entry the nearest proxy appended) past every trusted proxy; the first address
that is not a trusted proxy is the client. Without trusted proxies the header is ignored, so a
client cannot pick a fresh address for each request.

Per-address limits count an IPv6 client by its /64 network (:func:`limit_key`): one host or
one customer is given a whole /64, so counting each of its 2^64 addresses apart would give it a
fresh budget for every request.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def parse_networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def from_trusted_proxy(peer: str | None, trusted_proxies: Iterable[str]) -> bool:
    """Whether ``peer`` (a socket peer address) is one of ``trusted_proxies``."""
    return bool(peer) and _trusted(peer, parse_networks(tuple(trusted_proxies)))


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: Iterable[str]) -> str:
    """The client's address (a string; "unknown" when the server cannot tell)."""
    peer = peer or "unknown"
    networks = parse_networks(tuple(trusted_proxies))
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


#: Prefix length of the IPv6 network that counts as one client for per-address limits.
IPV6_CLIENT_PREFIX = 64


@functools.lru_cache(maxsize=4096)
def limit_key(address: str) -> str:
    """The key per-address limits count ``address`` under: an IPv4 address (also when written
    IPv4-mapped) as is, an IPv6 address as its /64 network, anything else unchanged.
    Cached: every connect and login asks, mostly for the same few addresses, and parsing one
    costs more than the rest of the admission check."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(ip)


def peer_limit_key(peer: str | None, forwarded_lines: Iterable[str], trusted_proxies: Iterable[str]) -> str:
    """The key per-address limits count a connection under: its client address
    (:func:`client_address`), an IPv6 one as its /64 (:func:`limit_key`). ``forwarded_lines``:
    every ``X-Forwarded-For`` header line, read as one list (a proxy may add its own line below
    the client's: reading only the first would let a client pick its address)."""
    return limit_key(client_address(peer, ", ".join(forwarded_lines) or None, trusted_proxies))


def of_connection(conn, trusted_proxies: Iterable[str]) -> str:
    """:func:`peer_limit_key` of a Starlette Request or WebSocket."""
    peer = conn.client.host if conn.client else None
    return peer_limit_key(peer, conn.headers.getlist("x-forwarded-for"), trusted_proxies)
