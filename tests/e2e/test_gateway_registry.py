"""Gateways register in Redis (with a TTL, renewed with their load); dispatch picks the least loaded live one.

The registry timings are shortened here (IM_REGISTRY_TTL_SECONDS / IM_REGISTRY_RENEW_SECONDS), so the
test waits for an expiry of 2 s rather than the default 5 s.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.e2e.helpers import PASSWORD, new_user
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess
from tinyim.client import Client
from tinyim.infra.node_directory import DIRECTORY_REFRESH_SECONDS

pytestmark = pytest.mark.e2e

TTL_SECONDS, RENEW_SECONDS = 2.0, 0.5
REGISTRY_ENV = {"IM_REGISTRY_TTL_SECONDS": str(TTL_SECONDS), "IM_REGISTRY_RENEW_SECONDS": str(RENEW_SECONDS)}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


async def allocate(server: ServerProcess, username: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        login = await http.post(
            "/api/login",
            json={"username": username, "password": PASSWORD, "device_id": "Mobile"},
        )
        token = login.json()["token"]
        # The login handed out a gateway too; dispatch counts that one for as old as its view of the
        # loads can be (a renewal period and a directory refresh): wait that out.
        await asyncio.sleep(RENEW_SECONDS + DIRECTORY_REFRESH_SECONDS + 0.2)
        return await http.get("/api/allocate_gateway", headers={"Authorization": f"Bearer {token}"})


async def live_gateways(redis: Redis, prefix: str) -> dict[str, float]:
    members = await redis.zrange(f"{prefix}im:gateway:load", 0, -1, withscores=True)
    alive = {}
    for pair in members:
        member, load = str(pair[0]), float(pair[1])
        if await redis.exists(f"{prefix}im:gateway:info:{member}"):
            alive[member] = load
    return alive


async def test_least_loaded_live_gateway_and_failover(tmp_path: Path, redis_server: RedisServer) -> None:
    prefix = f"reg-{uuid.uuid4().hex[:6]}:"
    env = {"IM_REDIS_URL": redis_server.url, "IM_REDIS_PREFIX": prefix, **REGISTRY_ENV}
    a = ServerProcess(tmp_path / "a", env={**env, "IM_WORKER_ID": "1"}).start()
    b = ServerProcess(tmp_path / "b", env={**env, "IM_WORKER_ID": "2"}).start()
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        gw_a, gw_b = f"gw-127.0.0.1:{a.port}", f"gw-127.0.0.1:{b.port}"
        assert set(await live_gateways(redis, prefix)) == {gw_a, gw_b}
        assert 0 < await redis.pttl(f"{prefix}im:gateway:info:{gw_a}") <= TTL_SECONDS * 1000

        user, _ = await new_user(b.base_url, "busy")
        # A client on B (the two processes here have separate databases and secrets, so it must not
        # follow dispatch to A as it would in a real deployment).
        client = Client(b.base_url, user, PASSWORD, "PC")
        await client.login()
        client.ws_url = f"ws://127.0.0.1:{b.port}/ws"
        await client.start()
        try:
            deadline = time.monotonic() + 10
            while (await live_gateways(redis, prefix))[gw_b] != 1:  # a renewal carries B's connection count
                assert time.monotonic() < deadline, "B's load was never reported"
                await asyncio.sleep(0.1)
            picked = (await allocate(b, user)).json()
            assert picked == {"host": "127.0.0.1", "port": a.port, "ws_url": f"ws://127.0.0.1:{a.port}/ws"}

            a.stop(signal.SIGKILL)  # no goodbye: its entry must expire by itself
            deadline = time.monotonic() + 10
            while gw_a in await live_gateways(redis, prefix):
                assert time.monotonic() < deadline, "a dead gateway stayed in the registry"
                await asyncio.sleep(0.25)
            assert (await allocate(b, user)).json()["port"] == b.port  # only B is left
        finally:
            await client.close()

        b.stop()  # a clean stop unregisters at once
        assert await live_gateways(redis, prefix) == {}
    finally:
        a.stop()
        b.stop()
        await redis.aclose()
