"""SessionDirectory contract, on the in-memory and the Redis adapter."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tinyim.infra.redis import Keys
from tinyim.modules.presence import DeviceSession, SessionDirectory
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.modules.presence.adapters.redis import RedisSessionDirectory


@pytest.fixture(params=["memory", "redis"])
def directory(request: pytest.FixtureRequest) -> SessionDirectory:
    if request.param == "memory":
        return InMemorySessionDirectory()
    client, keys = request.getfixturevalue("redis_env")
    return RedisSessionDirectory(client, keys, ttl_seconds=120)


async def test_bind_lookup_unbind(directory: SessionDirectory) -> None:
    pc, web = DeviceSession(1, "PC", "gw-a", "c1"), DeviceSession(1, "Web", "gw-b", "c2")
    await directory.bind(pc)
    await directory.bind(web)
    await directory.bind(DeviceSession(2, "PC", "gw-a", "c3"))
    found = await directory.lookup([1, 2, 3])
    assert sorted(found[1], key=lambda s: s.device_id) == [pc, web] and 3 not in found
    await directory.unbind(pc)
    assert (await directory.lookup([1]))[1] == [web]
    assert await directory.lookup([]) == {}


async def test_lookup_of_many_users_in_one_call(directory: SessionDirectory) -> None:
    """A push batch asks for hundreds of users at once: each gets exactly their own live devices."""
    for uid in range(1, 301):
        await directory.bind(DeviceSession(uid, "PC", f"gw-{uid % 3}", f"c{uid}"))
        if uid % 7 == 0:
            await directory.bind(DeviceSession(uid, "Web", "gw-web", f"w{uid}"))
    found = await directory.lookup([*range(1, 401), 5, 5])  # 301..400 are offline; 5 asked twice
    assert sorted(found) == list(range(1, 301))
    for uid, sessions in found.items():
        expected = {("PC", f"gw-{uid % 3}", f"c{uid}")} | (
            {("Web", "gw-web", f"w{uid}")} if uid % 7 == 0 else set()
        )
        assert {(s.device_id, s.gateway_id, s.conn_id) for s in sessions} == expected
        assert all(s.user_id == uid for s in sessions)
    # offline users between online ones: each session still lands on its own user
    mixed = await directory.lookup([350, 14, 399, 301, 2])
    assert {uid: sorted(s.device_id for s in ss) for uid, ss in mixed.items()} == {
        14: ["PC", "Web"],
        2: ["PC"],
    }


async def test_unbind_of_a_replaced_connection_keeps_the_new_one(directory: SessionDirectory) -> None:
    old, new = DeviceSession(1, "PC", "gw-a", "old"), DeviceSession(1, "PC", "gw-b", "new")
    await directory.bind(old)
    await directory.bind(new)
    await directory.unbind(old)
    assert (await directory.lookup([1]))[1] == [new]
    await directory.refresh(new)
    assert (await directory.lookup([1]))[1] == [new]


async def test_redis_entries_expire_and_heartbeats_bring_them_back(redis_env: tuple[Redis, Keys]) -> None:
    client, keys = redis_env
    directory = RedisSessionDirectory(client, keys, ttl_seconds=0.3)
    pc, web = DeviceSession(7, "PC", "gw-a", "c1"), DeviceSession(7, "Web", "gw-b", "c2")
    await directory.bind(pc)
    await directory.bind(web)
    assert await client.pttl(keys.session(7)) > 0
    for _ in range(4):  # the Web device keeps beating; the PC's gateway died and stopped
        await asyncio.sleep(0.12)
        await directory.refresh(web)
    assert (await directory.lookup([7]))[7] == [web]  # PC's field outlived its deadline: not routed to
    await asyncio.sleep(0.4)
    assert await directory.lookup([7]) == {} and not await client.exists(keys.session(7))
    await directory.refresh(web)  # after Redis lost the entry, the next heartbeat re-creates it
    assert (await directory.lookup([7]))[7] == [web]
