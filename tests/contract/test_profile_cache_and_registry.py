"""ProfileCache contract (memory, Redis) and the Redis gateway registry."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tinyim.infra.redis import Keys
from tinyim.infra.registry import RedisGatewayRegistry
from tinyim.kernel import UserProfile
from tinyim.modules.auth import ProfileCache
from tinyim.modules.auth.adapters.memory import InMemoryProfileCache
from tinyim.modules.auth.adapters.redis import RedisProfileCache


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> ProfileCache:
    if request.param == "memory":
        return InMemoryProfileCache()
    client, keys = request.getfixturevalue("redis_env")
    return RedisProfileCache(client, keys)


async def test_cache_aside_round_trip_and_drop(cache: ProfileCache) -> None:
    alice, bob = UserProfile(1, "alice", "Alice"), UserProfile(2, "bob", "鲍勃")
    assert await cache.get_many([1, 2]) == {}
    await cache.put_many([alice, bob])
    assert await cache.get_many([2, 1, 3]) == {1: alice, 2: bob}
    await cache.drop(1)
    assert await cache.get_many([1, 2]) == {2: bob}
    assert await cache.get_many([]) == {}


async def test_registry_lists_live_gateways_least_loaded_first(redis_env: tuple[Redis, Keys]) -> None:
    client, keys = redis_env
    registry = RedisGatewayRegistry(client, keys, ttl_seconds=0.4)
    await registry.heartbeat("gw-1", "127.0.0.1", 9001, connections=10)
    await registry.heartbeat("gw-2", "127.0.0.1", 9002, connections=3)
    assert [(n.gateway_id, n.port, n.connections) for n in await registry.live()] == [
        ("gw-2", 9002, 3),
        ("gw-1", 9001, 10),
    ]
    for _ in range(3):  # gw-1 keeps renewing; gw-2 died
        await asyncio.sleep(0.2)
        await registry.heartbeat("gw-1", "127.0.0.1", 9001, connections=11)
    assert [n.gateway_id for n in await registry.live()] == ["gw-1"]
    assert await client.zscore(keys.gateway_load, "gw-2") is None  # cleaned up on read
    await registry.unregister("gw-1")
    assert await registry.live() == []
