"""When each watched widget refreshes next: a pure schedule fed a clock by its caller.

Keys are opaque (the live service uses ``(dashboard_id, widget_id)``). A widget is due
``interval`` seconds after it was last due; a schedule that fell behind (a long query, a busy
loop) does not fire a burst of catch-up refreshes: the next one is an interval from now.
"""

from __future__ import annotations

from typing import Callable, Hashable, Iterable


class Schedule:
    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[float, float]] = {}  # key -> (due, interval)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def set(self, key: Hashable, interval: float | None, now: float) -> None:
        """Refresh ``key`` every ``interval`` seconds (None: never). An unchanged interval keeps
        its due time; a new or changed one is first due an interval from ``now``."""
        if interval is None or interval <= 0:
            self._entries.pop(key, None)
            return
        current = self._entries.get(key)
        if current is not None and current[1] == interval:
            return
        self._entries[key] = (now + interval, interval)

    def remove(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def remove_where(self, predicate: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]

    def keys(self) -> Iterable[Hashable]:
        return list(self._entries)

    def due(self, now: float) -> list[Hashable]:
        """The keys due at ``now``, in due order; each is rescheduled one interval later (or an
        interval from ``now`` when it fell more than an interval behind)."""
        ready = sorted((due, repr(key), key) for key, (due, _) in self._entries.items() if due <= now)
        out = []
        for due, _, key in ready:
            interval = self._entries[key][1]
            following = due + interval
            self._entries[key] = (following if following > now else now + interval, interval)
            out.append(key)
        return out

    def next_due(self) -> float | None:
        """When the earliest key is due (None: nothing scheduled)."""
        return min((due for due, _ in self._entries.values()), default=None)
