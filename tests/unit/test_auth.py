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


def test_tokens_carry_the_users_token_version() -> None:
    signer = TokenSigner("key", ttl_s=60)
    token = signer.issue(User("u1", "alice", version=3), now=1000)
    assert signer.verify(token, now=1001).version == 3


def test_tokens_of_the_previous_release_have_version_zero() -> None:
    # {"uid", "usr", "exp"} without "ver", signed as the previous release did.
    import base64, hashlib, hmac, json

    key = hashlib.sha256(b"key").digest()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    payload = b64(json.dumps({"uid": "u1", "usr": "alice", "exp": 2000}).encode())
    token = payload + "." + b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    assert TokenSigner("key", ttl_s=60).verify(token, now=1000) == User("u1", "alice", version=0)


def test_tickets_and_session_tokens_are_not_interchangeable() -> None:
    signer = TokenSigner("key", ttl_s=3600)
    user = User("u1", "alice", version=2)
    ticket, jti = signer.issue_ticket(user, ttl_s=30, now=1000)
    assert signer.verify_ticket(ticket, now=1029) == (user, jti)
    with pytest.raises(AuthError, match="expired"):
        signer.verify_ticket(ticket, now=1031)
    with pytest.raises(AuthError, match="not a session token"):
        signer.verify(ticket, now=1000)
    with pytest.raises(AuthError, match="not a ticket"):
        signer.verify_ticket(signer.issue(user, now=1000), now=1000)
    other, other_jti = signer.issue_ticket(user, ttl_s=30, now=1000)
    assert other != ticket and other_jti != jti, "every ticket is unique (single use is tracked by id)"


def test_argon2_failing_to_allocate_is_an_error_not_a_wrong_password(tmp_path):
    """Under an address-space limit (the server sets one) argon2 may fail to allocate its
    memory: that must raise, not answer the right password as a wrong one."""
    import subprocess
    import sys

    script = tmp_path / "argon_oom.py"
    script.write_text(
        "import resource\n"
        "from livebi.auth import hash_password, verify_password\n"
        "h = hash_password('secret-password')\n"
        "size = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 8 * 1024 * 1024, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    print('returned', verify_password(h, 'secret-password'))\n"
        "except Exception as exc:\n"
        "    print('raised', type(exc).__name__)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "raised VerificationError", out
