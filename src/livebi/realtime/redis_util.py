"""Small pieces every Redis user of the cluster needs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

try:
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    #: Errors that mean "cannot reach Redis now" (not a bug in a script or its caller)
    UNREACHABLE: tuple[type[BaseException], ...] = (_RedisConnectionError, _RedisTimeoutError, OSError)
except ImportError:  # pragma: no cover - redis is a dependency
    UNREACHABLE = (OSError,)


async def listen(
    client: Any,
    channels: list[str],
    on_message: Callable[[str, Any], Awaitable[None]],
    *,
    what: str,
    on_ready: Callable[[], None] | None = None,
    on_unreachable: Callable[[BaseException], None] | None = None,
) -> None:
    """Subscribe to ``channels`` and hand each message's channel and JSON body to ``on_message``,
    forever: re-subscribes with backoff (0.5 s doubling to 10 s) while Redis is unreachable.
    Malformed messages are logged and skipped; a failing handler is logged with its traceback
    and the loop goes on."""
    delay = 0.5
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            if on_ready is not None:
                on_ready()
            delay = 0.5
            async for item in pubsub.listen():
                if item.get("type") != "message":
                    continue
                channel = item["channel"].decode() if isinstance(item["channel"], bytes) else item["channel"]
                try:
                    body = json.loads(item["data"])
                except ValueError:
                    log.warning("%s: malformed message on %s ignored", what, channel)
                    continue
                try:
                    await on_message(channel, body)
                except Exception:
                    log.exception("%s: handling a message on %s failed", what, channel)
        except UNREACHABLE as exc:
            if on_unreachable is not None:
                on_unreachable(exc)
            else:
                log.warning("%s: Redis unreachable (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        finally:
            try:
                await pubsub.aclose()
            except UNREACHABLE:
                pass
