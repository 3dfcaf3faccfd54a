"""Transfer leases in Redis: every file gateway sharing it counts a user's transfers together.

One zset per user, slot id -> expiry in ms of Redis's own clock (no clock compared between gateways);
expired leases are dropped before counting, so a killed gateway's slots come back after their TTL.
"""

from __future__ import annotations

from redis.asyncio import Redis

from tinyim.infra.redis import Keys

# KEYS[1] the user's zset; ARGV: slot, limit, ttl ms. Returns 1 when the slot is held.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

# KEYS[1] the user's zset; ARGV: slot, ttl ms. Extends a live lease only.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local until_ = redis.call('ZSCORE', KEYS[1], ARGV[1])
if until_ and tonumber(until_) > now then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return 0
"""


class RedisTransferSlots:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)

    async def acquire(self, user_id: int, slot: str, limit: int, ttl: float) -> bool:
        held = await self._acquire(keys=[self._keys.file_slots(user_id)], args=[slot, limit, _ms(ttl)])
        return bool(int(held))

    async def renew(self, user_id: int, slot: str, ttl: float) -> None:
        await self._renew(keys=[self._keys.file_slots(user_id)], args=[slot, _ms(ttl)])

    async def release(self, user_id: int, slot: str) -> None:
        await self._redis.zrem(self._keys.file_slots(user_id), slot)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
