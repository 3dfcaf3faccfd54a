"""Redis profile cache (spec: `im:user:{uid}`, cache-aside): one small JSON string per user, with a TTL."""

from __future__ import annotations

import json
from collections.abc import Iterable

from redis.asyncio import Redis

from tinyim.infra.redis import Keys
from tinyim.kernel import UserProfile


class RedisProfileCache:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: int = 3600) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, UserProfile]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        values = await self._redis.mget([self._keys.user(u) for u in ids])
        found = {}
        for uid, raw in zip(ids, values, strict=True):
            if raw:
                data = json.loads(raw)
                found[uid] = UserProfile(uid, data["username"], data["nickname"])
        return found

    async def put_many(self, profiles: Iterable[UserProfile]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in profiles:
                value = json.dumps({"username": p.username, "nickname": p.nickname}, ensure_ascii=False)
                pipe.set(self._keys.user(p.user_id), value, ex=self._ttl)
            await pipe.execute()

    async def drop(self, user_id: int) -> None:
        await self._redis.delete(self._keys.user(user_id))
