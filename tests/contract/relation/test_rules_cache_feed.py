"""The relation change feed over Redis: a change published by one process empties the rules caches of
another; a lost subscription leaves the cache bypassed until it is back."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from tests.support.feeds import listening, until
from tests.support.services import require_redis
from tests.unit.fakes import FakePolicy
from tinyim.infra.redis import Keys
from tinyim.modules.relation.adapters.change_feed import RedisChangeFeed
from tinyim.modules.relation.rules_cache import CachedMessagingRules

A, B, GROUP = 1, 2, 9


class CountingRules(FakePolicy):
    def __init__(self) -> None:
        super().__init__({A, B}, {GROUP: [A, B]})
        self.asked = 0

    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        self.asked += 1

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        self.asked += 1
        return await super().group_recipients(sender_id, group_id)


async def test_a_change_published_elsewhere_empties_this_cache(redis_env: tuple[Redis, Keys]) -> None:
    redis, keys = redis_env
    user_role, msg_role = RedisChangeFeed(redis, keys), RedisChangeFeed(redis, keys)
    rules = CountingRules()
    cache = CachedMessagingRules(rules, live=msg_role.live)
    msg_role.subscribe(cache)
    async with listening(msg_role):
        await cache.check_direct(A, B)
        await cache.group_recipients(A, GROUP)
        await cache.check_direct(A, B)
        await cache.group_recipients(B, GROUP)
        assert rules.asked == 2  # from memory the second time
        await user_role.pair_changed(B, A)
        await until(lambda: cache._allowed == {})
        await user_role.group_changed(GROUP)
        await until(lambda: cache._members == {})
        await cache.check_direct(A, B)
        await cache.group_recipients(A, GROUP)
        assert rules.asked == 4


async def test_while_unsubscribed_the_cache_is_bypassed(redis_env: tuple[Redis, Keys]) -> None:
    admin, keys = redis_env
    name = f"feed-{keys.prefix.strip(':')}"  # this test's connections only: the Redis is shared
    redis = Redis.from_url(require_redis(), decode_responses=True, client_name=name)
    feed = RedisChangeFeed(redis, keys)
    rules = CountingRules()
    cache = CachedMessagingRules(rules, live=feed.live)
    feed.subscribe(cache)
    await cache.check_direct(A, B)
    await cache.check_direct(A, B)
    assert rules.asked == 2  # not subscribed yet: nothing is kept
    async with listening(feed) as up:
        await cache.check_direct(A, B)
        await cache.check_direct(A, B)
        assert rules.asked == 3
        # the subscription's connection is killed (as when Redis restarts): bypassed, then back
        for client in await admin.client_list(_type="pubsub"):
            if client["name"] == name:
                await admin.client_kill_filter(_id=client["id"])
        await until(lambda: not up.is_set())
        await cache.check_direct(A, B)
        assert rules.asked == 4
        await asyncio.wait_for(up.wait(), 10)
        await cache.check_direct(A, B)
        await cache.check_direct(A, B)
        assert rules.asked == 5
    await redis.aclose()
