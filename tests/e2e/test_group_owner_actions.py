"""Group owner actions end to end (one process and the multi-process topology): admins, rename and
announcement, transfer, dissolve; each member learns of each through a SYSTEM message in the group."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Served
from tests.e2e.helpers import befriend, new_user, online
from tinyim.client import Client, ServerError
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import ErrorCode

pytestmark = pytest.mark.e2e


async def next_event(client: Client, group_id: int) -> dict[str, object]:
    """The next SYSTEM event of this group in the client's timeline."""
    while True:
        m = await client.next_message(10)
        if m.type == pb.SYSTEM and m.group_id == group_id:
            return dict(json.loads(m.content))


async def expect(code: int, coro: object) -> None:
    with pytest.raises(ServerError) as exc:
        await coro  # type: ignore[misc]
    assert exc.value.code == code, exc.value.message


async def test_owner_actions_and_their_permissions(deployment: Served) -> None:
    url = deployment.base_url
    owner, owner_id = await new_user(url, "owner")
    ann, ann_id = await new_user(url, "ann")
    ben, ben_id = await new_user(url, "ben")
    await befriend(url, ann, owner)
    await befriend(url, ben, owner)
    async with online(url, owner) as o, online(url, ann) as a, online(url, ben) as b:
        everyone = (o, a, b)
        gid = await o.create_group("crew", [ann_id, ben_id])
        for c in everyone:
            assert (await next_event(c, gid))["event"] == "group_created"

        await expect(ErrorCode.ERR_PERMISSION_DENIED, a.set_group_admin(gid, ben_id))
        await o.set_group_admin(gid, ann_id)
        for c in everyone:
            assert await next_event(c, gid) == {
                "event": "admin_appointed",
                "group_id": gid,
                "user_id": ann_id,
            }
        assert dict((u.user_id, role) for u, role in await b.group_members(gid))[ann_id] == pb.ROLE_ADMIN

        await expect(ErrorCode.ERR_PERMISSION_DENIED, b.update_group(gid, name="ben's now"))
        stored = await a.update_group(gid, name="crew 2", announcement="standup at 9")
        assert (stored.name, stored.announcement) == ("crew 2", "standup at 9")
        for c in everyone:
            assert (await next_event(c, gid))["event"] == "group_renamed"
            assert await next_event(c, gid) == {
                "event": "announcement_updated",
                "group_id": gid,
                "announcement": "standup at 9",
            }
        assert [(g.name, g.announcement) for g in await b.groups()] == [("crew 2", "standup at 9")]

        await expect(ErrorCode.ERR_PERMISSION_DENIED, a.transfer_group(gid, ben_id))
        await expect(ErrorCode.ERR_NOT_MEMBER, o.transfer_group(gid, 10**12))
        await o.transfer_group(gid, ben_id)
        for c in everyone:
            assert await next_event(c, gid) == {
                "event": "owner_transferred",
                "group_id": gid,
                "old_owner_id": owner_id,
                "new_owner_id": ben_id,
            }
        assert [g.owner_id for g in await a.groups()] == [ben_id]
        await expect(ErrorCode.ERR_PERMISSION_DENIED, o.dissolve_group(gid))  # no longer the owner

        await b.dissolve_group(gid)
        for c in everyone:
            assert await next_event(c, gid) == {"event": "group_dissolved", "group_id": gid, "name": "crew 2"}
        await expect(ErrorCode.ERR_NOT_FOUND, a.send_group(gid, "anyone here?"))
        assert await o.groups() == [] and await b.groups() == []
