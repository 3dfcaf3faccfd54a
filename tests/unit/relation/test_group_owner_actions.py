"""Group owner actions: transfer, admins, rename and announcement, dissolve; each with its permissions,
on the local relation service and through its gRPC client adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakeUsers, RecordingNotices
from tinyim.kernel import INVALID_ARGUMENT, NOT_FOUND, NOT_MEMBER, PERMISSION_DENIED, Caller, ImError
from tinyim.modules.relation import GroupRole, RelationApi, RelationService
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryRelationUnits
from tinyim.modules.relation.adapters.rpc import GrpcRelationClient, user_registrar
from tinyim.pb.im_internal_pb2_grpc import UserServiceStub

OWNER, ADMIN, MEMBER, OTHER, STRANGER = 1, 2, 3, 4, 5


class Env:
    def __init__(self) -> None:
        self.store = InMemoryRelationStore()
        self.notices = RecordingNotices()
        self.units = InMemoryRelationUnits(self.store)
        self.service: RelationApi = RelationService(
            self.store, FakeUsers(1, 2, 3, 4, 5), self.notices, units=self.units
        )
        self.group_id = 0

    async def group(self) -> int:
        """OWNER's group with ADMIN (appointed), MEMBER and OTHER; STRANGER is outside."""
        self.group_id = await self.store.create_group("crew", OWNER, [ADMIN, MEMBER, OTHER])
        await self.store.set_role(self.group_id, ADMIN, GroupRole.ADMIN)
        return self.group_id

    def events(self) -> list[tuple[int, list[int], dict[str, object]]]:
        return [(sender, sorted(to), content) for sender, _, to, content in self.notices.to_groups]

    async def roles(self) -> dict[int, GroupRole]:
        return {m.user_id: m.role for m in await self.store.members(self.group_id)}


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
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


EVERYONE = [OWNER, ADMIN, MEMBER, OTHER]


async def test_transfer_makes_the_member_owner_and_the_old_owner_a_member(env: Env) -> None:
    gid = await env.group()
    await env.service.transfer_group(me(OWNER), gid, MEMBER)
    assert await env.roles() == {
        OWNER: GroupRole.MEMBER,
        ADMIN: GroupRole.ADMIN,
        MEMBER: GroupRole.OWNER,
        OTHER: GroupRole.MEMBER,
    }
    group = await env.store.group(gid)
    assert group is not None and group.owner_id == MEMBER
    assert env.events() == [
        (
            OWNER,
            EVERYONE,
            {"event": "owner_transferred", "group_id": gid, "old_owner_id": OWNER, "new_owner_id": MEMBER},
        )
    ]
    # the old owner may leave now; the new one may not, and now decides
    await env.service.leave_group(me(OWNER), gid)
    await expect(PERMISSION_DENIED, env.service.leave_group(me(MEMBER), gid))
    await expect(PERMISSION_DENIED, env.service.transfer_group(me(OWNER), gid, OTHER))


async def test_transfer_permissions(env: Env) -> None:
    gid = await env.group()
    await expect(PERMISSION_DENIED, env.service.transfer_group(me(ADMIN), gid, MEMBER))
    await expect(PERMISSION_DENIED, env.service.transfer_group(me(STRANGER), gid, MEMBER))
    await expect(NOT_MEMBER, env.service.transfer_group(me(OWNER), gid, STRANGER))
    await expect(INVALID_ARGUMENT, env.service.transfer_group(me(OWNER), gid, OWNER))
    await expect(NOT_FOUND, env.service.transfer_group(me(OWNER), 999, MEMBER))
    assert (await env.roles())[OWNER] == GroupRole.OWNER and env.events() == []


async def test_owner_appoints_and_removes_admins_who_then_moderate(env: Env) -> None:
    gid = await env.group()
    await env.service.set_group_admin(me(OWNER), gid, MEMBER, admin=True)
    await env.service.set_group_admin(me(OWNER), gid, MEMBER, admin=True)  # no change, no second event
    assert (await env.roles())[MEMBER] == GroupRole.ADMIN
    await env.service.remove_member(me(MEMBER), gid, OTHER)  # an admin removes a member
    await expect(PERMISSION_DENIED, env.service.remove_member(me(MEMBER), gid, ADMIN))  # not another admin
    await env.service.set_group_admin(me(OWNER), gid, MEMBER, admin=False)
    assert (await env.roles())[MEMBER] == GroupRole.MEMBER
    events = [(c["event"], c.get("user_id")) for _, _, c in env.events()]
    assert events == [
        ("admin_appointed", MEMBER),
        ("member_removed", OTHER),
        ("admin_removed", MEMBER),
    ]


async def test_only_the_owner_manages_admins(env: Env) -> None:
    gid = await env.group()
    await expect(PERMISSION_DENIED, env.service.set_group_admin(me(ADMIN), gid, MEMBER, admin=True))
    await expect(PERMISSION_DENIED, env.service.set_group_admin(me(MEMBER), gid, ADMIN, admin=False))
    await expect(NOT_MEMBER, env.service.set_group_admin(me(OWNER), gid, STRANGER, admin=True))
    await expect(INVALID_ARGUMENT, env.service.set_group_admin(me(OWNER), gid, OWNER, admin=False))
    assert (await env.roles())[ADMIN] == GroupRole.ADMIN and env.events() == []


async def test_owner_or_admin_renames_and_sets_the_announcement(env: Env) -> None:
    gid = await env.group()
    renamed = await env.service.update_group(me(ADMIN), gid, "  new crew ", None)
    assert (renamed.name, renamed.announcement, renamed.member_count) == ("new crew", "", 4)
    stored = await env.service.update_group(me(OWNER), gid, None, "Meeting at 9\nBring snacks")
    assert (stored.name, stored.announcement) == ("new crew", "Meeting at 9\nBring snacks")
    await env.service.update_group(me(OWNER), gid, "new crew", "Meeting at 9\nBring snacks")  # unchanged
    both = await env.service.update_group(me(OWNER), gid, "crew 2", "")
    assert (both.name, both.announcement) == ("crew 2", "")
    assert [(s, to, c) for s, to, c in env.events()] == [
        (ADMIN, EVERYONE, {"event": "group_renamed", "group_id": gid, "name": "new crew"}),
        (
            OWNER,
            EVERYONE,
            {"event": "announcement_updated", "group_id": gid, "announcement": "Meeting at 9\nBring snacks"},
        ),
        (OWNER, EVERYONE, {"event": "group_renamed", "group_id": gid, "name": "crew 2"}),
        (OWNER, EVERYONE, {"event": "announcement_updated", "group_id": gid, "announcement": ""}),
    ]
    assert [(g.name, g.announcement) for g in await env.service.my_groups(me(MEMBER))] == [("crew 2", "")]


async def test_update_permissions_and_validation(env: Env) -> None:
    gid = await env.group()
    await expect(PERMISSION_DENIED, env.service.update_group(me(MEMBER), gid, "mine", None))
    await expect(PERMISSION_DENIED, env.service.update_group(me(STRANGER), gid, None, "spam"))
    await expect(INVALID_ARGUMENT, env.service.update_group(me(OWNER), gid, None, None))
    await expect(INVALID_ARGUMENT, env.service.update_group(me(OWNER), gid, "", None))
    await expect(INVALID_ARGUMENT, env.service.update_group(me(OWNER), gid, "x" * 65, None))
    await expect(INVALID_ARGUMENT, env.service.update_group(me(OWNER), gid, None, "x" * 256))
    await expect(INVALID_ARGUMENT, env.service.update_group(me(OWNER), gid, None, "bell\x07"))
    await expect(NOT_FOUND, env.service.update_group(me(OWNER), 999, "x", None))
    group = await env.store.group(gid)
    assert group is not None and (group.name, group.announcement) == ("crew", "") and env.events() == []


async def test_dissolve_tells_every_member_then_the_group_is_gone(env: Env) -> None:
    gid = await env.group()
    await expect(PERMISSION_DENIED, env.service.dissolve_group(me(ADMIN), gid))
    await expect(PERMISSION_DENIED, env.service.dissolve_group(me(STRANGER), gid))
    await env.service.dissolve_group(me(OWNER), gid)
    assert env.events() == [(OWNER, EVERYONE, {"event": "group_dissolved", "group_id": gid, "name": "crew"})]
    assert await env.store.group(gid) is None and await env.service.my_groups(me(MEMBER)) == []
    await expect(NOT_FOUND, env.service.group_recipients(MEMBER, gid))  # nobody posts to it again
    await expect(NOT_FOUND, env.service.group_members(me(OWNER), gid))
    await expect(NOT_FOUND, env.service.join_group(me(STRANGER), gid))
    await expect(NOT_FOUND, env.service.dissolve_group(me(OWNER), gid))
    await expect(NOT_FOUND, env.service.update_group(me(OWNER), gid, "back", None))


async def test_an_administrator_dissolves_any_group_and_members_are_told(env: Env) -> None:
    gid = await env.group()
    other = await env.store.create_group("other", MEMBER, [OTHER])
    assert await env.service.group_count() == 2
    dissolved = await env.service.admin_dissolve_group(gid)
    assert (dissolved.group_id, dissolved.name, dissolved.owner_id, dissolved.member_count) == (
        gid,
        "crew",
        OWNER,
        4,
    )
    # the owner's notice, marked as an administrator's doing, to every former member
    notice = {"event": "group_dissolved", "group_id": gid, "name": "crew", "by": "admin"}
    assert env.events() == [(OWNER, EVERYONE, notice)]
    assert await env.store.group(gid) is None and await env.store.group(other) is not None
    assert await env.service.group_count() == 1
    await expect(NOT_FOUND, env.service.admin_dissolve_group(gid))
