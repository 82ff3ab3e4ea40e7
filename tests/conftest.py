"""Shared fixtures.

Tests that need PostgreSQL or Redis skip with a loud reason on a machine without them;
``LIVEBI_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns those skips into failures so CI always
exercises them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

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
