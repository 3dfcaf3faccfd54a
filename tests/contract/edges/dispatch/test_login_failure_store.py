"""Login throttle counts (FailureStore): the same behaviour in memory and in Redis, and in Redis one
limit for every dispatch process."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tinyim.edges.dispatch.throttle import FailureStore, InMemoryFailureStore, LoginThrottle
from tinyim.edges.dispatch.throttle_redis import RedisFailureStore
from tinyim.infra.redis import Keys


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> FailureStore:
    if request.param == "memory":
        return InMemoryFailureStore()
    client, keys = request.getfixturevalue("redis_env")
    return RedisFailureStore(client, keys)


async def test_counts_are_per_key_and_cleared(store: FailureStore) -> None:
    assert await store.count_failure(["u:a", "a:1"], 60) == [1, 1]
    assert await store.count_failure(["u:a", "a:2"], 60) == [2, 1]
    assert await store.count_failure(["u:b", "a:1"], 60) == [1, 2]
    await store.clear("u:a")
    assert await store.count_failure(["u:a"], 60) == [1]


async def test_a_block_lasts_its_seconds_and_is_never_shortened(store: FailureStore) -> None:
    assert await store.blocked_for(["u:a", "a:1"]) == 0
    await store.block({"u:a": 30.0})
    await store.block({"u:a": 1.0, "a:1": 2.0})  # shorter: u:a keeps its 30 s
    assert 29 < await store.blocked_for(["u:a"]) <= 30
    assert 1 < await store.blocked_for(["a:1"]) <= 2
    assert 29 < await store.blocked_for(["a:1", "u:a", "u:none"]) <= 30
    await store.clear("u:a")
    assert await store.blocked_for(["u:a"]) == 0


async def test_counts_and_blocks_expire(store: FailureStore) -> None:
    await store.count_failure(["u:a"], 0.2)
    assert await store.count_failure(["u:a"], 0.2) == [2]  # within the window: counted on
    await store.block({"u:a": 0.2})
    await asyncio.sleep(0.35)
    assert await store.blocked_for(["u:a"]) == 0
    assert await store.count_failure(["u:a"], 0.2) == [1]  # forgotten after its last failure


async def test_concurrent_failures_are_each_counted(store: FailureStore) -> None:
    counts = await asyncio.gather(*(store.count_failure(["u:race"], 60) for _ in range(50)))
    assert sorted(c[0] for c in counts) == list(range(1, 51))


async def test_every_dispatch_process_counts_the_same_failures(redis_env: tuple[Redis, Keys]) -> None:
    """Two dispatchers, each with its own Redis connection: guesses spread over both meet one limit."""
    client, keys = redis_env
    other = Redis.from_url(_url(client), decode_responses=True)
    try:
        a = LoginThrottle(RedisFailureStore(client, keys), free_failures=4)
        b = LoginThrottle(RedisFailureStore(other, keys), free_failures=4)
        for i in range(4):
            await (a if i % 2 else b).failed("victim", f"10.0.0.{i}")
        assert await a.retry_after("victim", "10.9.9.9") == await b.retry_after("victim", "10.9.9.9") == 0
        await b.failed("victim", "10.0.0.9")  # the fifth, counted by the second dispatcher
        assert await a.retry_after("victim", "10.9.9.9") == 1
        await a.succeeded("victim")
        assert await b.retry_after("victim", "10.9.9.9") == 0
    finally:
        await other.aclose()


def _url(client: Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


async def test_an_unreachable_redis_lets_logins_through() -> None:
    """A Redis restart must not lock everyone out (the hash cap still bounds guessing)."""
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    try:
        t = LoginThrottle(RedisFailureStore(dead, Keys("x:")), free_failures=1)
        for _ in range(3):
            await t.failed("victim", "10.0.0.1")
        assert await t.retry_after("victim", "10.0.0.1") == 0
        await t.succeeded("victim")
    finally:
        await dead.aclose()
