"""relation service with in-memory fakes: friends, blacklist, groups, and the messaging rules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakeUsers, RecordingNotices
from tinyim.kernel import (
    ALREADY_EXISTS,
    BLOCKED,
    GROUP_FULL,
    INVALID_ARGUMENT,
    NOT_FOUND,
    NOT_FRIENDS,
    NOT_MEMBER,
    PERMISSION_DENIED,
    Caller,
    ImError,
)
from tinyim.modules.relation import GroupRole, RelationApi, RelationService, RelationStatus, RequestStatus
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryRelationUnits
from tinyim.modules.relation.adapters.rpc import GrpcRelationClient, user_registrar
from tinyim.pb.im_internal_pb2_grpc import UserServiceStub

A, B, C, D = 1, 2, 3, 4


class Env:
    def __init__(self, group_limit: int = 500) -> None:
        self.store = InMemoryRelationStore()
        self.users = FakeUsers(A, B, C, D)
        self.notices = RecordingNotices()
        self.units = InMemoryRelationUnits(self.store)
        self.service: RelationApi = RelationService(
            self.store, self.users, self.notices, group_limit=group_limit, units=self.units
        )

    async def befriend(self, x: int, y: int) -> None:
        await self.service.apply_friend(Caller(x, "PC"), y, "hi")
        await self.service.handle_friend(Caller(y, "PC"), x, agree=True)


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """The RelationApi contract: the local service, and the gRPC client adapter in front of it."""
    env = Env()
    async with remote_if(request.param, "user", user_registrar(env.service), UserServiceStub) as remote:
        if remote is not None:
            env.service = GrpcRelationClient(remote)
        yield env


def me(user_id: int) -> Caller:
    return Caller(user_id, "PC")


async def expect(code: str, coro: object) -> None:
    with pytest.raises(ImError) as exc:
        await coro  # type: ignore[misc]
    assert exc.value.code == code, exc.value.message


# ---------- friends ----------
async def test_apply_records_a_pending_request_and_tells_the_target(env: Env) -> None:
    assert not await env.service.apply_friend(me(A), B, "  I am A  ")
    request = await env.store.friend_request(A, B)
    assert request is not None and (request.status, request.reason) == (RequestStatus.PENDING, "I am A")
    assert env.notices.to_users == [
        (A, B, {"event": "friend_request", "request_uid": A, "reason": "I am A"}, True)
    ]
    assert env.store.relations == {}


async def test_agree_makes_two_rows_and_tells_the_applicant(env: Env) -> None:
    await env.befriend(A, B)
    assert env.store.relations == {(A, B): RelationStatus.NORMAL, (B, A): RelationStatus.NORMAL}
    assert env.notices.events_for(A) == ["friend_accepted"]
    assert [p.user_id for p in await env.service.friends(me(A))] == [B]
    assert [(p.user_id, p.nickname) for p in await env.service.friends(me(B))] == [(A, "User 1")]


async def test_reject_tells_the_applicant_and_makes_no_friends(env: Env) -> None:
    await env.service.apply_friend(me(A), B, "")
    await env.service.handle_friend(me(B), A, agree=False)
    assert env.store.relations == {} and env.notices.events_for(A) == ["friend_rejected"]
    # A may ask again after a rejection.
    await env.service.apply_friend(me(A), B, "please")
    assert (await env.store.friend_request(A, B)).status == RequestStatus.PENDING  # type: ignore[union-attr]


async def test_duplicate_requests_and_friends_get_a_clear_answer(env: Env) -> None:
    await env.service.apply_friend(me(A), B, "")
    await expect(ALREADY_EXISTS, env.service.apply_friend(me(A), B, "again"))
    await env.service.handle_friend(me(B), A, agree=True)
    await expect(ALREADY_EXISTS, env.service.apply_friend(me(A), B, "and again"))
    await expect(ALREADY_EXISTS, env.service.apply_friend(me(B), A, "the other way"))


async def test_only_the_target_can_handle_and_only_once(env: Env) -> None:
    await env.service.apply_friend(me(A), B, "")
    await expect(NOT_FOUND, env.service.handle_friend(me(C), A, agree=True))  # not addressed to C
    await expect(NOT_FOUND, env.service.handle_friend(me(A), B, agree=True))  # A cannot accept for B
    await env.service.handle_friend(me(B), A, agree=True)
    await expect(NOT_FOUND, env.service.handle_friend(me(B), A, agree=False))


async def test_applying_back_to_a_pending_applicant_makes_friends_at_once(env: Env) -> None:
    await env.service.apply_friend(me(A), B, "")
    assert await env.service.apply_friend(me(B), A, "")
    assert (await env.store.pair_state(A, B)).friends
    assert env.notices.events_for(A) == ["friend_accepted"]


async def test_apply_refusals(env: Env) -> None:
    await expect(INVALID_ARGUMENT, env.service.apply_friend(me(A), A, ""))
    await expect(NOT_FOUND, env.service.apply_friend(me(A), 404, ""))
    await expect(INVALID_ARGUMENT, env.service.apply_friend(me(A), B, "x" * 256))
    await env.service.block(me(B), A)
    await expect(BLOCKED, env.service.apply_friend(me(A), B, ""))


async def test_one_way_delete(env: Env) -> None:
    await env.befriend(A, B)
    await env.service.delete_friend(me(A), B)
    assert [p.user_id for p in await env.service.friends(me(A))] == []
    assert [p.user_id for p in await env.service.friends(me(B))] == [A]  # B still lists A
    await expect(NOT_FRIENDS, env.service.check_direct(B, A))  # but can no longer message A
    await expect(NOT_FRIENDS, env.service.check_direct(A, B))
    await expect(NOT_FOUND, env.service.delete_friend(me(A), B))
    # A adds B back: B still had A, so no approval is needed.
    assert await env.service.apply_friend(me(A), B, "")
    await env.service.check_direct(B, A)


# ---------- the messaging rule ----------
async def test_strangers_cannot_message(env: Env) -> None:
    await expect(NOT_FRIENDS, env.service.check_direct(A, B))
    await expect(NOT_FOUND, env.service.check_direct(A, 404))
    await expect(INVALID_ARGUMENT, env.service.check_direct(A, A))


async def test_blocked_users_cannot_message_the_blocker(env: Env) -> None:
    await env.befriend(A, B)
    await env.service.check_direct(A, B)
    await env.service.block(me(B), A)
    await expect(BLOCKED, env.service.check_direct(A, B))
    await expect(BLOCKED, env.service.check_direct(B, A))  # the blocker is told to unblock first
    assert [p.user_id for p in await env.service.blacklist(me(B))] == [A]
    assert [p.user_id for p in await env.service.friends(me(B))] == [A]  # blocking is not unfriending
    await env.service.unblock(me(B), A)
    await env.service.check_direct(A, B)
    assert await env.service.blacklist(me(B)) == []


async def test_blocking_a_stranger_and_oneself(env: Env) -> None:
    await env.service.block(me(A), C)
    assert [p.user_id for p in await env.service.blacklist(me(A))] == [C]
    await expect(INVALID_ARGUMENT, env.service.block(me(A), A))
    await expect(NOT_FOUND, env.service.block(me(A), 404))


async def test_profiles_in_batch_and_nickname_update(env: Env) -> None:
    assert [p.user_id for p in await env.service.profiles([C, A, 404, A])] == [C, A]
    await expect(INVALID_ARGUMENT, env.service.profiles(list(range(201))))
    await env.service.update_nickname(me(A), "Alpha")
    assert (await env.service.profiles([A]))[0].nickname == "Alpha"


# ---------- groups ----------
async def test_create_group_with_friends_announces_it_to_everyone(env: Env) -> None:
    await env.befriend(A, B)
    await env.befriend(A, C)
    group_id = await env.service.create_group(me(A), " Team ", [B, C, B, A])
    members = await env.store.members(group_id)
    assert [(m.user_id, m.role) for m in members] == [
        (A, GroupRole.OWNER),
        (B, GroupRole.MEMBER),
        (C, GroupRole.MEMBER),
    ]
    (sender, gid, to, content) = env.notices.to_groups[-1]
    assert (sender, gid, sorted(to), content["event"]) == (A, group_id, [A, B, C], "group_created")
    assert [(g.name, g.member_count) for g in await env.service.my_groups(me(B))] == [("Team", 3)]
    assert sorted(await env.service.group_recipients(B, group_id)) == [A, B, C]


async def test_create_group_refusals(env: Env) -> None:
    await env.befriend(A, B)
    await expect(INVALID_ARGUMENT, env.service.create_group(me(A), "", [B]))
    await expect(NOT_FOUND, env.service.create_group(me(A), "g", [B, 404]))
    await expect(PERMISSION_DENIED, env.service.create_group(me(A), "g", [B, C]))  # C is no friend
    await env.service.block(me(B), A)
    await expect(BLOCKED, env.service.create_group(me(A), "g", [B]))
    small = Env(group_limit=2)
    await small.befriend(A, B)
    await small.befriend(A, C)
    await expect(GROUP_FULL, small.service.create_group(me(A), "g", [B, C]))


async def test_join_with_approval(env: Env) -> None:
    group_id = await env.service.create_group(me(A), "open", [])
    await env.service.join_group(me(D), group_id)
    assert env.notices.to_users[-1] == (
        D,
        A,
        {"event": "group_join_request", "group_id": group_id, "user_id": D},
        False,
    )
    await expect(ALREADY_EXISTS, env.service.join_group(me(D), group_id))
    await expect(NOT_MEMBER, env.service.group_recipients(D, group_id))  # not yet
    await expect(PERMISSION_DENIED, env.service.handle_join(me(C), group_id, D, agree=True))
    await env.service.handle_join(me(A), group_id, D, agree=True)
    assert sorted(await env.service.group_recipients(D, group_id)) == [A, D]
    assert "member_joined" in env.notices.events_for(D)  # the newcomer is told by the announcement
    await expect(ALREADY_EXISTS, env.service.join_group(me(D), group_id))
    await expect(NOT_FOUND, env.service.handle_join(me(A), group_id, D, agree=True))


async def test_rejected_join_tells_the_applicant(env: Env) -> None:
    group_id = await env.service.create_group(me(A), "closed", [])
    await env.service.join_group(me(C), group_id)
    await env.service.handle_join(me(A), group_id, C, agree=False)
    assert env.notices.events_for(C) == ["group_join_rejected"]
    await expect(NOT_MEMBER, env.service.group_recipients(C, group_id))
    await expect(NOT_FOUND, env.service.join_group(me(C), 999))


async def test_join_refused_when_full_and_approval_keeps_the_limit(env: Env) -> None:
    small = Env(group_limit=2)
    group_id = await small.service.create_group(me(A), "duo", [])
    await small.service.join_group(me(B), group_id)
    await small.service.join_group(me(C), group_id)
    await small.service.handle_join(me(A), group_id, B, agree=True)
    await expect(GROUP_FULL, small.service.handle_join(me(A), group_id, C, agree=True))
    assert await small.store.join_request(group_id, C) == RequestStatus.PENDING
    await expect(GROUP_FULL, small.service.join_group(me(D), group_id))


async def test_leave_and_remove(env: Env) -> None:
    for friend in (B, C, D):
        await env.befriend(A, friend)
    group_id = await env.service.create_group(me(A), "g", [B, C, D])
    await env.service.leave_group(me(B), group_id)
    await expect(NOT_MEMBER, env.service.group_recipients(B, group_id))
    last = env.notices.to_groups[-1]
    assert last[3]["event"] == "member_left" and B not in last[2]  # the leaver gets nothing after leaving
    await expect(NOT_MEMBER, env.service.leave_group(me(B), group_id))
    await expect(PERMISSION_DENIED, env.service.leave_group(me(A), group_id))  # the owner stays
    await expect(PERMISSION_DENIED, env.service.remove_member(me(C), group_id, D))  # members cannot remove
    await env.service.remove_member(me(A), group_id, D)
    assert sorted(await env.service.group_recipients(A, group_id)) == [A, C]
    assert env.notices.to_users[-1][1:3] == (D, {"event": "removed_from_group", "group_id": group_id})
    assert env.notices.to_groups[-1][3]["event"] == "member_removed" and D not in env.notices.to_groups[-1][2]
    await expect(NOT_MEMBER, env.service.remove_member(me(A), group_id, D))


async def test_members_only_see_the_member_list(env: Env) -> None:
    await env.befriend(A, B)
    group_id = await env.service.create_group(me(A), "g", [B])
    listed = await env.service.group_members(me(B), group_id)
    assert [(p.user_id, m.role) for p, m in listed] == [(A, GroupRole.OWNER), (B, GroupRole.MEMBER)]
    await expect(NOT_MEMBER, env.service.group_members(me(C), group_id))
    await expect(NOT_FOUND, env.service.group_members(me(C), 999))
    await expect(NOT_FOUND, env.service.group_recipients(A, 999))


# ---------- profile visibility (reliability: no directory walk by id) ----------
async def test_profiles_by_id_leave_strangers_out(env: Env) -> None:
    assert [p.user_id for p in await env.service.visible_profiles(me(A), [A, B, C, D])] == [A]


async def test_friends_requests_blocks_and_co_members_are_visible(env: Env) -> None:
    await env.befriend(A, B)
    await env.service.apply_friend(me(C), A, "hello")  # C asked A: A may see who asked
    assert [p.user_id for p in await env.service.visible_profiles(me(A), [B, C, D])] == [B, C]
    await env.service.block(me(A), D)
    assert [p.user_id for p in await env.service.visible_profiles(me(A), [D])] == [D]
    await env.befriend(B, D)
    await env.service.create_group(me(B), "g", [A, D])
    assert [p.user_id for p in await env.service.visible_profiles(me(D), [A, C])] == [A]


async def test_people_who_were_in_a_group_with_you_stay_visible_after_leaving(env: Env) -> None:
    """Old group messages name their senders: someone who left (or was removed, or whose group was
    dissolved) stays visible to whoever was in the group at the same time, and to nobody else."""
    await env.befriend(A, B)
    await env.befriend(A, C)
    group_id = await env.service.create_group(me(A), "g", [B, C])
    await env.service.leave_group(me(B), group_id)
    assert [p.user_id for p in await env.service.visible_profiles(me(C), [B])] == [B]
    assert [p.user_id for p in await env.service.visible_profiles(me(B), [C])] == [C]  # both ways
    # D joins after B left: they never shared the group, D has no reason to see B
    await env.service.join_group(me(D), group_id)
    await env.service.handle_join(me(A), group_id, D, agree=True)
    assert [p.user_id for p in await env.service.visible_profiles(me(D), [B, C])] == [C]
    await env.service.remove_member(me(A), group_id, C)  # removed, not left: the same
    assert [p.user_id for p in await env.service.visible_profiles(me(D), [B, C])] == [C]
    await env.service.dissolve_group(me(A), group_id)  # nobody is in it now; the shared past remains
    assert [p.user_id for p in await env.service.visible_profiles(me(D), [A, B, C])] == [A, C]
    assert [p.user_id for p in await env.service.visible_profiles(me(B), [C, D])] == [C]


async def test_an_approval_that_loses_to_a_dissolve_adds_nobody(env: Env) -> None:
    """The group is dissolved after the approval read it, before the member is added: not found, and
    nobody is in the group or told they joined."""
    group_id = await env.service.create_group(me(A), "ending", [])
    await env.service.join_group(me(D), group_id)
    add_member = env.store.add_member

    async def dissolved_first(group: int, user: int, limit: int) -> None:
        await env.store.dissolve_group(group)  # the concurrent dissolve committed just before the lock
        await add_member(group, user, limit)

    env.store.add_member = dissolved_first  # type: ignore[method-assign,assignment]
    await expect(NOT_FOUND, env.service.handle_join(me(A), group_id, D, agree=True))
    assert await env.store.role(group_id, D) is None
    assert "member_joined" not in env.notices.events_for(D)
