"""The Redis seq allocator where it differs from the locked row: lost counters, collisions, holes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from tests.contract.conftest import Backend, fresh_id, make_backend
from tests.contract.timeline.test_timeline_store import body, slots
from tests.support.services import delete_prefix, require_redis
from tinyim.infra.db import Database
from tinyim.infra.redis import Keys
from tinyim.modules.timeline.adapters.redis_seq import RedisSeqAllocator
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore


@pytest.fixture(params=["sqlite+redis", "mariadb+redis"])
def redis_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend(request.param, request, tmp_path_factory)  # migrates outside the event loop


@asynccontextmanager
async def redis_allocator(
    backend: Backend, hole_timeout: float
) -> AsyncIterator[tuple[Database, RedisSeqAllocator, Redis, Keys]]:
    """The backend's database and an allocator on Redis under a prefix of its own (removed after)."""
    url = require_redis()
    keys = Keys(f"tinyim-test-{uuid.uuid4().hex[:8]}:")
    client = Redis.from_url(url, decode_responses=True)
    async with backend.database() as db:
        assert db is not None
        yield db, RedisSeqAllocator(db, client, keys, hole_timeout=hole_timeout), client, keys
    await client.aclose()
    await delete_prefix(url, keys.prefix)


@pytest.fixture
async def env(
    redis_backend: Backend,
) -> AsyncIterator[tuple[SqlTimelineStore, RedisSeqAllocator, Redis, Keys]]:
    async with redis_allocator(redis_backend, hole_timeout=0.4) as (db, seqs, client, keys):
        yield SqlTimelineStore(db, seqs=seqs), seqs, client, keys


async def test_lost_counters_restart_from_what_is_committed(
    env: tuple[SqlTimelineStore, RedisSeqAllocator, Redis, Keys],
) -> None:
    store, _, redis, keys = env
    a, b = fresh_id(), fresh_id()
    for _ in range(3):
        await store.append(body(a), slots(a, b))
    await redis.delete(keys.seq(a), keys.seq(b))  # what FLUSHALL or a restart without persistence does
    result = await store.append(body(a), slots(a, b))
    assert result.seqs == {a: 4, b: 4}  # never backwards
    page, _ = await store.read(b, 0, 10)
    assert [m.seq_id for m in page] == [1, 2, 3, 4]


async def test_a_counter_below_an_inflight_seq_collides_and_retries(
    env: tuple[SqlTimelineStore, RedisSeqAllocator, Redis, Keys],
) -> None:
    store, _, redis, keys = env
    a, b = fresh_id(), fresh_id()
    for _ in range(5):
        await store.append(body(a), slots(a, b))
    await redis.set(keys.seq(b), 2)  # re-seeded too low: seq 3 of b exists
    result = await store.append(body(a), slots(a, b))
    assert result.seqs[b] == 6 and await redis.get(keys.seq(b)) == "6"
    page, _ = await store.read(b, 0, 10)
    assert [m.seq_id for m in page] == [1, 2, 3, 4, 5, 6]


async def test_sync_waits_at_a_hole_then_skips_it_when_it_cannot_fill(
    env: tuple[SqlTimelineStore, RedisSeqAllocator, Redis, Keys],
) -> None:
    store, _, redis, keys = env
    a, b = fresh_id(), fresh_id()
    await store.append(body(a, "one"), slots(a, b))
    await redis.incr(keys.seq(b))  # seq 2 of b taken by a transaction that then died
    await store.append(body(a, "three"), slots(a, b))
    page, more = await store.read(b, 1, 10)
    assert page == [] and more  # seq 2 may still be written: do not let the client pass it
    page, more = await store.read(b, 0, 10)
    assert [m.content for m in page] == ["one"] and more
    await asyncio.sleep(0.5)  # longer than the hole timeout: nobody can still be writing seq 2
    page, more = await store.read(b, 1, 10)
    assert [(m.seq_id, m.content) for m in page] == [(3, "three")] and not more
    assert await store.max_seq(b) == 3


async def test_a_late_hole_filler_is_not_skipped(
    env: tuple[SqlTimelineStore, RedisSeqAllocator, Redis, Keys],
) -> None:
    """A slow transaction holding seq 2 commits after seq 3 (written by another node): the reader waited
    for it and gets both."""
    store, seqs, _, _ = env
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    await store.append(body(a, "one"), slots(a, b))
    gate = asyncio.Event()
    original = seqs._allocate

    async def slow_allocate(counts: Mapping[int, int]) -> dict[int, int]:
        seqs = await original(counts)
        if a in counts:
            await gate.wait()  # hold seq 2 of b inside a transaction for a while
        return seqs

    seqs._allocate = slow_allocate  # type: ignore[method-assign]
    slow = asyncio.create_task(store.append(body(a, "two"), slots(a, b)))
    await asyncio.sleep(0.05)
    seqs._allocate = original  # type: ignore[method-assign]
    if "sqlite" in str(store._db.url):
        gate.set()  # SQLite has one writer at a time: the slow one must finish first
        await slow
    else:
        # another msg node (its own batch writer): commits first, with seq 3
        other = SqlTimelineStore(store._db, seqs=seqs)
        await other.append(body(c, "three"), slots(c, b))
        page, more = await store.read(b, 1, 10)
        assert page == [] and more
        gate.set()
        await slow
    page, _ = await store.read(b, 0, 10)
    assert [m.content for m in page][:2] == ["one", "two"]


async def test_concurrent_appends_share_batches_and_stay_gapless(
    env: tuple[SqlTimelineStore, RedisSeqAllocator, Redis, Keys],
) -> None:
    """Group commit on Redis seqs: each owner's block for a batch comes from one INCRBY; 30 senders to 3
    shared receivers give every receiver 1..n with no hole, in far fewer commits than messages."""
    from tinyim.infra import metrics

    store, _, redis, keys = env
    receivers = [fresh_id() for _ in range(3)]
    senders = [fresh_id() for _ in range(30)]

    async def sender(s: int) -> None:
        for n in range(4):
            await store.append(body(s, f"{n}"), slots(s, receivers[n % 3]))

    before = metrics.DB_COMMITS._value.get()
    await asyncio.gather(*(sender(s) for s in senders))
    assert metrics.DB_COMMITS._value.get() - before < 30 * 4 / 2
    for r, count in zip(receivers, (60, 30, 30), strict=True):  # messages 0 and 3 of each sender, 1, 2
        page, more = await store.read(r, 0, 100)
        assert [m.seq_id for m in page] == list(range(1, count + 1)) and not more
        assert await redis.get(keys.seq(r)) == str(count)
    for s in senders:
        page, _ = await store.read(s, 0, 10)
        assert [m.content for m in page] == ["0", "1", "2", "3"]


async def test_a_group_message_costs_two_statements_and_one_round_trip_whatever_its_size(
    redis_backend: Backend,
) -> None:
    """Issue budget for a group message on Redis seqs (≤ 3): body and index rows (one multi-row statement
    each; no conversation row, the list reads a group from the index) and ONE Redis round trip (every
    member's INCRBY in one script call), for 3 members as for 200."""
    import contextlib

    from tinyim.infra import metrics
    from tinyim.infra.redis import redis_client
    from tinyim.modules.timeline import MessageBody
    from tinyim.modules.timeline.domain import group_slots

    def counters() -> tuple[float, float]:
        return float(metrics.DB_STATEMENTS._value.get()), float(metrics.REDIS_ROUND_TRIPS._value.get())

    url = require_redis()
    keys = Keys(f"tinyim-test-{uuid.uuid4().hex[:8]}:")
    async with (
        contextlib.asynccontextmanager(redis_client)(url) as client,
        redis_backend.database() as db,
    ):
        assert db is not None
        store = SqlTimelineStore(db, seqs=RedisSeqAllocator(db, client, keys))
        costs = {}
        for size in (3, 200):
            members, g = [fresh_id() for _ in range(size)], fresh_id()
            await store.append(
                MessageBody(fresh_id(), members[0], g, 0, "warm-up"), group_slots(members[0], g, members)
            )
            before = counters()
            await store.append(
                MessageBody(fresh_id(), members[1], g, 0, "counted"), group_slots(members[1], g, members)
            )
            after = counters()
            costs[size] = (after[0] - before[0], after[1] - before[1])
            page, _ = await store.read(members[-1], 0, 10)
            assert [m.content for m in page] == ["warm-up", "counted"]
    await delete_prefix(url, keys.prefix)
    assert costs == {3: (2, 1), 200: (2, 1)}
