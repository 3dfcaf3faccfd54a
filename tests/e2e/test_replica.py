"""`tinyim run` on a primary + replica pair: replica lag and loss never cost a sync result."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import friend_pair, online
from tests.support.replication import ReplicatedPair, replicated_mariadb, sql
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedPair]:
    with replicated_mariadb(Path(tmp_path_factory.mktemp("replication"))) as p:
        yield p


@pytest.fixture(scope="module")
def replicated_server(
    tmp_path_factory: pytest.TempPathFactory, pair: ReplicatedPair
) -> Iterator[ServerProcess]:
    env = {
        "IM_DATABASE_URL": pair.primary.url(pair.database),
        "IM_DATABASE_REPLICA_URLS": pair.replica.url(pair.database),
    }
    proc = ServerProcess(Path(tmp_path_factory.mktemp("srv")), env=env).start()
    yield proc
    proc.stop()


async def test_chat_survives_a_lagging_then_dead_replica(
    replicated_server: ServerProcess, pair: ReplicatedPair
) -> None:
    server = replicated_server
    alice, _, bob, bob_id = await friend_pair(server.base_url)
    async with online(server.base_url, alice) as a, online(server.base_url, bob) as b:
        await a.send_text(bob_id, "replicating")
        assert (await b.next_message()).content == "replicating"

        await asyncio.to_thread(sql, pair.replica.url(), "STOP SLAVE SQL_THREAD")  # the replica lags
        for i in range(5):
            await a.send_text(bob_id, f"while lagging {i}")
            assert (await b.next_message()).content == f"while lagging {i}"
        # History and lists read the replica when it is healthy: still complete once it is set aside.
        await asyncio.sleep(1.5)
        page, _ = await b.history(peer_id=a.user_id, limit=10)
        assert [m.content for m in page if m.type == 0][-1] == "while lagging 4"

        await asyncio.to_thread(sql, pair.replica.url(), "START SLAVE SQL_THREAD")
        await asyncio.to_thread(pair.wait_replica_caught_up)
        pair.replica.kill()  # the replica dies: the primary takes over its reads
        for i in range(3):
            await a.send_text(bob_id, f"replica down {i}")
            assert (await b.next_message()).content == f"replica down {i}"
        page, _ = await b.history(peer_id=a.user_id, limit=3)
        assert [m.content for m in page] == [f"replica down {i}" for i in range(3)]
