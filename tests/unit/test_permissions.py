"""Permission rules fed data directly: warehouse access and who may read operator endpoints."""

from __future__ import annotations

import pytest

from livebi.auth import User
from livebi.permissions import Refusal, WarehouseAccess, bearer_matches, is_direct_loopback, operator_refusal
from livebi.protocol import ErrorCode, ProtocolError

ALICE, BOB, CAROL = User("1", "alice"), User("2", "bob"), User("3", "carol")
NAMES = ["finance", "sales", "hr"]


def access() -> WarehouseAccess:
    return WarehouseAccess({"finance": ["alice"], "hr": []}, NAMES)


def test_unlisted_warehouses_are_open_and_listed_ones_only_to_their_users():
    rules = access()
    assert rules.allowed(ALICE) == ["finance", "sales"]
    assert rules.allowed(BOB) == ["sales"]
    assert not rules.allows(ALICE, "hr")  # an empty list allows nobody


def test_resolve_defaults_to_the_first_allowed_warehouse():
    rules = access()
    assert rules.resolve(ALICE, None) == "finance"
    assert rules.resolve(BOB, None) == "sales"
    assert rules.resolve(BOB, "sales") == "sales"


@pytest.mark.parametrize(("user", "name", "code"), [
    (BOB, "finance", ErrorCode.forbidden),
    (ALICE, "hr", ErrorCode.forbidden),
    (BOB, "nope", ErrorCode.unknown_warehouse),
])
def test_resolve_refuses(user, name, code):
    with pytest.raises(ProtocolError) as info:
        access().resolve(user, name)
    assert info.value.code is code
    if code is ErrorCode.unknown_warehouse:
        assert "finance" not in info.value.message and "hr" not in info.value.message


def test_a_user_allowed_nowhere_is_forbidden_without_a_name():
    rules = WarehouseAccess({"finance": ["alice"]}, ["finance"])
    with pytest.raises(ProtocolError) as info:
        rules.resolve(CAROL, None)
    assert info.value.code is ErrorCode.forbidden


def test_rules_for_unconfigured_warehouses_are_refused():
    with pytest.raises(ValueError, match="'finanse'"):
        WarehouseAccess({"finanse": ["alice"]}, NAMES)


@pytest.mark.parametrize(("host", "headers", "expected"), [
    ("127.0.0.1", {}, True),
    ("127.5.6.7", {}, True),
    ("::1", {}, True),
    ("::ffff:127.0.0.1", {}, True),
    ("192.0.2.10", {}, False),
    ("::ffff:192.0.2.10", {}, False),
    ("2001:db8::1", {}, False),
    (None, {}, False),
    ("testclient", {}, False),
    ("127.0.0.1", {"x-forwarded-for": "127.0.0.1"}, False),
    ("127.0.0.1", {"forwarded": "for=192.0.2.1"}, False),
    ("127.0.0.1", {"x-real-ip": "192.0.2.1"}, False),
])
def test_is_direct_loopback(host, headers, expected):
    assert is_direct_loopback(host, headers) is expected


def test_operator_refusal_modes():
    remote = {"client_host": "192.0.2.10", "headers": {}}
    assert operator_refusal("public", **remote) is None
    assert operator_refusal("loopback", **remote) is Refusal.not_loopback
    assert operator_refusal("loopback", client_host="127.0.0.1", headers={}) is None
    token = "t" * 20
    assert operator_refusal("token", client_host="127.0.0.1", headers={}, token=token) is Refusal.bad_token
    assert operator_refusal("token", client_host="192.0.2.10", headers={"authorization": f"Bearer {token}"},
                            token=token) is None
    with pytest.raises(ValueError):
        operator_refusal("everyone", **remote)


def test_bearer_matches():
    assert bearer_matches("Bearer secret", "secret")
    assert bearer_matches("bearer  secret ", "secret")
    assert not bearer_matches("Basic secret", "secret")
    assert not bearer_matches("Bearer secre", "secret")
    assert not bearer_matches("Bearer ", "")  # an empty expected token never matches


async def test_a_query_channel_is_open_to_its_asker_and_its_recipients_only():
    from livebi.permissions import authorize_channel

    async def owner(query_id: str) -> str | None:
        return {"q1": ALICE.id}.get(query_id)

    async def recipient(user: User, query_id: str) -> bool:
        return (query_id, user.id) == ("q1", BOB.id)

    await authorize_channel(ALICE, "query:q1", query_owner=owner, query_recipient=recipient)
    await authorize_channel(BOB, "query:q1", query_owner=owner, query_recipient=recipient)
    for user, channel, code in ((CAROL, "query:q1", ErrorCode.forbidden), (BOB, "query:q2", ErrorCode.not_found)):
        with pytest.raises(ProtocolError) as caught:
            await authorize_channel(user, channel, query_owner=owner, query_recipient=recipient)
        assert caught.value.code is code
    with pytest.raises(ProtocolError):  # without the recipient rule, only the asker
        await authorize_channel(BOB, "query:q1", query_owner=owner)
