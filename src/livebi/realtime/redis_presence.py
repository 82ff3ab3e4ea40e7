"""Presence across nodes: each node's members of a channel, kept in Redis, and expiry of the
members of a node that died.

Each node still folds its own joins, updates and leaves (:mod:`.presence`); on the way to the
broker its ``presence`` publications are mirrored here (:meth:`PresenceRegistry.mirror`), so
that:

- the ``presence`` op answers with every node's members (:meth:`others`), and the ``count`` a
  publication carries is the cluster's;
- a node that stops without saying goodbye (SIGKILL, a lost host) stops refreshing its
  heartbeat (a sorted set scored by expiry time); the first node to notice removes its members
  atomically (one Lua script, so exactly one node does) and announces them as ``left``.

Keys: ``<prefix>pm:<channel>`` (hash ``<node>|<conn_id>`` -> member JSON), ``<prefix>nc:<node>``
(the channels a node has members on), ``<prefix>nodes`` (node -> heartbeat expiry, ms).
What stays per node: the switch to counts only (``presence_max_members`` is a node's own
crowd) and the counts it then publishes.
"""

from __future__ import annotations

import json
from typing import Any

# KEYS: members hash, node's channel set. ARGV: node, channel, n (members to set), then
# n x (conn_id, json), then conn_ids to remove; "replace" as ARGV[4] first removes every
# member of this node. Returns the channel's member count.
_MIRROR = """
local node, channel, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local i = 5
if ARGV[4] == 'replace' then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, #node + 1) == node .. '|' then redis.call('HDEL', KEYS[1], f) end
  end
end
for _ = 1, n do
  redis.call('HSET', KEYS[1], node .. '|' .. ARGV[i], ARGV[i + 1]); i = i + 2
end
while i <= #ARGV do redis.call('HDEL', KEYS[1], node .. '|' .. ARGV[i]); i = i + 1 end
redis.call('SADD', KEYS[2], channel)
return redis.call('HLEN', KEYS[1])
"""

# KEYS: members hash, nodes zset. ARGV: this node. Returns the JSON of live members of
# other nodes.
_OTHERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local node = string.match(flat[i], '^(.*)|[^|]*$')
  if node ~= ARGV[1] then
    local expiry = redis.call('ZSCORE', KEYS[2], node)
    if expiry and tonumber(expiry) >= now then table.insert(out, flat[i + 1]) end
  end
end
return out
"""

# KEYS: nodes zset. ARGV: this node, heartbeat ttl ms, key prefix. Refreshes this node's
# heartbeat, removes every member of nodes whose heartbeat ran out; returns them flattened
# as channel, conn_id, channel, conn_id, ...
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local set = ARGV[3] .. 'nc:' .. node
  for _, channel in ipairs(redis.call('SMEMBERS', set)) do
    local hash = ARGV[3] .. 'pm:' .. channel
    for _, f in ipairs(redis.call('HKEYS', hash)) do
      if string.sub(f, 1, #node + 1) == node .. '|' then
        redis.call('HDEL', hash, f)
        table.insert(out, channel); table.insert(out, string.sub(f, #node + 2))
      end
    end
  end
  redis.call('DEL', set)
  redis.call('ZREM', KEYS[1], node)
end
return out
"""


class PresenceRegistry:
    """This node's view of presence in Redis (see the module doc).

    Args:
        redis: the broker's ``redis.asyncio.Redis`` (``decode_responses=True``).
        prefix: the broker's key prefix.
        node: this node's name (unique per process).
        heartbeat_ttl_s: a node whose heartbeat is older than this is dead.
    """

    def __init__(self, redis: Any, *, prefix: str, node: str, heartbeat_ttl_s: float) -> None:
        self.prefix = prefix
        self.node = node
        self.heartbeat_ttl_ms = int(heartbeat_ttl_s * 1000)
        self._nodes = f"{prefix}nodes"
        self._mirror = redis.register_script(_MIRROR)
        self._others = redis.register_script(_OTHERS)
        self._heartbeat = redis.register_script(_HEARTBEAT)

    def _keys(self, channel: str) -> list[str]:
        return [f"{self.prefix}pm:{channel}", f"{self.prefix}nc:{self.node}"]

    async def mirror(self, channel: str, data: dict[str, Any]) -> dict[str, Any]:
        """Record a ``presence`` publication's changes of this node's members; returns the
        publication to make, with the cluster's count (and, for a ``members`` snapshot, the
        cluster's members)."""
        event = data.get("event")
        if event == "changes":
            members = data["joined"] + data["updated"]
            count = await self._write(channel, members, data["left"], replace=False)
            return {**data, "count": count}
        if event == "members":
            count = await self._write(channel, data["members"], [], replace=True)
            everyone = sorted(data["members"] + await self.others(channel), key=lambda m: (m["joined_at"], m["conn_id"]))
            return {**data, "count": count, "members": everyone}
        return data  # counts only: this node's own crowd

    async def _write(self, channel: str, members: list[dict[str, Any]], left: list[str], *, replace: bool) -> int:
        args: list[Any] = [self.node, channel, len(members), "replace" if replace else "merge"]
        for member in members:
            args += [member["conn_id"], json.dumps(member, separators=(",", ":"))]
        args += list(left)
        return int(await self._mirror(keys=self._keys(channel), args=args))

    async def others(self, channel: str) -> list[dict[str, Any]]:
        """The members of ``channel`` on other nodes that are alive."""
        raw = await self._others(keys=[f"{self.prefix}pm:{channel}", self._nodes], args=[self.node])
        return [json.loads(item) for item in raw]

    async def heartbeat(self, *, alive: bool = True) -> dict[str, list[str]]:
        """Say this node lives (``alive=False``: say it is gone, for a clean stop) and remove
        the members of dead nodes; returns them, ``{channel: [conn_id, ...]}``, for this node
        to announce as left."""
        if not alive:
            await self._heartbeat(keys=[self._nodes], args=[self.node, 1, self.prefix])  # expires at once
            return {}
        flat = await self._heartbeat(keys=[self._nodes], args=[self.node, self.heartbeat_ttl_ms, self.prefix])
        departed: dict[str, list[str]] = {}
        for channel, conn_id in zip(flat[::2], flat[1::2]):
            departed.setdefault(channel, []).append(conn_id)
        return departed

    async def count(self, channel: str) -> int:
        return int(await self._mirror(keys=self._keys(channel), args=[self.node, channel, 0, "merge"]))
