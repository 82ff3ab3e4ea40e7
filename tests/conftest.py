"""Shared fixtures.

Tests that need PostgreSQL or Redis skip with a loud reason on a machine without them;
``LIVEBI_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns those skips into failures so CI always
exercises them.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import urllib.parse
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

REQUIRE_SERVICES = os.environ.get("LIVEBI_REQUIRE_SERVICES") == "1"
PG_DSN = os.environ.get("LIVEBI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LIVEBI_TEST_REDIS", "redis://127.0.0.1:6379/0")
NORTHWIND = Path(__file__).resolve().parents[2] / "shared" / "data" / "northwind.sqlite"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    reason = f"*** {name} is not reachable on {host}:{port}: test SKIPPED (start it to run this test) ***"
    if REQUIRE_SERVICES:
        pytest.fail(reason.replace("SKIPPED", "REQUIRED by LIVEBI_REQUIRE_SERVICES=1"))
    pytest.skip(reason)


@pytest.fixture
def pg_dsn() -> str:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    return PG_DSN


@dataclasses.dataclass
class ReadOnlyPostgres:
    """A throwaway schema (filled through ``admin``, a superuser connection) and a throwaway
    LOGIN role that may only read it: the kind of role livebi must be deployed with."""

    admin: Any  # asyncpg.Connection as the superuser
    schema: str
    role: str
    dsn: str  # the role's DSN, search_path set to the schema

    def dsn_for(self, role: str) -> str:
        return role_dsn(self.dsn, role)


def role_dsn(dsn: str, role: str) -> str:
    """``dsn`` connecting as ``role`` (trust auth on 127.0.0.1: no password needed)."""
    parts = urllib.parse.urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@pytest.fixture
async def pg_readonly(pg_dsn: str) -> AsyncIterator[ReadOnlyPostgres]:
    """A schema whose tables (created later by ``admin``) a fresh role may only SELECT.

    The role gets USAGE on the schema, SELECT on its tables (present and future) and a
    ``temp_file_limit`` (superuser-only, so set on the role), nothing else.
    """
    import asyncpg

    suffix = secrets.token_hex(5)
    schema, role = f"livebi_ro_{suffix}", f"livebi_reader_{suffix}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(
            f"""
            CREATE SCHEMA {schema};
            CREATE ROLE {role} LOGIN;
            GRANT USAGE ON SCHEMA {schema} TO {role};
            ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role};
            ALTER ROLE {role} SET temp_file_limit = '1GB';
            """
        )
        yield ReadOnlyPostgres(admin, schema, role, role_dsn(pg_dsn, role) + f"?search_path={schema}")
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.execute(
            f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"EXECUTE 'DROP OWNED BY {role}'; END IF; END $$; DROP ROLE IF EXISTS {role}"
        )
        await admin.close()


@pytest.fixture
async def pg_database(pg_dsn: str):
    """The URL of a throwaway PostgreSQL database (for metadata-store tests), dropped afterwards."""
    import uuid

    import asyncpg

    name = f"livebi_store_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield pg_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def northwind_path() -> Path:
    if not NORTHWIND.exists():
        reason = f"*** {NORTHWIND} not found (../shared/data beside the checkout): Northwind test SKIPPED ***"
        if REQUIRE_SERVICES:
            pytest.fail(reason.replace("SKIPPED", "REQUIRED by LIVEBI_REQUIRE_SERVICES=1"))
        pytest.skip(reason)
    return NORTHWIND


@pytest.fixture(scope="session")
def demo_duckdb(tmp_path_factory) -> Path:
    """A small demo warehouse generated once per test session."""
    from livebi.demo.generate import generate_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    generate_demo(path, rows=20_000)
    return path
