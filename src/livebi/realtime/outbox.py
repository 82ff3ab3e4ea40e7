"""A connection's outgoing queue: bounded in bytes, drained in batches.

Pure data structure (no I/O). The connection writer takes whatever is waiting; when more than
one frame waits it sends them as one ``message_batch`` frame, so a burst costs one socket write
instead of many. The queue is bounded in bytes: when a client cannot keep up, ``put`` reports
the overflow and the connection is closed as a slow consumer instead of buffering without end
or slowing anyone else. Frames are already-serialized JSON strings, so a batch is assembled by
joining strings, never by re-encoding.
"""

from __future__ import annotations

import collections
import itertools
import time

_batch_ids = itertools.count(1)


class Outbox:
    # Thousands of these sit idle (issue 11): no instance dict, and the queue itself (a deque
    # allocates a 64-slot block at once, ~760 bytes) only while two or more frames wait. A
    # fan-out queues one frame on each of thousands of idle connections and writes it in the
    # same loop iteration: that single frame waits in ``_one``, so a delivery allocates no deque.
    __slots__ = ("max_bytes", "batching", "batch_max_messages", "batch_max_bytes", "_one", "_frames", "queued_bytes",
                 "overflowed")

    def __init__(
        self,
        *,
        max_bytes: int,
        batching: bool = True,
        batch_max_messages: int = 64,
        batch_max_bytes: int = 256 * 1024,
    ) -> None:
        self.max_bytes = max_bytes
        self.batching = batching
        self.batch_max_messages = max(1, batch_max_messages)
        self.batch_max_bytes = batch_max_bytes
        self._one: tuple[str, str | None] | None = None  # the only frame waiting, if just one
        self._frames: collections.deque[tuple[str, str | None]] | None = None  # two or more, in order
        self.queued_bytes = 0
        self.overflowed = False

    def __len__(self) -> int:
        if self._one is not None:
            return 1
        return len(self._frames) if self._frames else 0

    def put(self, frame: str, event_id: str | None = None) -> bool:
        """Queue one frame; False (and ``overflowed`` set) when the byte bound is exceeded.

        ``event_id`` is the client's position once it has this frame (the SSE transport sends
        it as the event id); a batch carries the id of its last frame.
        """
        if self.overflowed:
            return False
        size = len(frame)
        one = self._one
        if one is None and not self._frames:
            self._one = (frame, event_id)  # always accepted: an empty queue takes one frame
            self.queued_bytes = size
            return True
        if self.queued_bytes + size > self.max_bytes:
            self.overflowed = True
            return False
        if one is not None:
            self._frames = collections.deque((one,))
            self._one = None
        self._frames.append((frame, event_id))
        self.queued_bytes += size
        return True

    def take(self) -> tuple[str, str | None] | None:
        """The next ``(frame, event_id)`` to write: one frame, or a batch of those waiting."""
        one = self._one
        if one is not None:
            self._one = None
            self.queued_bytes = 0
            return one
        if not self._frames:
            return None
        first, event_id = self._frames.popleft()
        self.queued_bytes -= len(first)
        if not self._frames:
            self._frames = None  # an idle connection keeps no deque (issue 11)
            return first, event_id
        if not self.batching:
            return first, event_id
        parts = [first]
        size = len(first)
        while self._frames and len(parts) < self.batch_max_messages:
            nxt, nxt_id = self._frames[0]
            if size + len(nxt) > self.batch_max_bytes:
                break
            self._frames.popleft()
            self.queued_bytes -= len(nxt)
            parts.append(nxt)
            size += len(nxt)
            if nxt_id is not None:
                event_id = nxt_id
        if not self._frames:
            self._frames = None
        if len(parts) == 1:
            return first, event_id
        batch = '{"type":"message_batch","batch_id":"b%d","timestamp":%.3f,"messages":[%s]}' % (
            next(_batch_ids),
            time.time(),
            ",".join(parts),
        )
        return batch, event_id
