"""Overlapping timeline batches on MariaDB (the server's two batch writers), with both seq allocators.

A batch may start while the one before it is still in the database (GroupCommitter `writers` > 1). These
tests prove what that must not change (DESIGN §5): every owner's seqs are 1..n, a pipelining sender's
messages keep the order it sent them in, and a batch that fails — before its seqs or after — never lets a
later batch's message overtake one of its own. They also check that the overlap really happened.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.contract.conftest import Backend, fresh_id, make_backend
from tests.contract.timeline.test_redis_seq_gone import marks_done, settled
from tests.contract.timeline.test_timeline_store import body, slots
from tests.support.services import delete_prefix, require_redis
from tinyim.infra.db import Database
from tinyim.infra.redis import Keys
from tinyim.modules.timeline import MessageBody
from tinyim.modules.timeline.adapters.group_commit import PendingAppend, PrecedingBatchFailed, Turn
from tinyim.modules.timeline.adapters.redis_seq import RedisSeqAllocator
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore
from tinyim.modules.timeline.domain import Appended, group_slots
from tinyim.modules.timeline.ports import SeqAllocator


@pytest.fixture(params=["mariadb", "mariadb+redis"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend(request.param, request, tmp_path_factory)


class Watched(SqlTimelineStore):
    """Counts the batches in the database at once, and how each batch ended."""

    def __init__(self, db: Database, seqs: SeqAllocator[AsyncConnection] | None = None) -> None:
        super().__init__(db, seqs=seqs, batch_writers=2, batch_overlap_rows=1)
        self.began = asyncio.Event()  # set when a batch begins
        self.in_flight = 0
        self.most_in_flight = 0
        self.batches: list[list[str]] = []  # the contents of each batch attempted, in the order they began
        self.gave_way = 0  # batches rolled back because the one before them failed after their seqs

    async def _append_batch_once(self, batch: Sequence[PendingAppend], turn: Turn) -> list[Appended]:
        self.batches.append([p.body.content for p in batch])
        self.began.set()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super()._append_batch_once(batch, turn)
        except PrecedingBatchFailed:
            self.gave_way += 1
            raise
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def opened(
    backend: Backend, store_class: type[Watched] = Watched, hole_timeout: float = 0.3
) -> AsyncIterator[Watched]:
    async with backend.database() as db:
        assert db is not None
        if not backend.kind.endswith("+redis"):
            yield store_class(db)
            return
        url = require_redis()
        keys = Keys(f"tinyim-test-{uuid.uuid4().hex[:8]}:")
        client = Redis.from_url(url, decode_responses=True)
        try:
            # holes left by a failed batch that may have committed are skipped after hole_timeout: short
            # here unless a test says otherwise, so that nothing waits 10 s
            yield store_class(db, seqs=RedisSeqAllocator(db, client, keys, hole_timeout=hole_timeout))
        finally:
            await client.aclose()
            await delete_prefix(url, keys.prefix)


async def read_all(store: SqlTimelineStore, owner: int) -> list[tuple[int, str]]:
    """(seq, content) of the owner's whole timeline, once no hole can still fill."""
    async with asyncio.timeout(10):
        while True:
            page, more = await store.read(owner, 0, 1000)
            if not more:
                return [(m.seq_id, m.content) for m in page]
            await asyncio.sleep(0.1)


async def test_pipelining_senders_keep_their_order_and_every_owner_stays_gapless(backend: Backend) -> None:
    """12 senders each fire 8 messages without waiting for an ack (a pipelining connection), to shared
    receivers and a group: batches overlap, and still each sender's seqs follow its send order and every
    timeline is exactly 1..n."""
    receivers = [fresh_id() for _ in range(4)]
    senders = [fresh_id() for _ in range(12)]
    group_id = fresh_id()
    members = [*senders, *receivers]
    async with opened(backend) as store:

        async def sender(n: int, s: int) -> list[Appended]:
            pending = []
            for k in range(8):
                if k % 3 == 2:
                    message = MessageBody(fresh_id(), s, group_id, 0, f"{s}:{k}")
                    sent = store.append(message, group_slots(s, group_id, members))
                else:
                    receiver = receivers[(n + k) % len(receivers)]
                    sent = store.append(body(s, f"{s}:{k}"), slots(s, receiver))
                pending.append(asyncio.create_task(sent))
                await asyncio.sleep(0.001 * (k % 2))  # the next one goes while this one is in flight
            return list(await asyncio.gather(*pending))

        results = await asyncio.gather(*(sender(n, s) for n, s in enumerate(senders)))
        assert store.most_in_flight == 2  # the overlap happened
        assert store.gave_way == 0
        for s, sent in zip(senders, results, strict=True):
            own = [r.seqs[s] for r in sent]
            assert own == sorted(own) and len(set(own)) == 8  # in the order sent
        for owner in [*receivers, *senders]:
            timeline = await read_all(store, owner)
            assert [seq for seq, _ in timeline] == list(range(1, len(timeline) + 1)), owner
            for s in senders:  # each sender's messages reach the owner in the order they were sent
                ks = [int(c.split(":")[1]) for _, c in timeline if c.startswith(f"{s}:")]
                assert ks == sorted(ks)


class FailsAfterItsSeqs(Watched):
    """The batch holding "poison" fails after taking its seqs — once the batch after it is under way — as
    a deadlock or a dropped connection would; written alone, the message goes in."""

    def __init__(self, db: Database, seqs: SeqAllocator[AsyncConnection] | None = None) -> None:
        super().__init__(db, seqs)
        self.next_under_way = asyncio.Event()

    async def _append_batch_once(self, batch: Sequence[PendingAppend], turn: Turn) -> list[Appended]:
        poisoned = any(p.body.content == "poison" for p in batch)
        return await super()._append_batch_once(batch, _Sabotaged(turn, self, poisoned))


class _Sabotaged(Turn):
    def __init__(self, turn: Turn, store: FailsAfterItsSeqs, poisoned: bool) -> None:
        self._turn, self._store, self._poisoned = turn, store, poisoned

    async def before_bodies(self) -> None:
        await self._turn.before_bodies()
        if not self._poisoned:
            self._store.next_under_way.set()

    def took_seqs(self) -> None:
        self._turn.took_seqs()

    @property
    def conversations_clear(self) -> bool:
        return not self._poisoned and self._turn.conversations_clear  # the poisoned one must stop there

    async def before_conversations(self) -> None:
        if self._poisoned:
            await asyncio.wait_for(self._store.next_under_way.wait(), 5)
            await asyncio.sleep(0.01)  # its bodies, its seqs (Redis) or its wait for our seq rows (SQL)
            raise ConnectionResetError("the batch's connection dropped")
        await self._turn.before_conversations()

    def wrote_conversations(self) -> None:
        self._turn.wrote_conversations()

    @property
    def commit_clear(self) -> bool:
        return self._turn.commit_clear

    async def before_commit(self) -> None:
        await self._turn.before_commit()

    def committed(self) -> None:
        self._turn.committed()


async def _in_two_batches(
    store: Watched, first: list[tuple[MessageBody, Any]], second: list[tuple[MessageBody, Any]]
) -> list[Appended | BaseException]:
    """`first` queued together (one batch), then `second` once that batch began (the next batch)."""
    store.began.clear()
    tasks = [asyncio.create_task(store.append(b, s)) for b, s in first]
    await asyncio.wait_for(store.began.wait(), 5)
    tasks += [asyncio.create_task(store.append(b, s)) for b, s in second]
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_a_batch_failing_after_its_seqs_makes_the_next_give_way_and_order_holds(
    backend: Backend,
) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with opened(backend, FailsAfterItsSeqs, hole_timeout=60.0) as store:
        if isinstance(seqs := store._seqs, RedisSeqAllocator):
            await settled(seqs)
            for user in (a, b, c):  # counters that exist: nothing is marked for a while after a re-seed
                await seqs._redis.set(seqs._keys.seq(user), 0)
        results = await _in_two_batches(
            store,
            [(body(a, "a1"), slots(a, b)), (body(c, "poison"), slots(c, b))],
            [(body(a, "a2"), slots(a, b)), (body(c, "c2"), slots(c, b))],
        )
        assert all(isinstance(r, Appended) for r in results), results  # all acked
        assert store.batches[:2] == [["a1", "poison"], ["a2", "c2"]]
        assert store.gave_way == 1  # the second batch rolled back, then went one by one after the first
        a1, poison, a2, c2 = (r for r in results if isinstance(r, Appended))
        assert a1.seqs[a] < a2.seqs[a] and poison.seqs[c] < c2.seqs[c]  # nobody overtook
        # Both rolled back before their COMMIT: on Redis seqs, the holes they left are marked gone, and
        # the reader passes them at once (a minute's hole timeout here) once they are not the youngest
        await marks_done(store)
        await asyncio.sleep(0.06)
        page, more = await store.read(b, 0, 1000)
        assert [m.content for m in page] == ["a1", "poison", "a2", "c2"] and not more
        if not backend.kind.endswith("+redis"):  # locked rows: the rolled-back seqs are taken again
            assert [m.seq_id for m in page] == [1, 2, 3, 4]


async def test_a_batch_failing_at_its_bodies_holds_the_next_back_until_its_messages_are_written(
    backend: Backend,
) -> None:
    """A retried client_msg_id fails its batch at the body insert (before any seq): the next batch waits
    for its one-by-one writes, then commits as a batch — no hole, no rollback, order kept."""
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with opened(backend) as store:
        first = await store.append(body(c, "once", "cm-1"), slots(c, b))
        results = await _in_two_batches(
            store,
            [(body(a, "a1"), slots(a, b)), (body(c, "once", "cm-1"), slots(c, b))],
            [(body(a, "a2"), slots(a, b))],
        )
        a1, retry, a2 = results
        assert isinstance(a1, Appended) and isinstance(retry, Appended) and isinstance(a2, Appended)
        assert retry.duplicate and retry.msg_id == first.msg_id
        assert store.batches[1:] == [["a1", "once"], ["a2"]]  # the second written as a batch
        assert store.gave_way == 0
        assert a1.seqs[a] == 1 and a2.seqs[a] == 2
        assert await read_all(store, b) == [(1, "once"), (2, "a1"), (3, "a2")]  # no hole either
