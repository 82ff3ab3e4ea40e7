"""An address-space limit for the server process, so that one query cannot take the machine's memory.

DuckDB runs inside the livebi process. Its ``memory_limit`` bounds sorts, joins and aggregates
but not the values scalar functions build: ``length(repeat('x', 2000000000))`` peaked at 3.9 GB
of RSS and ``len(range(0, 200000000))`` at 13.9 GB under a 256 MB ``memory_limit``, and no
function list can bound value sizes (``replace`` and ``||`` multiply them). Under an
address-space limit (``RLIMIT_AS``) the engine's allocation fails instead: DuckDB raises
``OutOfMemoryException``, SQLite ``MemoryError``, the asker gets ``resources_exceeded`` and the
process goes on serving everyone else.

The limit is the process's size (``VmSize``) once the server has started, plus
``memory_headroom_mb``. Measuring after startup rather than using a fixed total keeps the
headroom meaning the same everywhere: the libraries loaded (DuckDB alone maps ~100 MB), the
store and warehouses opened and the threads started differ between installs and machines, and
all of them are already counted. What the headroom must cover is what starts later: query
results, the engines' working memory (``duckdb_memory_limit`` should stay below it), thread
stacks and allocator arenas of the worker threads, and every connection's buffers.

Only the processes the CLI starts (``livebi serve``, ``livebi demo``) apply it: it is
process-wide and can only be lowered, so a test process hosting the app must not.
The pure parts (:func:`address_space_limit`, :func:`size_mb`) are unit-tested.
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

MB = 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "K": 1024, "M": MB, "G": 1024 * MB, "T": 1024 * 1024 * MB}


def address_space_limit(vm_size: int, headroom_mb: int, current: int | None = None) -> int | None:
    """Bytes to set as the soft ``RLIMIT_AS``, or None to leave it alone.

    Args:
        vm_size: the process's address space now, in bytes.
        headroom_mb: how much more it may grow; 0 (or less): no limit.
        current: the soft limit already in force (None: unlimited). A lower one, set by the
            operator (``ulimit -v``, systemd ``LimitAS=``), is kept.
    """
    if headroom_mb <= 0:
        return None
    wanted = vm_size + headroom_mb * MB
    if current is not None and current <= wanted:
        return None
    return wanted


def size_mb(text: str) -> float | None:
    """Megabytes in a size such as DuckDB's ``memory_limit`` (``'2GB'``, ``'6000MiB'``); None
    when it does not parse. DuckDB reads ``GB`` as 1000^3 and ``GiB`` as 1024^3; the
    difference does not matter for the comparison this serves, so both count as 1024^3."""
    match = _SIZE.match(text or "")
    if match is None:
        return None
    return float(match.group(1)) * _UNIT[match.group(2).upper()] / MB


def vm_size() -> int | None:
    """This process's address space in bytes (Linux ``/proc/self/status``), None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def current_limit() -> int | None:
    """The soft ``RLIMIT_AS`` in bytes, None when unlimited or unsupported (not POSIX)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def memory_status() -> dict[str, int | None]:
    """What /health shows operators: the address-space limit in force and the process's size
    and peak resident memory now, in MB (None: unlimited or unknown)."""
    limit = current_limit()
    size = vm_size()
    return {
        "address_space_limit_mb": None if limit is None else limit // MB,
        "address_space_mb": None if size is None else size // MB,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # kB on Linux


def limit_address_space(
    headroom_mb: int, *, engine_limits_mb: dict[str, float] | None = None, log: logging.Logger = logger
) -> int | None:
    """Set the soft ``RLIMIT_AS`` to this process's size plus ``headroom_mb`` (logged); the
    limit now in force, in bytes (None: none).

    ``engine_limits_mb`` (warehouse name: DuckDB ``memory_limit``) only serves a warning: an
    engine allowed more than the headroom fails its large sorts and joins at the
    address-space limit, before it would spill. ``log``: where to say what was done (the
    server passes uvicorn's, which operators see at startup).
    """
    if headroom_mb <= 0:
        log.warning("memory_headroom_mb is 0: the process's address space is not limited, so one query "
                    "building a huge value can take the machine's memory (SECURITY.md)")
        return current_limit()
    size = vm_size()
    if size is None:
        log.warning("cannot read this process's size (no /proc): memory_headroom_mb is not applied")
        return current_limit()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = address_space_limit(size, headroom_mb, None if soft == resource.RLIM_INFINITY else soft)
    if wanted is None:
        log.info("address space already limited to %d MB (lower than %d MB of size + memory_headroom_mb)",
                 soft // MB, size // MB + headroom_mb)
        return soft
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    log.info("address space limited to %d MB (%d MB after startup + memory_headroom_mb %d): a query that "
             "needs more fails with resources_exceeded", wanted // MB, size // MB, headroom_mb)
    for name, engine_mb in (engine_limits_mb or {}).items():
        if engine_mb >= headroom_mb:
            log.warning("warehouse %s: DuckDB may use %d MB (duckdb_memory_limit), not less than "
                        "memory_headroom_mb (%d MB): large sorts and joins fail before they spill; "
                        "lower duckdb_memory_limit or raise memory_headroom_mb", name, engine_mb, headroom_mb)
    return wanted
