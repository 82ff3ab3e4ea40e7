"""The cyclic garbage collector, tuned for a server that holds many long-lived connections.

CPython's cyclic GC walks every tracked object of a generation when it collects it. A server
holding thousands of connections has hundreds of thousands of long-lived objects (its modules,
app, pydantic models, and a few dozen objects per connection), and every full (generation 2)
collection walks all of them: at 20 publications/s to a few thousand subscribers that showed as
p99 latency jumping in bursts (issue 11). Almost none of those objects will ever be garbage
while the server runs, so walking them finds nothing.

What this module does, once the server has started (:meth:`GcTuning.start`):

1. **Freeze what start-up built** (``gc.collect()`` then ``gc.freeze()``): imports, settings,
   the app, the warehouses' semantic models move to the permanent generation and are never
   walked again. Objects there are still freed by reference counting when they die.
2. **Freeze again every** ``freeze_interval_s``: connections that have lived that long (and the
   channels, history and caches that grew meanwhile) join the permanent generation, so full
   collections walk only what is young. ``gc.freeze()`` splices lists: it costs microseconds.
3. **A larger generation-0 threshold** (``threshold0``): per-message objects (frames, ASGI
   message dicts, futures) mostly die before a collection sees them, so fewer survive into the
   older generations whose collections are the long pauses.

The cost, and its bound: garbage *cycles* among frozen objects are not collected while they
are frozen. The per-connection objects are built so that a closed connection is freed by
reference counting alone (no cycles: tests/integration/test_gc_tuning.py checks that the
permanent generation shrinks back after connections close), and every ``unfreeze_interval_s``
the permanent generation is released and collected once (``gc.unfreeze()``, ``gc.collect()``:
one ordinary full pause at a known rate, which reclaims any cycle that did form) before being
frozen again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time

log = logging.getLogger(__name__)


class GcTuning:
    """Args:
    threshold0: allocations (net) between generation-0 collections (CPython's default: 700).
    freeze_interval_s: seconds between freezes after the first one; 0: freeze at start only.
    unfreeze_interval_s: seconds between releases of the permanent generation to the
        collector (bounds what a garbage cycle among frozen objects can hold); 0: never.
    """

    def __init__(self, *, threshold0: int = 50_000, freeze_interval_s: float = 60.0, unfreeze_interval_s: float = 3600.0) -> None:
        self.threshold0 = threshold0
        self.freeze_interval_s = freeze_interval_s
        self.unfreeze_interval_s = unfreeze_interval_s
        self.freezes = 0
        self._saved: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Freeze what start-up built, set the threshold and start the periodic freezes."""
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        gc.collect()
        gc.freeze()
        self.freezes += 1
        _, threshold1, threshold2 = self._saved
        gc.set_threshold(max(self._saved[0], self.threshold0), threshold1, threshold2)
        log.debug("gc: froze %d objects after start-up; thresholds %s", gc.get_freeze_count(), gc.get_threshold())
        if self.freeze_interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="gc-freeze")

    async def stop(self) -> None:
        """Give everything back to the collector and restore the thresholds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._saved is not None:
            gc.unfreeze()
            gc.set_threshold(*self._saved)
            self._saved = None

    async def _loop(self) -> None:
        released_at = time.monotonic()
        while True:
            await asyncio.sleep(self.freeze_interval_s)
            if self.unfreeze_interval_s > 0 and time.monotonic() - released_at >= self.unfreeze_interval_s:
                # One full collection over everything (one ordinary pause, at a known rate)
                # reclaims any cycle that formed among frozen objects.
                gc.unfreeze()
                gc.collect()
                released_at = time.monotonic()
            gc.freeze()
            self.freezes += 1
