"""One user's SQL cannot make a real ``livebi serve`` process allocate gigabytes.

DuckDB's ``memory_limit`` bounds sorts, joins and aggregates but not the values scalar
functions build: ``length(repeat('x', 2000000000))`` once peaked at 3.9 GB of server RSS with a
256 MB limit. The server process started by the CLI limits its own address space
(``memory_headroom_mb`` above its size after startup), so DuckDB fails such a query with an
out-of-memory error, the asker gets ``resources_exceeded``, and everyone else carries on.

The limit is applied only by the CLI (never in test processes hosting the app), so this test
runs the real command in a subprocess and reads its peak RSS from /proc.
"""

from __future__ import annotations

import httpx
import pytest

from .test_dashboard_durability import Process

# ~4 GB without a limit: enough to show the hole, small enough not to endanger a test machine.
HUGE_VALUE_SQL = "SELECT length(repeat('x', 2000000000)) AS n"
PEAK_RSS_BOUND_KB = 1536 * 1024


def peak_rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
async def test_a_huge_scalar_value_fails_that_query_only(tmp_path, demo_duckdb) -> None:
    process = Process(tmp_path, demo_duckdb, f"sqlite:///{tmp_path / 'meta.db'}")
    process.env.update({"LIVEBI_MEMORY_HEADROOM_MB": "1024", "LIVEBI_DUCKDB_MEMORY_LIMIT": "256MB"})
    process.add_users()
    server = await process.start()
    try:
        alice = await server.connect("alice")
        reply = await alice.op("ask", sql=HUGE_VALUE_SQL)
        assert reply["ok"], reply
        final = await alice.until_final(reply["data"]["channel"], timeout=60)
        peak = peak_rss_kb(process.proc.pid)
        assert peak < PEAK_RSS_BOUND_KB, f"the server peaked at {peak // 1024} MB of RSS"
        assert final["type"] == "error", final
        assert final["data"]["code"] == "resources_exceeded" and final["data"]["stage"] == "data_processing"

        bob = await server.connect("bob")
        again = await bob.op("ask", sql="SELECT 1 AS one")
        answer = await bob.until_final(again["data"]["channel"], timeout=30)
        assert answer["type"] == "result" and answer["data"]["rows"] == [[1]], answer

        async with httpx.AsyncClient(base_url=server.base_url) as http:
            health = (await http.get("/health")).json()
            metrics = (await http.get("/metrics")).text
        assert health["memory"]["address_space_limit_mb"] > 1024
        assert 'livebi_query_errors_total{code="resources_exceeded"} 1.0' in metrics
        await alice.close()
        await bob.close()
    finally:
        process.kill()


def run_python(code: str, *, address_space: int | None = None, timeout: float = 60) -> str:
    """Run ``code`` in a fresh interpreter (process-wide limits must not touch this one)."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, resource.RLIM_INFINITY))

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, preexec_fn=limit)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_limit_turns_a_huge_allocation_into_memory_error() -> None:
    out = run_python(
        "from livebi.memory_limit import limit_address_space, vm_size, MB\n"
        "size = vm_size()\n"
        "limit = limit_address_space(256)\n"
        "assert size + 256 * MB <= limit < size + 300 * MB, (size, limit)\n"
        "try:\n"
        "    bytearray(1024 * MB)\n"
        "    print('allocated')\n"
        "except MemoryError:\n"
        "    print('refused')\n"
        "print(len(bytearray(16 * MB)))\n"
    )
    assert out.split() == ["refused", str(16 * 1024 * 1024)]


def test_a_lower_operator_limit_is_kept() -> None:
    operator = 8 * 1024 * 1024 * 1024  # above this interpreter's size, below size + 64 GB
    out = run_python(
        "from livebi.memory_limit import limit_address_space, current_limit\n"
        "print(limit_address_space(64 * 1024), current_limit())\n",
        address_space=operator,
    )
    assert out.split() == [str(operator), str(operator)]


def test_sqlite_out_of_memory_fails_the_query_with_resources_exceeded(tmp_path) -> None:
    # SQLite's heap limit is process-wide (and its out-of-memory is a MemoryError in Python).
    out = run_python(
        "import asyncio, sqlite3\n"
        "from livebi.warehouse.sqlite import SQLiteWarehouse\n"
        "from livebi.warehouse.base import WarehouseError\n"
        f"path = {str(tmp_path / 's.db')!r}\n"
        "sqlite3.connect(path).executescript('CREATE TABLE t(x)')\n"
        "async def main():\n"
        "    wh = SQLiteWarehouse('s', 'sqlite:///' + path, hard_heap_limit=8 * 1024 * 1024)\n"
        "    try:\n"
        "        await wh.execute('SELECT length(zeroblob(30000000) || zeroblob(30000000))', timeout=30, row_cap=5)\n"
        "    except WarehouseError as exc:\n"
        "        print(exc.code)\n"
        "    print((await wh.execute('SELECT 1', timeout=30, row_cap=5)).rows)\n"
        "    await wh.close()\n"
        "asyncio.run(main())\n"
    )
    assert out.split() == ["resources_exceeded", "[[1]]"]
