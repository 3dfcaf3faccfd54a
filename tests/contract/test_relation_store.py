"""RelationStore contract, on every adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.contract.conftest import Backend, fresh_id
from tinyim.modules.relation import GroupFull, GroupRole, RelationStatus, RelationStore, RequestStatus
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.sql import SqlRelationStore


@asynccontextmanager
async def open_store(backend: Backend) -> AsyncIterator[RelationStore]:
    async with backend.database() as db:
        yield InMemoryRelationStore() if db is None else SqlRelationStore(db)


async def test_friendship_rows_and_pair_state(backend: Backend) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with open_store(backend) as store:
        empty = await store.pair_state(a, b)
        assert (empty.a_to_b, empty.b_to_a, empty.a_blocks_b, empty.b_blocks_a) == (None, None, False, False)
        await store.make_friends(a, b)
        await store.make_friends(a, c)
        state = await store.pair_state(b, a)
        assert state.friends and (state.a_to_b, state.b_to_a) == (
            RelationStatus.NORMAL,
            RelationStatus.NORMAL,
        )
        await store.set_status(a, b, RelationStatus.DELETED)
        state = await store.pair_state(a, b)
        assert (state.a_to_b, state.b_to_a, state.friends) == (
            RelationStatus.DELETED,
            RelationStatus.NORMAL,
            False,
        )
        assert await store.friend_ids(a) == [c] and await store.friend_ids(b) == [a]
        await store.make_friends(b, a)  # adding back restores the deleted row
        assert await store.friend_ids(a) == sorted([b, c])


async def test_blacklist(backend: Backend) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with open_store(backend) as store:
        await store.block(a, b)
        await store.block(a, b)  # idempotent
        await store.block(c, a)
        state = await store.pair_state(a, b)
        assert state.a_blocks_b and not state.b_blocks_a
        assert await store.blocked_ids(a) == [b]
        assert await store.blockers_of(a, [b, c]) == {c}
        assert await store.blockers_of(a, []) == set()
        await store.unblock(a, b)
        await store.unblock(a, b)
        assert await store.blocked_ids(a) == [] and not (await store.pair_state(a, b)).a_blocks_b


async def test_friend_requests_are_settled_once(backend: Backend) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(backend) as store:
        assert await store.friend_request(a, b) is None
        await store.put_friend_request(a, b, "hi")
        request = await store.friend_request(a, b)
        assert request is not None and (request.reason, request.status) == ("hi", RequestStatus.PENDING)
        results = await asyncio.gather(
            *(store.settle_friend_request(a, b, RequestStatus.ACCEPTED) for _ in range(5))
        )
        assert sorted(results) == [False] * 4 + [True]
        assert not await store.settle_friend_request(a, b, RequestStatus.REJECTED)
        await store.put_friend_request(a, b, "again")  # a new request reuses the row
        again = await store.friend_request(a, b)
        assert again is not None and (again.reason, again.status) == ("again", RequestStatus.PENDING)
        assert await store.friend_request(b, a) is None


async def test_groups_and_members(backend: Backend) -> None:
    owner, m1, m2, outsider = fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with open_store(backend) as store:
        gid = await store.create_group("同学群", owner, [m1, m2])
        group = await store.group(gid)
        assert group is not None and (group.name, group.owner_id, group.member_count) == ("同学群", owner, 3)
        assert await store.member_ids(gid) == sorted([owner, m1, m2])
        assert {m.user_id: m.role for m in await store.members(gid)} == {
            owner: GroupRole.OWNER,
            m1: GroupRole.MEMBER,
            m2: GroupRole.MEMBER,
        }
        assert await store.role(gid, owner) == GroupRole.OWNER and await store.role(gid, outsider) is None
        assert [g.group_id for g in await store.groups_of(m1)] == [gid] and await store.groups_of(
            outsider
        ) == []
        assert await store.remove_member(gid, m2) and not await store.remove_member(gid, m2)
        await store.add_member(gid, outsider, limit=3)
        await store.add_member(gid, outsider, limit=3)  # already in: nothing changes
        with pytest.raises(GroupFull):
            await store.add_member(gid, m2, limit=3)
        assert (await store.group(gid)).member_count == 3  # type: ignore[union-attr]
        assert await store.group(10**15) is None


async def test_concurrent_joins_never_overshoot_the_limit(backend: Backend) -> None:
    owner = fresh_id()
    joiners = [fresh_id() for _ in range(10)]
    async with open_store(backend) as store:
        gid = await store.create_group("race", owner, [])

        async def join(user: int) -> bool:
            try:
                await store.add_member(gid, user, limit=5)
                return True
            except GroupFull:
                return False

        results = await asyncio.gather(*(join(u) for u in joiners))
        assert sum(results) == 4 and len(await store.member_ids(gid)) == 5


async def test_join_requests(backend: Backend) -> None:
    owner, applicant = fresh_id(), fresh_id()
    async with open_store(backend) as store:
        gid = await store.create_group("g", owner, [])
        assert await store.join_request(gid, applicant) is None
        await store.put_join_request(gid, applicant)
        assert await store.join_request(gid, applicant) == RequestStatus.PENDING
        assert await store.settle_join_request(gid, applicant, RequestStatus.REJECTED)
        assert not await store.settle_join_request(gid, applicant, RequestStatus.ACCEPTED)
        assert await store.join_request(gid, applicant) == RequestStatus.REJECTED
        await store.put_join_request(gid, applicant)
        assert await store.join_request(gid, applicant) == RequestStatus.PENDING
