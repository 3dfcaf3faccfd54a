"""Units of work of the relation service with the in-memory fakes, and the outbox relay."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.fakes import FakeUsers, RecordingNotices
from tinyim.kernel import NOT_FOUND, Caller, ImError
from tinyim.modules.relation import RelationService, RequestStatus
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryNoticeOutbox, InMemoryRelationUnits
from tinyim.modules.relation.domain import PendingNotice
from tinyim.modules.relation.outbox_relay import OutboxRelay

A, B, C = 1, 2, 3


class Env:
    def __init__(self) -> None:
        self.store = InMemoryRelationStore()
        self.units = InMemoryRelationUnits(self.store)
        self.notices = RecordingNotices()
        self.service = RelationService(self.store, FakeUsers(A, B, C), self.notices, units=self.units)


def me(user_id: int) -> Caller:
    return Caller(user_id, "PC")


async def test_a_command_is_one_commit_and_its_notice_is_delivered_right_after() -> None:
    env = Env()
    await env.service.apply_friend(me(A), B, "hi")
    commits = env.units.commits
    await env.service.handle_friend(me(B), A, agree=True)
    assert env.units.commits == commits + 1  # settle + befriend + notice: one transaction
    assert env.notices.events_for(A) == ["friend_accepted"]  # no relay run needed
    assert env.units.outbox.rows == []  # delivered: gone from the outbox


async def test_a_refused_command_rolls_back_and_tells_nobody() -> None:
    env = Env()
    commits, rollbacks = env.units.commits, env.units.rollbacks
    with pytest.raises(ImError) as err:
        await env.service.handle_friend(me(B), A, agree=True)
    assert err.value.code == NOT_FOUND
    assert (env.units.commits, env.units.rollbacks) == (commits, rollbacks + 1)
    assert env.notices.posts == 0 and env.units.outbox.rows == []


async def test_an_unreachable_timeline_leaves_the_change_and_the_notice_in_the_outbox() -> None:
    env = Env()
    await env.service.apply_friend(me(A), B, "hi")
    env.notices.fail_next = 1
    await env.service.handle_friend(me(B), A, agree=True)  # the change is made: no error for the caller
    assert (await env.store.pair_state(A, B)).friends
    assert env.notices.events_for(A) == [] and len(env.units.outbox.rows) == 1
    assert await env.service.drain_outbox() == 1
    assert env.notices.events_for(A) == ["friend_accepted"] and env.units.outbox.rows == []


async def test_the_working_copy_is_dropped_on_error_and_kept_on_commit() -> None:
    store = InMemoryRelationStore()
    units = InMemoryRelationUnits(store)
    await store.put_friend_request(A, B, "hi")
    with pytest.raises(RuntimeError):
        async with units.begin() as uow:
            await uow.store.settle_friend_request(A, B, RequestStatus.ACCEPTED)
            await uow.store.make_friends(A, B)
            await uow.outbox.add(PendingNotice.to_user(B, A, "{}"))
            assert not (await store.pair_state(A, B)).friends  # not visible outside before commit
            raise RuntimeError("crash")
    request = await store.friend_request(A, B)
    assert request is not None and request.status == RequestStatus.PENDING
    assert not (await store.pair_state(A, B)).friends and units.outbox.rows == []
    async with units.begin() as uow:
        await uow.store.make_friends(A, B)
        await uow.commit()
    assert (await store.pair_state(A, B)).friends and units.commits == 1


async def test_units_of_work_run_one_at_a_time_so_none_loses_the_others_writes() -> None:
    store = InMemoryRelationStore()
    units = InMemoryRelationUnits(store)

    async def befriend(other: int) -> None:
        async with units.begin() as uow:
            await asyncio.sleep(0)  # let the other one try to start meanwhile
            await uow.store.make_friends(A, other)
            await uow.commit()

    await asyncio.gather(befriend(B), befriend(C))
    assert await store.friend_ids(A) == [B, C]


def notices(n: int) -> list[PendingNotice]:
    return [PendingNotice.to_user(A, B, f'{{"event":"e{i}"}}') for i in range(n)]


async def test_the_relay_stops_at_the_first_failure_so_the_order_is_kept() -> None:
    outbox, sink = InMemoryNoticeOutbox(), RecordingNotices()
    outbox.rows = notices(3)
    relay = OutboxRelay(outbox, sink, batch=2)
    sink.fail_next = 1
    assert await relay.drain() == 0 and len(outbox.rows) == 3
    assert await relay.drain() == 3  # in batches of 2, oldest first
    assert sink.events_for(B) == ["e0", "e1", "e2"] and outbox.rows == []


async def test_the_background_relay_delivers_what_was_left_behind_a_pass_later() -> None:
    outbox, sink = InMemoryNoticeOutbox(), RecordingNotices()
    relay = OutboxRelay(outbox, sink)
    outbox.rows = notices(1)
    task = asyncio.create_task(relay.run(every_seconds=0.01))
    try:
        for _ in range(200):
            if not outbox.rows:
                break
            await asyncio.sleep(0.01)
        assert sink.events_for(B) == ["e0"] and outbox.rows == []
        assert sink.posts == 1  # first seen on one pass, delivered on the next: once
    finally:
        task.cancel()
