"""Login throttle counts in Redis: every dispatch process counts the same failures.

A key's failures are a counter (INCR and PEXPIRE in one MULTI, so no counter is left without a TTL); its
block is a separate key whose remaining TTL is the wait, so no clock is compared between processes.
When Redis cannot be reached the throttle lets logins through (with a warning): a Redis restart must not
lock everyone out, and the cap on concurrent password hashes still bounds what guessing costs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tinyim.infra.redis import Keys

log = logging.getLogger(__name__)

# Set each block key for ARGV[i] ms unless it already has a longer TTL left (never shorten a block).
_EXTEND = """
for i, key in ipairs(KEYS) do
  local ms = tonumber(ARGV[i])
  if redis.call('PTTL', key) < ms then redis.call('SET', key, '1', 'PX', ms) end
end
return 0
"""

WARN_EVERY_SECONDS = 10.0


class RedisFailureStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._extend = redis.register_script(_EXTEND)
        self._warned = 0.0

    async def blocked_for(self, keys: Sequence[str]) -> float:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pttl(self._keys.login_block(key))
                ttls = await pipe.execute()
        except RedisError as exc:
            self._warn(exc)
            return 0.0
        return max([0, *(int(ms) for ms in ttls)]) / 1000  # PTTL: -2 = no such key

    async def count_failure(self, keys: Sequence[str], forget_after: float) -> list[int]:
        ms = max(1, int(forget_after * 1000))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incr(self._keys.login_failures(key))
                    pipe.pexpire(self._keys.login_failures(key), ms)
                results = await pipe.execute()
        except RedisError as exc:
            self._warn(exc)
            return [0] * len(keys)
        return [int(n) for n in results[::2]]

    async def block(self, blocks: Mapping[str, float]) -> None:
        try:
            await self._extend(
                keys=[self._keys.login_block(k) for k in blocks],
                args=[max(1, int(s * 1000)) for s in blocks.values()],
            )
        except RedisError as exc:
            self._warn(exc)

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self._keys.login_failures(key), self._keys.login_block(key))
        except RedisError as exc:
            self._warn(exc)

    def _warn(self, exc: RedisError) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_SECONDS:  # one line per outage burst, not one per login
            self._warned = now
            log.warning("login throttle: Redis unavailable, not throttling: %r", exc)
