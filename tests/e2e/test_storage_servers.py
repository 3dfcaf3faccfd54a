"""The one-process server on MariaDB + Redis (Redis seqs): Redis losing everything mid-conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.e2e.helpers import friend_pair, online
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess
from tests.support.services import throwaway_mariadb
from tinyim.client import ClientOptions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mariadb_redis_server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[ServerProcess]:
    with throwaway_mariadb() as url:
        env = {
            "IM_DATABASE_URL": url,
            "IM_REDIS_URL": redis_server.url,
            "IM_SEQ_ALLOCATOR": "redis",
            "IM_HEARTBEAT_TIMEOUT_SECONDS": "10",
        }
        proc = ServerProcess(Path(tmp_path_factory.mktemp("srv")), env=env).start()
        yield proc
        proc.stop()


async def test_flushall_and_restart_lose_nothing_and_never_go_backwards(
    mariadb_redis_server: ServerProcess, redis_server: RedisServer
) -> None:
    server = mariadb_redis_server
    alice, _, bob, bob_id = await friend_pair(server.base_url)
    async with (
        online(server.base_url, alice, options=ClientOptions(heartbeat_interval=0.5)) as a,
        online(server.base_url, bob, options=ClientOptions(heartbeat_interval=0.5)) as b,
    ):
        redis = Redis.from_url(redis_server.url, decode_responses=True)
        try:
            assert await redis.hgetall(f"im:session:{bob_id}")  # presence lives in Redis
            seqs: list[int] = []
            for i in range(3):
                await a.send_text(bob_id, f"before {i}")
                seqs.append((await b.next_message()).seq_id)

            await redis.flushall()
            for i in range(3):
                await a.send_text(bob_id, f"after flush {i}")
            # The sends went through; the pushes had no session to go to until the next heartbeat.
            await asyncio.sleep(1.5)
            assert await redis.hgetall(f"im:session:{bob_id}")  # re-registered by heartbeats
            await a.send_text(bob_id, "after re-registration")
            for expected in [*(f"after flush {i}" for i in range(3)), "after re-registration"]:
                m = await b.next_message(timeout=15)
                assert m.content == expected
                seqs.append(m.seq_id)

            await redis.aclose()
            redis_server.stop()
            redis_server.start()  # same port, empty
            redis = Redis.from_url(redis_server.url, decode_responses=True)
            await asyncio.sleep(1.5)
            await a.send_text(bob_id, "after restart")
            m = await b.next_message(timeout=15)
            assert m.content == "after restart"
            seqs.append(m.seq_id)
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # never backwards, no duplicate
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing lost in between
            assert await redis.get(f"im:seq:{bob_id}") == str(seqs[-1])
        finally:
            await redis.aclose()
