"""Redis adapters of the relation module: fixed-window rate counters shared by every user-role process."""

from __future__ import annotations

from redis.asyncio import Redis

from tinyim.infra.redis import Keys

# INCR, and start the window with the first use: one round trip, no key left without a TTL.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._keys = keys
        self._hit = redis.register_script(_HIT)

    async def hit(self, key: str, limit: int, window_seconds: float) -> bool:
        uses = await self._hit(keys=[self._keys.rate(key)], args=[max(1, int(window_seconds * 1000))])
        return int(uses) <= limit
