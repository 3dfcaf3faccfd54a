"""relation's group_role (what recall asks of the user role), on the local service and over gRPC."""

from __future__ import annotations

from tests.unit.relation.test_relation_service import A, B, C, D, Env, env, me  # noqa: F401 (fixture)
from tinyim.modules.relation import GroupRole


async def test_group_role_names_owner_admin_member_and_outsider(env: Env) -> None:  # noqa: F811
    await env.befriend(A, B)
    await env.befriend(A, C)
    group_id = await env.service.create_group(me(A), "roles", [B, C])
    env.store.group_members[group_id][C] = GroupRole.ADMIN  # appointing admins is the group owner work's
    assert await env.service.group_role(group_id, A) == GroupRole.OWNER
    assert await env.service.group_role(group_id, B) == GroupRole.MEMBER
    assert await env.service.group_role(group_id, C) == GroupRole.ADMIN
    assert await env.service.group_role(group_id, D) == 0
    assert await env.service.group_role(group_id + 100, A) == 0
