"""The push routes' cache over Redis: a bind or unbind in one process (a gateway) is announced, and the
route cache of another (a msg node) forgets that user; a heartbeat is not announced; a lost subscription
leaves the cache bypassed until it is back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from tests.support.feeds import listening, until
from tests.support.services import require_redis
from tinyim.infra.redis import Keys
from tinyim.modules.presence import DeviceSession
from tinyim.modules.presence.adapters.redis import RedisSessionDirectory, RouteChangeFeed
from tinyim.modules.presence.route_cache import CachedRoutes

ALICE, BOB = 1, 2


class Counting(RedisSessionDirectory):
    asked = 0

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]:
        self.asked += 1
        return await super().lookup(user_ids)


async def test_binds_elsewhere_reach_this_cache_and_heartbeats_do_not(redis_env: tuple[Redis, Keys]) -> None:
    redis, keys = redis_env
    gateway = RedisSessionDirectory(redis, keys, ttl_seconds=120)
    table = Counting(redis, keys, ttl_seconds=120)
    feed = RouteChangeFeed(redis, keys)
    routes = CachedRoutes(table, live=feed.live)
    feed.subscribe(routes)
    heard: list[str] = []
    async with listening(feed):
        spy = redis.pubsub()
        await spy.subscribe(keys.route_changes())
        confirmed = await spy.get_message(timeout=5)  # subscribed before anything is published
        assert confirmed is not None and confirmed["type"] == "subscribe"
        assert await routes.lookup([ALICE, BOB]) == {}
        pc = DeviceSession(ALICE, "PC", "gw-1", "c1")
        await gateway.bind(pc)
        await until(lambda: ALICE not in routes._routes)
        assert await routes.lookup([ALICE, BOB]) == {ALICE: [pc]}
        assert table.asked == 2  # Bob's "offline" came from memory
        await gateway.refresh(pc)  # a heartbeat: the same route, not announced
        await gateway.unbind(DeviceSession(ALICE, "PC", "gw-1", "an-older-connection"))  # removes nothing
        await gateway.unbind(pc)
        await until(lambda: ALICE not in routes._routes)
        assert await routes.lookup([ALICE]) == {}
        for _ in range(10):
            message = await spy.get_message(timeout=0.2)
            if message is not None:
                heard.append(str(message["data"]))
        await spy.aclose()  # type: ignore[no-untyped-call]
    assert heard == [str(ALICE), str(ALICE)]  # the bind and the unbind that removed the entry


async def test_while_unsubscribed_the_cache_is_bypassed(redis_env: tuple[Redis, Keys]) -> None:
    admin, keys = redis_env
    name = f"routes-{keys.prefix.strip(':')}"  # this test's connections only: the Redis is shared
    redis = Redis.from_url(require_redis(), decode_responses=True, client_name=name)
    table = Counting(redis, keys, ttl_seconds=120)
    feed = RouteChangeFeed(redis, keys)
    routes = CachedRoutes(table, live=feed.live)
    feed.subscribe(routes)
    await routes.lookup([ALICE])
    await routes.lookup([ALICE])
    assert table.asked == 2  # not subscribed yet: nothing is kept
    async with listening(feed) as up:
        await routes.lookup([ALICE])
        await routes.lookup([ALICE])
        assert table.asked == 3
        for client in await admin.client_list(_type="pubsub"):
            if client["name"] == name:
                await admin.client_kill_filter(_id=client["id"])
        await until(lambda: not up.is_set())
        await routes.lookup([ALICE])
        assert table.asked == 4
        await asyncio.wait_for(up.wait(), 10)
        await routes.lookup([ALICE])
        await routes.lookup([ALICE])
        assert table.asked == 5
    await redis.aclose()


async def test_a_message_it_does_not_understand_empties_the_cache(redis_env: tuple[Redis, Keys]) -> None:
    redis, keys = redis_env
    table = Counting(redis, keys, ttl_seconds=120)
    feed = RouteChangeFeed(redis, keys)
    routes = CachedRoutes(table, live=feed.live)
    feed.subscribe(routes)
    async with listening(feed):
        await routes.lookup([ALICE, BOB])
        await redis.publish(keys.route_changes(), "not a user id")
        await until(lambda: not routes._routes)
