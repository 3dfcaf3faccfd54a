"""The relation change feed: tells the messaging-rules caches what changed.

- `LocalChangeFeed`: one process (or no Redis): the caches of this process hear of a change at once.
- `RedisChangeFeed`: the same, plus a Redis channel every process subscribes to, so a block stored by one
  user-role process reaches the caches of every msg-role process. While the subscription is down the
  caches are emptied and bypassed (see `rules_cache`): what was published meanwhile is never heard.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tinyim.infra.redis import ChannelFeed
from tinyim.modules.relation.rules_cache import CachedMessagingRules

if TYPE_CHECKING:  # the [redis] extra: only a process with IM_REDIS_URL builds a RedisChangeFeed
    from redis.asyncio import Redis

    from tinyim.infra.redis import Keys

log = logging.getLogger(__name__)


class LocalChangeFeed:
    def __init__(self) -> None:
        self._caches: list[CachedMessagingRules] = []

    def subscribe(self, cache: CachedMessagingRules) -> None:
        self._caches.append(cache)

    def live(self) -> bool:
        return True

    async def pair_changed(self, a: int, b: int) -> None:
        for cache in self._caches:
            cache.pair_changed(a, b)

    async def group_changed(self, group_id: int) -> None:
        for cache in self._caches:
            cache.group_changed(group_id)

    def _clear(self) -> None:
        for cache in self._caches:
            cache.clear()


class RedisChangeFeed(LocalChangeFeed):
    """Messages on the channel: `p <a> <b>` (a pair) and `g <group_id>` (a group)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__()
        self.feed = ChannelFeed(
            redis, keys.relation_changes(), "relation change feed", self._apply, self._clear
        )

    def live(self) -> bool:
        return self.feed.live()

    async def pair_changed(self, a: int, b: int) -> None:
        await super().pair_changed(a, b)
        await self._publish(f"p {a} {b}")

    async def group_changed(self, group_id: int) -> None:
        await super().group_changed(group_id)
        await self._publish(f"g {group_id}")

    async def _publish(self, message: str) -> None:
        try:
            await self.feed.publish(message)
        except Exception:  # stored already; other processes' caches expire it at their TTL
            log.warning("relation change not published", extra={"change": message}, exc_info=True)

    async def run(self) -> None:
        """Listen until cancelled; while the subscription is down, caches are emptied and bypassed."""
        await self.feed.run()

    def _apply(self, message: str) -> None:
        kind, *ids = message.split()
        try:
            numbers = [int(i) for i in ids]
            if kind == "p" and len(numbers) == 2:
                for cache in self._caches:
                    cache.pair_changed(numbers[0], numbers[1])
                return
            if kind == "g" and len(numbers) == 1:
                for cache in self._caches:
                    cache.group_changed(numbers[0])
                return
        except ValueError:
            pass
        log.warning("unknown relation change message", extra={"change": message})
        self._clear()  # not understood: forget everything rather than serve what may have changed
