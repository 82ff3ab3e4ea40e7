import pytest

from livebi.auth import AuthError, TokenSigner, User, hash_password, verify_password


def test_password_hash_roundtrip() -> None:
    h = hash_password("s3cret")
    assert h.startswith("$argon2")
    assert verify_password(h, "s3cret")
    assert not verify_password(h, "S3cret")
    assert not verify_password("not-a-hash", "s3cret")


def test_tokens_verify_and_expire() -> None:
    signer = TokenSigner("key", ttl_s=60)
    user = User("u1", "alice")
    token = signer.issue(user, now=1000)
    assert signer.verify(token, now=1059) == user
    with pytest.raises(AuthError, match="expired"):
        signer.verify(token, now=1061)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c"])
def test_malformed_tokens_are_refused(token) -> None:
    with pytest.raises(AuthError):
        TokenSigner("key", ttl_s=60).verify(token)


def test_forged_or_foreign_tokens_are_refused() -> None:
    token = TokenSigner("key", ttl_s=60).issue(User("u1", "alice"))
    with pytest.raises(AuthError, match="signature"):
        TokenSigner("other key", ttl_s=60).verify(token)
    payload, sig = token.split(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + sig
    with pytest.raises(AuthError):
        TokenSigner("key", ttl_s=60).verify(tampered)


@pytest.mark.parametrize("token", ["a.é", "é.b", "\x00.\x00"])
def test_non_ascii_tokens_are_refused_not_crashing(token) -> None:
    with pytest.raises(AuthError):
        TokenSigner("key", ttl_s=60).verify(token)
