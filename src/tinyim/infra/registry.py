"""Gateway registry in Redis (spec: `im:gateway:info:{id}` with a TTL, `im:gateway:load` zset).

A gateway registers its address with a short TTL and renews it with its connection count; dispatch
reads the live ones and picks the least loaded. A gateway that dies stops renewing: its info key
expires and it drops out even though its zset member lingers (cleaned up on the next read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from tinyim.infra.redis import Keys


@dataclass(frozen=True, slots=True)
class GatewayNode:
    gateway_id: str
    host: str
    port: int
    connections: int


class RedisGatewayRegistry:
    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: float = 5.0) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(ttl_seconds * 1000)

    async def heartbeat(self, gateway_id: str, host: str, port: int, connections: int) -> None:
        """Register or renew: info key with TTL, load in the zset."""
        info = json.dumps({"host": host, "port": port})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.gateway_info(gateway_id), info, px=self._ttl_ms)
            pipe.zadd(self._keys.gateway_load, {gateway_id: connections})
            await pipe.execute()

    async def unregister(self, gateway_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.gateway_info(gateway_id))
            pipe.zrem(self._keys.gateway_load, gateway_id)
            await pipe.execute()

    async def live(self) -> list[GatewayNode]:
        """Live gateways, least loaded first."""
        raw = await self._redis.zrange(self._keys.gateway_load, 0, -1, withscores=True)
        loads = [(str(pair[0]), float(pair[1])) for pair in raw]
        if not loads:
            return []
        infos = await self._redis.mget([self._keys.gateway_info(g) for g, _ in loads])
        nodes: list[GatewayNode] = []
        dead: list[str] = []
        for (gateway_id, load), info in zip(loads, infos, strict=True):
            if info is None:
                dead.append(gateway_id)
                continue
            data = json.loads(info)
            nodes.append(GatewayNode(gateway_id, data["host"], int(data["port"]), int(load)))
        if dead:
            await self._redis.zrem(self._keys.gateway_load, *dead)
        return nodes
