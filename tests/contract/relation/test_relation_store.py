"""RelationStore contract, on every adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.contract.conftest import Backend, fresh_id
from tinyim.modules.relation import (
    GroupFull,
    GroupGone,
    GroupRole,
    RelationStatus,
    RelationStore,
    RequestStatus,
)
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


async def test_nobody_joins_a_dissolved_group(backend: Backend) -> None:
    """A join approved after the group was read but after it was dissolved adds nobody."""
    owner, joiner = fresh_id(), fresh_id()
    async with open_store(backend) as store:
        gid = await store.create_group("short-lived", owner, [])
        assert await store.dissolve_group(gid)
        with pytest.raises(GroupGone):
            await store.add_member(gid, joiner, limit=5)
        with pytest.raises(GroupGone):
            await store.add_member(10**15, joiner, limit=5)  # never existed
        assert await store.role(gid, joiner) is None and await store.groups_of(joiner) == []


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


# ---------- group owner actions ----------
async def test_transfer_owner_swaps_roles_once(backend: Backend) -> None:
    owner, m1, m2, outsider = fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with open_store(backend) as store:
        gid = await store.create_group("t", owner, [m1, m2])
        assert not await store.transfer_owner(gid, owner, outsider)  # not a member
        assert not await store.transfer_owner(gid, m1, m2)  # not the owner
        # racing transfers by the same owner: exactly one wins
        results = await asyncio.gather(
            store.transfer_owner(gid, owner, m1), store.transfer_owner(gid, owner, m2)
        )
        assert sorted(results) == [False, True]
        new_owner = m1 if results[0] else m2
        group = await store.group(gid)
        assert group is not None and group.owner_id == new_owner
        roles = {m.user_id: m.role for m in await store.members(gid)}
        assert roles[new_owner] == GroupRole.OWNER and roles[owner] == GroupRole.MEMBER
        assert sorted(roles.values()).count(GroupRole.OWNER) == 1


async def test_set_role_never_touches_the_owner(backend: Backend) -> None:
    owner, m1 = fresh_id(), fresh_id()
    async with open_store(backend) as store:
        gid = await store.create_group("r", owner, [m1])
        await store.set_role(gid, m1, GroupRole.ADMIN)
        assert await store.role(gid, m1) == GroupRole.ADMIN
        await store.set_role(gid, owner, GroupRole.MEMBER)
        assert await store.role(gid, owner) == GroupRole.OWNER
        await store.set_role(gid, m1, GroupRole.MEMBER)
        assert await store.role(gid, m1) == GroupRole.MEMBER


async def test_update_group_sets_only_the_given_fields(backend: Backend) -> None:
    owner = fresh_id()
    async with open_store(backend) as store:
        gid = await store.create_group("old", owner, [])
        await store.update_group(gid, None, "公告\nline two")
        await store.update_group(gid, "新名字", None)
        group = await store.group(gid)
        assert group is not None and (group.name, group.announcement) == ("新名字", "公告\nline two")
        await store.update_group(gid, None, "")
        assert (await store.group(gid)).announcement == ""  # type: ignore[union-attr]


async def test_dissolve_group_removes_it_and_its_members(backend: Backend) -> None:
    owner, m1 = fresh_id(), fresh_id()
    async with open_store(backend) as store:
        gid = await store.create_group("d", owner, [m1])
        keep = await store.create_group("k", owner, [m1])
        assert await store.dissolve_group(gid) and not await store.dissolve_group(gid)
        assert await store.group(gid) is None and await store.member_ids(gid) == []
        assert await store.role(gid, owner) is None
        assert [g.group_id for g in await store.groups_of(m1)] == [keep]


async def test_past_co_members_are_those_who_overlapped_in_a_group(backend: Backend) -> None:
    """Membership history: ended memberships (left, removed, dissolved) still count, as long as the two
    overlapped in time; someone who joined after another left never shared the group with them."""
    owner, stays, leaves, late, stranger = (fresh_id() for _ in range(5))
    async with open_store(backend) as store:
        gid = await store.create_group("h", owner, [stays, leaves])
        assert await store.past_co_members(stays, [leaves, late, stranger]) == {leaves}  # current too
        assert await store.remove_member(gid, leaves)
        assert not await store.remove_member(gid, leaves)
        assert await store.past_co_members(stays, [leaves, late, stranger]) == {leaves}
        assert await store.past_co_members(leaves, [owner, stays, stranger]) == {owner, stays}
        if backend.kind != "memory":
            await asyncio.sleep(1.1)  # SQL times are in whole seconds: join strictly after the leave
        await store.add_member(gid, late, 500)
        assert await store.past_co_members(late, [leaves, stays]) == {stays}
        assert await store.past_co_members(leaves, [late]) == set()
        assert await store.dissolve_group(gid)
        assert await store.past_co_members(late, [owner, stays, leaves, stranger]) == {owner, stays}
        assert await store.past_co_members(stranger, [owner, stays, leaves, late]) == set()
        assert await store.past_co_members(owner, []) == set()


# ---------- online status ----------
async def test_listed_by_sees_the_rows_pointing_at_a_user(backend: Backend) -> None:
    a, b, c, d = fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with open_store(backend) as store:
        await store.make_friends(a, b)
        await store.make_friends(a, c)
        await store.set_status(c, a, RelationStatus.DELETED)  # c deleted a: c no longer lists a
        assert await store.listed_by(a, [b, c, d]) == {b}
        assert await store.listed_by(b, [a]) == {a} and await store.listed_by(a, []) == set()
