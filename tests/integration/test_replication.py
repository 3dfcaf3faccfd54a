"""Read/write split against a real primary + replica pair (DESIGN §5.5, §6)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.conftest import fresh_id
from tests.contract.timeline.test_timeline_store import body, slots
from tests.support.replication import ReplicatedPair, replicated_mariadb, sql
from tinyim.infra.db import Database
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore
from tinyim.modules.timeline.domain import Conversation, ConvType


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedPair]:
    with replicated_mariadb(Path(tmp_path_factory.mktemp("replication"))) as p:
        yield p


def test_reads_use_the_replica_and_a_notified_sync_never_misses(pair: ReplicatedPair) -> None:
    async def scenario() -> None:
        db = Database(pair.primary.url(pair.database), [pair.replica.url(pair.database)])
        store = SqlTimelineStore(db)
        a, b = fresh_id(), fresh_id()
        try:
            await store.append(body(a, "replicated"), slots(a, b))
            await asyncio.to_thread(pair.wait_replica_caught_up)
            await db.check_replicas()
            assert db.healthy == [True]
            assert [m.content for m in (await store.read(b, 0, 10))[0]] == ["replicated"]

            # Lag: the replica stops applying. Before the health check notices, a plain read is stale
            # (proof that reads go to the replica) but a sync carrying the notified seq is complete.
            await asyncio.to_thread(sql, pair.replica.url(), "STOP SLAVE SQL_THREAD")
            sent = await store.append(body(a, "while lagging"), slots(a, b))
            stale, _ = await store.read(b, 0, 10)
            assert [m.content for m in stale] == ["replicated"]
            fresh, _ = await store.read(b, 0, 10, min_seq=sent.seqs[b])
            assert [m.content for m in fresh] == ["replicated", "while lagging"]
            assert await store.max_seq(b) == sent.seqs[b]  # mark_read validates against this: never stale
            # Opening the conversation right after the push: its latest page comes from the primary; an
            # older page (before_seq) may still be read from the lagging replica.
            direct = Conversation(ConvType.DIRECT, a)
            latest, _ = await store.history(b, direct, 0, 10)
            assert [m.content for m in latest] == ["replicated", "while lagging"]
            older, _ = await store.history(b, direct, sent.seqs[b], 10)
            assert [m.content for m in older] == ["replicated"]
            # The health check sets the lagging replica aside: plain reads go to the primary.
            await db.check_replicas()
            assert db.healthy == [False]
            assert [m.content for m in (await store.read(b, 0, 10))[0]] == ["replicated", "while lagging"]
            # Replication resumes, the replica catches up and serves reads again.
            await asyncio.to_thread(sql, pair.replica.url(), "START SLAVE SQL_THREAD")
            await asyncio.to_thread(pair.wait_replica_caught_up)
            await db.check_replicas()
            assert db.healthy == [True]
            assert [m.content for m in (await store.read(b, 0, 10))[0]] == ["replicated", "while lagging"]
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_the_primary_takes_over_reads_while_the_replica_is_down(pair: ReplicatedPair) -> None:
    async def scenario() -> None:
        db = Database(pair.primary.url(pair.database), [pair.replica.url(pair.database)])
        store = SqlTimelineStore(db)
        a, b = fresh_id(), fresh_id()
        try:
            await store.append(body(a, "before"), slots(a, b))
            pair.replica.kill()
            await store.append(body(a, "after the replica died"), slots(a, b))
            page, _ = await store.read(b, 0, 10)  # the failed replica connection falls back to the primary
            assert [m.content for m in page] == ["before", "after the replica died"]
            assert db.healthy == [False]
            await db.check_replicas()
            assert db.healthy == [False]
            assert [m.content for m in (await store.read(b, 0, 10))[0]] == [
                "before",
                "after the replica died",
            ]
        finally:
            await db.dispose()

    asyncio.run(scenario())
