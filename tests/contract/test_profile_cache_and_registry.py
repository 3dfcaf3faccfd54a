"""ProfileCache contract (memory, Redis) and the registry contract (Redis, etcd)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tinyim.infra.etcd import EtcdRegistry, etcd_client
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registration import DuplicateWorkerId, check_worker_id
from tinyim.infra.registry import Node, RedisRegistry, Registry
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


@pytest.fixture(params=["redis", "etcd"])
def registry_source(request: pytest.FixtureRequest) -> tuple[str, Any]:
    if request.param == "redis":
        return "redis", request.getfixturevalue("redis_env")
    return "etcd", request.getfixturevalue("etcd_endpoints")


@pytest.fixture
async def registry(registry_source: tuple[str, Any]) -> AsyncIterator[Registry]:
    kind, source = registry_source
    if kind == "redis":
        client, keys = source
        yield RedisRegistry(client, keys, ttl_seconds=1.0)
        return
    async for client in etcd_client(source):
        prefix = f"t{uuid.uuid4().hex[:8]}/"
        yield EtcdRegistry(client, prefix=prefix, ttl_seconds=1.0)
        await client.delete_prefix(f"/tinyim/{prefix}".encode())


async def test_cache_aside_round_trip_and_drop(cache: ProfileCache) -> None:
    alice, bob = UserProfile(1, "alice", "Alice"), UserProfile(2, "bob", "鲍勃")
    assert await cache.get_many([1, 2]) == {}
    await cache.put_many([alice, bob])
    assert await cache.get_many([2, 1, 3]) == {1: alice, 2: bob}
    await cache.drop(1)
    assert await cache.get_many([1, 2]) == {2: bob}
    assert await cache.get_many([]) == {}


async def test_registry_lists_live_nodes_least_loaded_first(registry: Registry) -> None:
    a = Node("gateway", "gw-1", "127.0.0.1", http_port=9001, grpc_port=10001, load=10)
    b = Node("gateway", "gw-2", "127.0.0.1", http_port=9002, grpc_port=10002, load=3)
    await registry.announce(a)
    await registry.announce(b)
    await registry.announce(Node("msg", "msg-1", "127.0.0.1", grpc_port=10003))
    assert await registry.nodes("gateway") == [b, a]
    assert [n.node_id for n in await registry.nodes("msg")] == ["msg-1"]
    a = Node("gateway", "gw-1", "127.0.0.1", http_port=9001, grpc_port=10001, load=1)
    await registry.announce(a)  # a renewal carries the new load
    assert await registry.nodes("gateway") == [a, b]
    await registry.withdraw(a)
    assert await registry.nodes("gateway") == [b]


async def test_a_node_that_stops_renewing_drops_out(registry: Registry) -> None:
    live = Node("msg", "msg-1", "127.0.0.1", grpc_port=10001)
    dead = Node("msg", "msg-2", "127.0.0.1", grpc_port=10002)
    await registry.announce(dead)
    deadline = time.monotonic() + 10
    while await registry.nodes("msg") != [live]:  # the TTL is 1 s here (etcd's minimum)
        assert time.monotonic() < deadline, "a node that stopped renewing stayed registered"
        await registry.announce(live)
        await asyncio.sleep(0.2)


async def test_directory_caches_and_sets_failed_nodes_aside(registry: Registry) -> None:
    a, b = (Node("user", f"user-{i}", "127.0.0.1", grpc_port=10000 + i) for i in (1, 2))
    await registry.announce(a)
    await registry.announce(b)
    directory = NodeDirectory(registry, refresh_seconds=60)
    assert {n.node_id for n in await directory.nodes("user")} == {"user-1", "user-2"}
    directory.suspect(a)
    assert await directory.nodes("user") == [b]
    directory.suspect(b)  # when every node is suspect, all are offered again
    assert len(await directory.nodes("user")) == 2
    assert await directory.node("user", "user-2") == b


async def test_a_second_msg_node_with_the_same_worker_id_is_refused(registry: Registry) -> None:
    first = Node("msg", "msg-1", "127.0.0.1", grpc_port=10001, worker_id=3)
    await registry.announce(first)
    await check_worker_id(registry, first)  # itself (a restart after kill -9) is fine
    await check_worker_id(registry, Node("msg", "msg-2", "127.0.0.1", grpc_port=10002, worker_id=4))
    with pytest.raises(DuplicateWorkerId, match="IM_WORKER_ID=3"):
        await check_worker_id(registry, Node("msg", "msg-3", "127.0.0.1", grpc_port=10003, worker_id=3))


async def test_etcd_watch_tells_readers_of_every_change(etcd_endpoints: str) -> None:
    async for client in etcd_client(etcd_endpoints):
        prefix = f"w{uuid.uuid4().hex[:8]}/"
        registry = EtcdRegistry(client, prefix=prefix, ttl_seconds=1.0)
        directory = NodeDirectory(registry, refresh_seconds=3600)  # only the watch refreshes it
        follower = asyncio.create_task(directory.follow())
        try:
            assert await directory.nodes("user") == []
            await asyncio.sleep(0.3)  # the watch is set up
            node = Node("user", "user-1", "127.0.0.1", grpc_port=10001)
            await registry.announce(node)
            deadline = time.monotonic() + 5
            while await directory.nodes("user") != [node]:
                assert time.monotonic() < deadline, "the watch did not refresh the directory"
                await asyncio.sleep(0.05)
        finally:
            follower.cancel()
            await client.delete_prefix(f"/tinyim/{prefix}".encode())
