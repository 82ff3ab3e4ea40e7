"""The Redis broker: several livebi processes (nodes) share channels through one Redis.

Redis holds what must be shared: each channel's ``epoch`` and ``seq`` (a hash) and its history
(a list trimmed to ``history_size`` that expires ``history_ttl_s`` after the last publication).
A publication is one round trip: a Lua script (EVALSHA) increments ``seq``, appends the
frame to the history and PUBLISHes it on the channel's Redis pub/sub channel. Every node
subscribes to that pub/sub channel once while it has local subscribers, so a publication costs
Redis O(1) work however many nodes and subscribers there are; the node's :class:`Hub` mirrors
the shared position and fans the frame out to its own connections.

Recovery (subscribe with ``since``) reads the shared history, so a client moving to another
node, or coming back after a node restart, gets ``recovered: true``. A channel's ``epoch`` is
created once (``HSETNX``) and changes only when Redis lost the channel's state.

Ordering: pub/sub delivers one node's messages in publication order; a history read that races
live publications is merged by ``seq`` in :meth:`Hub.subscribe`, so nothing is lost or doubled.

Outage: when Redis cannot be reached the node keeps serving its own clients alone ("single-node
mode": channels published here get a new local epoch, local history), says so (``status()``,
the ``on_degraded`` callback feeding a metric), retries every ``retry_s`` and, once Redis is
back, follows the shared positions again, catching up from the shared history where it can. A
client is told ``recovered: false`` only for channels whose history really diverged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import socket
import time
from typing import Any, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..protocol import dumps
from .hub import Delivery, Hub
from .redis_presence import PresenceRegistry

log = logging.getLogger(__name__)

#: What an unreachable or vanished Redis raises (OSError: refused before redis-py wraps it).
OUTAGE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, asyncio.TimeoutError)

# KEYS: meta hash, history list. ARGV: new epoch, frame head, frame tail, ts, history size,
# history ttl, meta ttl, pub/sub channel, final flag. Returns {epoch, seq}.
_PUBLISH = """
local e = redis.call('HGET', KEYS[1], 'e')
if not e then e = ARGV[1]; redis.call('HSET', KEYS[1], 'e', e) end
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
local frame = ARGV[2] .. e .. '","seq":' .. s .. ARGV[3]
redis.call('RPUSH', KEYS[2], s .. ' ' .. ARGV[4] .. ' ' .. frame)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('PUBLISH', ARGV[8], s .. ' ' .. e .. ' ' .. ARGV[9] .. ' ' .. frame)
return {e, s}
"""

# KEYS: meta hash, history list. ARGV: new epoch, meta ttl, since seq (-1: position only).
# Returns {epoch, seq, entries after since}; creates the epoch when the channel has none.
_POSITION = """
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]; redis.call('HSET', KEYS[1], 'e', e); redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local s = tonumber(redis.call('HGET', KEYS[1], 's') or 0)
local since = tonumber(ARGV[3])
local h = {}
if since >= 0 and s > since then h = redis.call('LRANGE', KEYS[2], since - s, -1) end
return {e, s, h}
"""


class _Listen:
    """This node's pub/sub subscription to one channel: ``ready`` once subscribed and the hub
    follows the shared position; messages that arrive before then wait in ``buffer``."""

    __slots__ = ("ready", "buffer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ready: asyncio.Future[None] = loop.create_future()
        self.buffer: list[tuple[str, int, str, bool]] | None = []


class RedisBroker:
    """Channels shared by every node on one Redis (see the module doc for the guarantees).

    Args:
        url: ``redis://host:port/db``.
        hub: this node's hub (local subscribers and a mirror of the shared positions).
        deliver: sends a :class:`Delivery` to this node's connections.
        prefix: put before every key and pub/sub channel (several deployments or tests share
            one Redis).
        history_size, history_ttl_s: the shared history's bounds (as the hub's).
        meta_ttl_s: seconds a channel's epoch and seq outlive its last publication.
        retry_s: seconds between attempts to reach Redis again during an outage.
        on_degraded: told True when the node falls back to single-node mode, False on resume.
        on_error: told the component name of a bug caught (logged with its traceback).
        name: the Redis client name of this node's connections (``CLIENT LIST`` shows it).
    """

    shared = True  # subscribe must call prepare() first (services.Services.subscribe)

    def __init__(
        self,
        url: str,
        hub: Hub,
        deliver: Callable[[Delivery], None],
        *,
        prefix: str = "livebi:",
        history_size: int = 1000,
        history_ttl_s: float = 300.0,
        meta_ttl_s: float = 7 * 86400.0,
        retry_s: float = 1.0,
        on_degraded: Callable[[bool], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.name = name or f"livebi-{socket.gethostname()}-{os.getpid()}"
        self._hub = hub
        self._deliver = deliver
        self.prefix = prefix
        self.history_size = history_size
        self.history_ttl_s = history_ttl_s
        self._hist_ttl = str(max(1, int(history_ttl_s + 0.999)))
        self._meta_ttl = str(max(int(meta_ttl_s), int(history_ttl_s) + 1))
        self.retry_s = retry_s
        self.watch_s = 5 * retry_s  # how often the pub/sub connection is checked end to end
        self._ping_channel = f"{prefix}_node:{self.name}"
        self._pong = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._on_degraded = on_degraded
        self._on_error = on_error
        # No retries inside redis-py: a publish retried after its reply was lost would publish
        # twice; a failure switches to single-node mode instead, and recovery retries.
        self._redis = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0,
                                              client_name=self.name, retry=Retry(NoBackoff(), 0))
        self.presence = PresenceRegistry(self._redis, prefix=prefix, node=self.name, heartbeat_ttl_s=3 * self.watch_s)
        self._publish_script = self._redis.register_script(_PUBLISH)
        self._position_script = self._redis.register_script(_POSITION)
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listens: dict[str, _Listen] = {}  # channels this node wants from pub/sub
        self._confirms: dict[str, collections.deque[asyncio.Future[None]]] = {}
        self._preparing: collections.Counter[str] = collections.Counter()
        self._local: set[str] = set()  # channels sequenced here during an outage
        self.degraded = False
        self.outages = 0
        self.gaps = 0  # publications that arrived past the next seq (lost on the way)
        self._stopping = False

    @property
    def redis(self) -> Any:
        """The node's ``redis.asyncio.Redis`` client (``decode_responses=True``, no retries), for
        other cluster parts on the same Redis (leases, tickets) to share with the broker."""
        return self._redis

    # Names ------------------------------------------------------------------------------------

    def _keys(self, channel: str) -> list[str]:
        return [f"{self.prefix}m:{channel}", f"{self.prefix}h:{channel}"]

    def _pubname(self, channel: str) -> str:
        return f"{self.prefix}p:{channel}"

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; an unreachable Redis starts the node in single-node mode (it retries)."""
        try:
            await self._connect()
        except OUTAGE as exc:
            self._lost(exc)
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="redis-broker-watchdog")

    async def _watch(self) -> None:
        """Every ``watch_s``, publish a ping to this node's own pub/sub channel and expect it
        back: a Redis that hangs, or a network cut that resets nothing, otherwise goes
        unnoticed by a node that only listens."""
        while True:
            await asyncio.sleep(self.watch_s)
            if self.degraded or self._pubsub is None:
                continue
            self._pong.clear()
            try:
                await asyncio.wait_for(self._redis.publish(self._ping_channel, "ping"), self.watch_s)
                await asyncio.wait_for(self._pong.wait(), self.watch_s)
                await self._beat()
            except OUTAGE as exc:
                self._lost(exc)

    async def _beat(self) -> None:
        """Refresh this node's presence heartbeat; announce the members of dead nodes as left
        (only the node whose sweep removed them does)."""
        departed = await self.presence.heartbeat()
        for channel, conn_ids in departed.items():
            count = await self.presence.count(channel)
            log.warning("channel %s: %d members of a node that stopped answering left", channel, len(conn_ids))
            await self.publish(channel, "presence", {"event": "changes", "count": count, "joined": [], "updated": [],
                                                     "left": sorted(conn_ids)})

    async def presence_publication(self, channel: str, data: dict[str, Any]) -> dict[str, Any]:
        """A ``presence`` publication of this node's members, mirrored into the cluster's
        (its count, and a snapshot's members, become the cluster's); unchanged while Redis is away."""
        if self.degraded:
            return data
        try:
            return await self.presence.mirror(channel, data)
        except OUTAGE as exc:
            self._lost(exc)
            return data

    async def presence_others(self, channel: str) -> list[dict[str, Any]]:
        """Members of ``channel`` on other live nodes (none known while Redis is away)."""
        if self.degraded:
            return []
        try:
            return await self.presence.others(channel)
        except OUTAGE as exc:
            self._lost(exc)
            return []

    async def stop(self) -> None:
        if not self.degraded:
            try:  # the other nodes announce this node's members as left at their next beat
                await asyncio.wait_for(self.presence.heartbeat(alive=False), 2.0)
            except OUTAGE:
                pass
        self._stopping = True
        for task in [self._reader, self._recovery, self._watchdog, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._reader, self._recovery, self._watchdog, *self._tasks]:
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, *OUTAGE):
                    pass
        await self._close_pubsub()
        await self._redis.aclose()

    async def _connect(self) -> None:
        """A fresh pub/sub connection (its reader running) and every wanted channel followed."""
        await self._close_pubsub()
        self._confirms.clear()
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._ping_channel)  # opens the connection (the reader needs one)
        self._pubsub = pubsub
        self._reader = asyncio.get_running_loop().create_task(self._read_pubsub(pubsub), name="redis-broker-reader")
        wanted = set(self._listens)
        loop = asyncio.get_running_loop()
        for channel in wanted:
            self._listens[channel] = _Listen(loop)
        results = await asyncio.gather(*(self._listen(ch, self._listens[ch], catch_up=True) for ch in wanted),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for channel, listen in list(self._listens.items()):  # subscribed to while this ran
            if channel not in wanted and not listen.ready.done():
                self._spawn(self._listen(channel, listen))
        if self.degraded:
            self.degraded = False
            self._local.clear()
            log.warning("Redis broker %s reachable again: cluster mode resumed (%d channels followed)", self.url, len(wanted))
            if self._on_degraded:
                self._on_degraded(False)
        try:
            await self._beat()
        except OUTAGE as exc:
            self._lost(exc)

    async def _close_pubsub(self) -> None:
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, *OUTAGE):
                pass
        self._reader = None
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            try:
                await asyncio.wait_for(pubsub.aclose(), 2.0)  # a hung server must not hang recovery
            except OUTAGE:
                pass

    def _lost(self, exc: BaseException) -> None:
        """Redis is out of reach: single-node mode until it answers again."""
        if self._stopping:
            return
        for listen in self._listens.values():  # none is in sync with the shared position now
            if not listen.ready.done():
                listen.ready.set_exception(ConnectionError("Redis unreachable"))
                listen.ready.exception()  # retrieved: nobody may be waiting
        if not self.degraded:
            self.degraded = True
            self.outages += 1
            log.error("Redis broker %s unreachable (%s): serving this node's clients alone until it returns",
                      self.url, exc or type(exc).__name__)
            if self._on_degraded:
                self._on_degraded(True)
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._recover(), name="redis-broker-recovery")

    async def _recover(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.retry_s)
            try:
                await self._redis.ping()
                await self._connect()
                return
            except OUTAGE as exc:
                log.debug("Redis broker %s still unreachable: %s", self.url, exc)

    def status(self) -> dict[str, Any]:
        """For /health: the mode this node runs in."""
        return {"kind": "redis", "mode": "single-node" if self.degraded else "cluster",
                "channels_followed": len(self._listens), "outages": self.outages, "gaps": self.gaps}

    # Publishing -----------------------------------------------------------------------------

    async def publish(self, channel: str, type: str, data: dict[str, Any], *, final: bool = False) -> None:
        """Sequence and store the publication in Redis and send it to every node (one round
        trip); it reaches this node's subscribers through pub/sub like everyone else's."""
        ts = round(time.time(), 3)
        if not self.degraded:
            head = '{"channel":' + dumps(channel) + ',"epoch":"'
            tail = ',"type":' + dumps(type) + ',"ts":' + dumps(ts) + ',"data":' + dumps(data) + "}"
            try:
                await self._publish_script(
                    keys=self._keys(channel),
                    args=[secrets.token_hex(4), head, tail, dumps(ts), self.history_size, self._hist_ttl,
                          self._meta_ttl, self._pubname(channel), "1" if final else "0"],
                )
                return
            except OUTAGE as exc:
                self._lost(exc)
        if channel not in self._local:  # from here on sequenced apart from the shared history
            self._local.add(channel)
            self._hub.diverge(channel)
        self._deliver(self._hub.publish(channel, type, data, final=final))

    # Subscribing ----------------------------------------------------------------------------

    async def prepare(
        self, channel: str, since: tuple[str, int] | None, *, from_start: bool = False
    ) -> tuple[tuple[str, int] | None, tuple[tuple[int, str], ...]]:
        """Make sure this node follows ``channel``, then fetch what local history cannot
        replay for ``since``; returns the ``(since, older)`` to give :meth:`Hub.subscribe`.

        Call :meth:`Hub.subscribe` right after, without awaiting in between: publications that
        arrive while the shared history is read are then merged, not lost.
        ``from_start``: replay the channel from its first publication (a question's channel,
        subscribed just after its pipeline started).
        """
        self._preparing[channel] += 1
        try:
            if self.degraded:
                self._listens.setdefault(channel, _Listen(asyncio.get_running_loop()))  # followed on resume
                return since, ()
            try:
                await self._follow(channel)
                if from_start:
                    since = (self._hub.position(channel)[0], 0)
                if since is None or self._hub.covers(channel, since[1]) or since[0] != self._hub.position(channel)[0]:
                    return since, ()
                epoch, seq, entries = await self._fetch(channel, since[1])
            except OUTAGE as exc:
                self._lost(exc)
                return since, ()
            if not self._hub.knows(channel):  # forgotten (pruned) while reading: follow again
                self._hub.follow(channel, epoch, seq)
            if epoch != self._hub.position(channel)[0]:
                return since, ()
            return since, entries
        finally:
            self._preparing[channel] -= 1
            if not self._preparing[channel]:
                del self._preparing[channel]

    def released(self, channel: str) -> None:
        """A connection left ``channel``: stop listening once no local subscriber remains."""
        if self._hub.subscriber_count(channel) or self._preparing.get(channel):
            return
        if self._listens.pop(channel, None) is not None and self._pubsub is not None and not self.degraded:
            self._spawn(self._unsubscribe(self._pubsub, self._pubname(channel)))

    def listening(self) -> frozenset[str]:
        """Channels this node follows through Redis pub/sub (tests check the refcounting)."""
        return frozenset(self._listens)

    async def _unsubscribe(self, pubsub: Any, name: str) -> None:
        try:
            await pubsub.unsubscribe(name)
        except OUTAGE as exc:
            self._lost(exc)

    async def _follow(self, channel: str) -> None:
        listen = self._listens.get(channel)
        if listen is None or (listen.ready.done() and listen.ready.exception() is not None):
            listen = self._listens[channel] = _Listen(asyncio.get_running_loop())
            self._spawn(self._listen(channel, listen))
        await asyncio.shield(listen.ready)

    async def _listen(self, channel: str, listen: _Listen, *, catch_up: bool = False) -> None:
        """Subscribe to ``channel``'s pub/sub, then adopt its shared position.

        ``catch_up`` (after an outage): publications made while this node was cut off are
        replayed to its subscribers from the shared history when it still holds them.
        """
        try:
            confirmed = asyncio.get_running_loop().create_future()
            self._confirms.setdefault(self._pubname(channel), collections.deque()).append(confirmed)
            await self._pubsub.subscribe(self._pubname(channel))
            await asyncio.wait_for(confirmed, 10.0)
            local_epoch, local_seq = self._hub.position(channel)
            diverged = channel in self._local
            if catch_up and not diverged:
                epoch, seq, entries = await self._fetch(channel, local_seq)
            else:
                epoch, seq, entries = await self._fetch(channel, -1)
            if self._listens.get(channel) is not listen:  # released or replaced meanwhile
                if not listen.ready.done():
                    listen.ready.set_exception(ConnectionError("channel released while subscribing"))
                    listen.ready.exception()
                return
            if epoch == local_epoch and not diverged:
                for entry_seq, frame in entries:
                    self._accept(channel, epoch, entry_seq, frame, False)
            self._hub.follow(channel, epoch, seq)
            self._local.discard(channel)  # shared again: a later outage starts another local epoch
            buffered, listen.buffer = listen.buffer or [], None
            for epoch, seq, frame, final in buffered:
                self._accept(channel, epoch, seq, frame, final)
            if not listen.ready.done():
                listen.ready.set_result(None)
        except OUTAGE as exc:
            if not listen.ready.done():
                listen.ready.set_exception(ConnectionError(f"Redis unreachable: {exc}"))
                listen.ready.exception()
            self._lost(exc)
            if catch_up:
                raise

    async def _fetch(self, channel: str, since: int) -> tuple[str, int, tuple[tuple[int, str], ...]]:
        """The shared ``(epoch, seq)`` of ``channel`` and, for ``since >= 0``, the history
        after it that is younger than ``history_ttl_s``."""
        epoch, seq, raw = await self._position_script(
            keys=self._keys(channel), args=[secrets.token_hex(4), self._meta_ttl, since]
        )
        cutoff = time.time() - self.history_ttl_s
        entries = []
        for item in raw:
            entry_seq, ts, frame = item.split(" ", 2)
            if float(ts) >= cutoff:
                entries.append((int(entry_seq), frame))
        return epoch, int(seq), tuple(entries)

    # Pub/sub --------------------------------------------------------------------------------

    async def _read_pubsub(self, pubsub: Any) -> None:
        """Hand each pub/sub message to the hub, in arrival order (which is seq order)."""
        plen = len(self.prefix) + 2
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "message":
                    if message["channel"] == self._ping_channel:
                        self._pong.set()
                        continue
                    channel = message["channel"][plen:]
                    listen = self._listens.get(channel)
                    if listen is None:
                        continue  # unsubscribing: nobody here wants it any more
                    seq_s, epoch, final, frame = message["data"].split(" ", 3)
                    seq = int(seq_s)
                    if listen.buffer is not None:
                        listen.buffer.append((epoch, seq, frame, final == "1"))
                        continue
                    position = self._hub.position(channel)
                    if epoch == position[0] and seq > position[1] + 1:
                        # publications went missing on the way (a pub/sub reconnect): hold
                        # this one until the shared history filled the gap
                        listen.buffer = [(epoch, seq, frame, final == "1")]
                        self._spawn(self._repair(channel, listen))
                    else:
                        self._accept(channel, epoch, seq, frame, final == "1")
                elif kind == "subscribe":
                    waiting = self._confirms.get(message["channel"])
                    if waiting:
                        confirmed = waiting.popleft()
                        if not waiting:
                            del self._confirms[message["channel"]]
                        if not confirmed.done():
                            confirmed.set_result(None)
        except asyncio.CancelledError:
            raise
        except OUTAGE as exc:
            if self._pubsub is pubsub:
                self._lost(exc)
        except Exception:
            log.exception("Redis broker reader failed; reconnecting")
            if self._on_error:
                self._on_error("broker")
            if self._pubsub is pubsub:
                self._lost(RuntimeError("reader failed"))

    async def _repair(self, channel: str, listen: _Listen) -> None:
        """Deliver the publications between this node's position and the first one held in
        ``listen.buffer`` from the shared history, then what the buffer holds, in order."""
        try:
            epoch, seq = self._hub.position(channel)
            shared_epoch, _, entries = await self._fetch(channel, seq)
            if shared_epoch == epoch:
                for entry_seq, frame in entries:
                    if entry_seq < listen.buffer[0][1]:
                        self._accept(channel, epoch, entry_seq, frame, False)
        except OUTAGE as exc:
            self._lost(exc)
        finally:
            buffered, listen.buffer = listen.buffer or [], None
            for epoch, seq, frame, final in buffered:
                self._accept(channel, epoch, seq, frame, final)

    def _accept(self, channel: str, epoch: str, seq: int, frame: str, final: bool) -> None:
        position = self._hub.position(channel)
        if position[0] == epoch and seq > position[1] + 1:
            self.gaps += 1
            log.warning("channel %s: publications %d..%d never arrived from Redis", channel, position[1] + 1, seq - 1)
        delivery = self._hub.accept(channel, epoch, seq, frame, final=final)
        if delivery is not None and delivery.targets:
            self._deliver(delivery)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
