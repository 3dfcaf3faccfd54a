"""Seqs a rolled-back transaction took on Redis seqs: marked gone, so that a sync passes their hole at once
instead of waiting out the hole timeout (a minute here: a test that passes did not wait it out) — and
never marked while another transaction could still commit the same seq."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.contract.conftest import Backend, fresh_id, make_backend
from tests.contract.timeline.test_redis_seq import redis_allocator
from tests.contract.timeline.test_timeline_store import body, slots
from tinyim.infra.redis import Keys
from tinyim.infra.snowflake import Snowflake
from tinyim.modules.timeline.adapters import redis_seq
from tinyim.modules.timeline.adapters.redis_seq import RedisSeqAllocator
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore, TakenSeqs
from tinyim.modules.timeline.domain import MessageBody, StoredMessage, TimelineSlot


@pytest.fixture(params=["sqlite+redis", "mariadb+redis"])
def redis_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend(request.param, request, tmp_path_factory)  # migrates outside the event loop


class Doomed(SqlTimelineStore):
    """A message with the content "doomed" fails its transaction after its seqs are taken (batch and
    single paths alike), before the COMMIT; `meanwhile` runs between the take and the failure."""

    meanwhile: Callable[[], Awaitable[object]] | None = None

    async def _fail_if_doomed(self, contents: list[str]) -> None:
        if "doomed" in contents:
            if self.meanwhile is not None:
                await self.meanwhile()
            raise RuntimeError("the transaction failed after taking its seqs")

    async def _write_bodies_and_take_seqs(
        self,
        conn: AsyncConnection,
        bodies: list[tuple[Any, ...]],
        counts: Mapping[int, int],
        taken: TakenSeqs,
    ) -> dict[int, int]:
        top = await super()._write_bodies_and_take_seqs(conn, bodies, counts, taken)
        await self._fail_if_doomed([str(field) for row in bodies for field in row])
        return top

    async def _write_message(
        self,
        conn: AsyncConnection,
        body: MessageBody,
        slots: Sequence[TimelineSlot],
        recall: tuple[int, int] | None,
        owners_out: list[int],
        taken: TakenSeqs,
    ) -> dict[int, int]:
        seqs = await super()._write_message(conn, body, slots, recall, owners_out, taken)
        await self._fail_if_doomed([body.content])
        return seqs


Env = tuple[Doomed, RedisSeqAllocator, Redis, Keys]


async def settled(seqs: RedisSeqAllocator) -> None:
    """As if this process had known the Redis it takes seqs from for an hour (a fresh process marks
    nothing for its first seconds: a transaction of an earlier run may hold the seqs it hands out)."""
    seqs._run = (await seqs._identity(), time.monotonic() - 3600)


async def marks_done(store: SqlTimelineStore) -> None:
    """The marking of rolled-back seqs runs beside the failure: wait for it."""
    await asyncio.gather(*list(store._marking))


@pytest.fixture
async def env(redis_backend: Backend) -> AsyncIterator[Env]:
    async with redis_allocator(redis_backend, hole_timeout=60.0) as (db, seqs, client, keys):
        await settled(seqs)
        yield Doomed(db, seqs=seqs), seqs, client, keys


async def users_with_counters(redis: Redis, keys: Keys) -> tuple[int, int]:
    """Two users whose seq counters exist (a missing one is re-seeded, and for a while after a re-seed
    nothing of that user is marked gone)."""
    a, b = fresh_id(), fresh_id()
    await redis.set(keys.seq(a), 0)
    await redis.set(keys.seq(b), 0)
    return a, b


def gone_key(keys: Keys, user: int) -> str:
    return f"{keys.seq_gone_prefix()}{user}"


async def test_a_rolled_back_transaction_leaves_no_hole_to_wait_at(env: Env) -> None:
    """The doomed message's batch and then its one-by-one write both take seqs and roll back: those
    seqs are marked gone (for minutes: the next message may come much later), and the receiver's sync
    passes them at once instead of stopping for 10 s."""
    store, _, redis, keys = env
    a, b = await users_with_counters(redis, keys)
    await store.append(body(a, "one"), slots(a, b))
    with pytest.raises(RuntimeError):
        await store.append(body(a, "doomed"), slots(a, b))
    await store.append(body(a, "four"), slots(a, b))  # seqs 2 and 3 went to the doomed attempts
    await marks_done(store)
    assert await redis.smembers(gone_key(keys, b)) == {"2", "3"}
    assert await redis.ttl(gone_key(keys, b)) > 500
    page, more = await store.read(b, 1, 10)
    if not page:  # the sync came within 50 ms of seq 4's id: a hole that young is not asked about
        await asyncio.sleep(0.06)
        page, more = await store.read(b, 1, 10)
    assert [(m.seq_id, m.content) for m in page] == [(4, "four")] and not more
    page, more = await store.read(a, 0, 10)
    assert [(m.seq_id, m.content) for m in page] == [(1, "one"), (4, "four")] and not more


async def test_seqs_a_re_seeded_counter_may_hand_out_again_are_not_marked(env: Env) -> None:
    """b's counter is lost and re-seeded while the doomed transaction holds seq 2 of b: the re-seed may
    give seq 2 to another writer, so the doomed one must not mark it gone; the reader waits at it."""
    store, seqs, redis, keys = env
    a, b = await users_with_counters(redis, keys)
    await store.append(body(a, "one"), slots(a, b))

    async def lose_and_re_seed() -> None:
        await redis.delete(keys.seq(b))
        assert await seqs._allocate({b: 1}) == {b: 2}  # another writer now holds seq 2 of b

    store.meanwhile = lose_and_re_seed
    with pytest.raises(RuntimeError):
        await store.append(body(a, "doomed"), slots(a, b))
    store.meanwhile = None
    await store.append(body(a, "late"), slots(a, b))
    await marks_done(store)
    await asyncio.sleep(0.06)  # old enough a hole to be asked about
    page, more = await store.read(b, 1, 10)
    assert page == [] and more  # seq 2 of b may still be written by its other holder
    assert not await redis.exists(gone_key(keys, b))
    assert await redis.smembers(gone_key(keys, a))  # a's counter was never lost


async def test_a_re_seed_drops_the_marks_of_seqs_it_may_hand_out_again(env: Env) -> None:
    """Marks are left for seqs above what is committed; once the counter is lost and re-seeded from the
    committed top, those seqs go out again, so the re-seed drops the owner's marks."""
    store, seqs, redis, keys = env
    a, b = await users_with_counters(redis, keys)
    await store.append(body(a, "one"), slots(a, b))
    with pytest.raises(RuntimeError):
        await store.append(body(a, "doomed"), slots(a, b))
    await marks_done(store)
    assert await redis.smembers(gone_key(keys, b)) == {"2", "3"}
    await redis.delete(keys.seq(b))  # lost: the next take re-seeds from the committed top, 1
    assert await seqs._allocate({b: 1}) == {b: 2}
    assert not await redis.exists(gone_key(keys, b))
    assert await redis.exists(f"{keys.seq_reseeded_prefix()}{b}")


async def test_a_collision_repair_does_not_re_create_a_lost_counter(env: Env) -> None:
    """The repair after a collision raises an existing counter; a lost one is left to the re-seed (which
    leaves the marker that keeps its seqs from being marked gone)."""
    store, seqs, redis, keys = env
    a, b = await users_with_counters(redis, keys)
    await store.append(body(a, "one"), slots(a, b))
    await store.append(body(a, "two"), slots(a, b))
    await redis.set(keys.seq(a), 1)  # behind what is committed
    await redis.delete(keys.seq(b))
    await seqs._raise_to_committed([a, b])
    assert await redis.get(keys.seq(a)) == "2" and not await redis.exists(keys.seq(b))


async def test_nothing_is_marked_for_seqs_taken_near_a_redis_restart(env: Env) -> None:
    """A restart (or a failover) may bring back an older counter that hands the same seqs out again,
    while transactions of the earlier run still hold them: seqs taken before the new run id was seen,
    or within the settling time after it, are not marked; later ones are."""
    store, seqs, redis, keys = env
    a, b = await users_with_counters(redis, keys)
    await store.append(body(a, "one"), slots(a, b))

    async def restarted() -> str | None:
        return "another-run"

    seqs._identity = restarted  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):  # its batch took seq 2 before the new run was seen, then seq 3
        await store.append(body(a, "doomed"), slots(a, b))
    await marks_done(store)
    assert not await redis.exists(gone_key(keys, b))
    await store.append(body(a, "late"), slots(a, b))
    await asyncio.sleep(0.06)
    page, more = await store.read(b, 1, 10)
    assert page == [] and more  # seq 2 may have been handed out again
    assert seqs._run is not None and seqs._run[0] == "another-run"
    seqs._run = ("another-run", time.monotonic() - 3600)  # the settling time is over
    with pytest.raises(RuntimeError):
        await store.append(body(a, "doomed"), slots(a, b))
    await marks_done(store)
    assert await redis.smembers(gone_key(keys, b)) == {"5", "6"}


async def test_nothing_is_marked_late_or_past_the_counter(env: Env) -> None:
    """Taken longer ago than a transaction lives (a re-seed's marker may be gone by now), or seqs the
    counter never handed out: nothing is marked."""
    _, seqs, redis, keys = env
    _, b = await users_with_counters(redis, keys)
    await redis.set(keys.seq(b), 5)
    await seqs.abandon({b: range(4, 6)}, time.monotonic() - 10)  # taken 10 s ago: past the window
    assert not await redis.exists(gone_key(keys, b))
    await seqs.abandon({b: range(4, 7)}, time.monotonic())  # seq 6 is past the counter: not handed out
    assert not await redis.exists(gone_key(keys, b))
    await seqs.abandon({b: range(4, 6)}, time.monotonic())
    assert await redis.smembers(gone_key(keys, b)) == {"4", "5"}


def stored(seq: int, age_ms: int) -> StoredMessage:
    """A message of seq `seq` whose id says it was sent `age_ms` ago."""
    msg_id = Snowflake(1, clock_ms=lambda: time.time_ns() // 1_000_000 - age_ms).next_id()
    return StoredMessage(seq, msg_id, 1, 2, 0, 0, f"m{seq}", "", False)


async def test_a_reader_passes_only_holes_wholly_gone(env: Env) -> None:
    _, seqs, redis, keys = env
    owner = fresh_id()
    await redis.sadd(gone_key(keys, owner), 2, 3, 6)
    # 2-3 gone, 5-6 only partly: the reader passes the first hole and stops at the second
    page = [stored(1, 500), stored(4, 500), stored(7, 500)]
    seen, more = await seqs.visible(owner, page, 0, False)
    assert [m.seq_id for m in seen] == [1, 4] and more
    # a hole younger than the check's delay is not asked about: most likely still being written
    seen, more = await seqs.visible(owner, [stored(1, 500), stored(4, -1000)], 0, False)
    assert [m.seq_id for m in seen] == [1] and more
    # a young hole only partly gone (5 is not): stop before it
    seen, more = await seqs.visible(owner, [stored(6, 500)], 4, True)
    assert seen == [] and more
    # a hole older than the hole timeout is passed anyway, gone or not
    seen, more = await seqs.visible(owner, [stored(6, 90_000), stored(9, 500)], 4, False)
    assert [m.seq_id for m in seen] == [6] and more


async def test_a_hole_wider_than_a_reader_asks_about_is_waited_at(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, seqs, redis, keys = env
    owner = fresh_id()
    await redis.sadd(gone_key(keys, owner), *range(2, 12))
    monkeypatch.setattr(redis_seq, "GONE_SEQS_CHECKED", 4)
    seen, more = await seqs.visible(owner, [stored(1, 500), stored(12, 500)], 0, False)
    assert [m.seq_id for m in seen] == [1] and more
    monkeypatch.setattr(redis_seq, "GONE_SEQS_CHECKED", 10)
    seen, more = await seqs.visible(owner, [stored(1, 500), stored(12, 500)], 0, False)
    assert [m.seq_id for m in seen] == [1, 12] and not more


async def test_redis_away_means_waiting_at_the_hole_not_a_failed_sync(env: Env) -> None:
    _, seqs, redis, keys = env
    owner = fresh_id()
    await redis.sadd(gone_key(keys, owner), 2)

    async def away(*_args: object) -> list[int]:
        raise RedisConnectionError("Redis is away")

    seqs._redis.smismember = away  # type: ignore[method-assign,assignment]
    seen, more = await seqs.visible(owner, [stored(1, 500), stored(3, 500)], 0, False)
    assert [m.seq_id for m in seen] == [1] and more


@pytest.mark.parametrize(
    "changed",
    [
        {"role": "slave"},  # a replica: its counters trail the master's
        {"maxmemory": "1048576", "maxmemory_policy": "volatile-lru"},  # a re-seed marker could be evicted
        {"maxmemory": "1048576", "maxmemory_policy": "allkeys-lfu"},
    ],
)
async def test_nothing_is_trusted_on_a_replica_or_a_redis_that_may_evict(
    env: Env, changed: dict[str, str]
) -> None:
    _, seqs, redis, _ = env
    info = await redis.info("server", "replication", "memory")
    assert await seqs._identity() is not None

    async def seen(*_sections: str) -> dict[str, Any]:
        return {**info, **changed}

    seqs._redis.info = seen  # type: ignore[method-assign,assignment]
    assert await seqs._identity() is None


async def test_a_promotion_is_another_redis_even_with_the_same_run_id(env: Env) -> None:
    """A server demoted to replica and promoted again keeps its run id; its replication id changes."""
    _, seqs, redis, _ = env
    info = await redis.info("server", "replication", "memory")
    before = await seqs._identity()

    async def promoted(*_sections: str) -> dict[str, Any]:
        return {**info, "master_replid": "f" * 40}

    seqs._redis.info = promoted  # type: ignore[method-assign,assignment]
    assert await seqs._identity() not in (None, before)
