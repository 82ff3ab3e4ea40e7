"""The address-space limit's arithmetic and who applies it (livebi.memory_limit, livebi.server).

Nothing here lowers this process's limit: it is process-wide and can only be lowered, so the
limit itself is exercised in subprocesses (tests/integration/test_memory_limit.py).
"""

from __future__ import annotations

import pydantic
import pytest

from livebi.config import Settings
from livebi.memory_limit import MB, address_space_limit, current_limit, limit_address_space, memory_status, size_mb
from livebi.server import build_server
from livebi.warehouse.duckdb import default_memory_limit


def test_headroom_is_added_to_the_size_after_startup() -> None:
    assert address_space_limit(400 * MB, 4096) == (400 + 4096) * MB
    assert address_space_limit(400 * MB, 1, current=None) == 401 * MB


@pytest.mark.parametrize("headroom", [0, -1])
def test_no_headroom_means_no_limit(headroom: int) -> None:
    assert address_space_limit(400 * MB, headroom) is None


def test_a_lower_operator_limit_is_kept_and_a_higher_one_lowered() -> None:
    assert address_space_limit(400 * MB, 4096, current=2048 * MB) is None
    assert address_space_limit(400 * MB, 4096, current=(400 + 4096) * MB) is None
    assert address_space_limit(400 * MB, 4096, current=64 * 1024 * MB) == (400 + 4096) * MB


@pytest.mark.parametrize(
    "text, mb",
    [("2GB", 2048), ("2GiB", 2048), ("6026MiB", 6026), ("512 MB", 512), ("1.5GB", 1536), ("1048576KB", 1024),
     ("", None), ("lots", None), ("2 parsecs", None)],
)
def test_engine_sizes_parse(text: str, mb: float | None) -> None:
    assert size_mb(text) == mb


def test_zero_headroom_leaves_the_limit_alone() -> None:
    before = current_limit()
    assert limit_address_space(0) == before
    assert current_limit() == before


def test_the_setting_is_on_by_default_and_cannot_be_negative() -> None:
    assert Settings().memory_headroom_mb == 4096
    assert Settings(memory_headroom_mb=0).memory_headroom_mb == 0
    with pytest.raises(pydantic.ValidationError):
        Settings(memory_headroom_mb=-1)


def test_only_the_cli_server_limits_its_process(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, memory_headroom_mb=1234)
    assert build_server(settings).memory_headroom_mb is None  # in-process hosts (tests) never
    assert build_server(settings, limit_memory=True).memory_headroom_mb == 1234
    off = Settings(data_dir=tmp_path, memory_headroom_mb=0)
    assert build_server(off, limit_memory=True).memory_headroom_mb == 0  # off, said at startup


def test_duckdb_default_memory_limit_fits_in_the_headroom() -> None:
    assert size_mb(default_memory_limit(at_most_mb=300)) <= 300
    assert size_mb(default_memory_limit(at_most_mb=10)) == 256  # the floor
    assert size_mb(default_memory_limit()) >= size_mb(default_memory_limit(at_most_mb=300))


def test_memory_status_reports_the_limit_in_force() -> None:
    status = memory_status()
    limit = current_limit()
    assert status["address_space_limit_mb"] == (None if limit is None else limit // MB)
    assert status["address_space_mb"] is None or status["address_space_mb"] > 0
