"""Friends, blacklist and groups end to end: real process, real WebSockets, the SDK."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.e2e.conftest import Served
from tests.e2e.helpers import PASSWORD, friend_pair, new_user, online
from tinyim.client import Client, ClientOptions, Message, ServerError
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import ErrorCode

pytestmark = pytest.mark.e2e


def event(m: Message) -> str:
    return str(json.loads(m.content)["event"])


async def expect(code: int, coro: object) -> ServerError:
    with pytest.raises(ServerError) as exc:
        await coro  # type: ignore[misc]
    assert exc.value.code == code, exc.value.message
    return exc.value


async def test_friend_request_flow_then_chat_then_one_way_delete(deployment: Served) -> None:
    alice, alice_id = await new_user(deployment.base_url, "alice")
    bob, bob_id = await new_user(deployment.base_url, "bob")
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        await expect(ErrorCode.ERR_NOT_FRIENDS, a.send_text(bob_id, "hi stranger"))
        assert not await a.apply_friend(bob_id, "we met at the conference")
        request = await b.next_message()  # pushed, then synced like any message
        assert (request.type, request.sender_id) == (pb.FRIEND_REQ, alice_id)
        assert json.loads(request.content) == {
            "event": "friend_request",
            "request_uid": alice_id,
            "reason": "we met at the conference",
        }
        await expect(ErrorCode.ERR_ALREADY_EXISTS, a.apply_friend(bob_id, "again"))
        await b.handle_friend(alice_id, agree=True)
        accepted = await a.next_message()
        assert (accepted.type, event(accepted), accepted.sender_id) == (pb.SYSTEM, "friend_accepted", bob_id)
        assert [u.user_id for u in await a.friends()] == [bob_id]
        assert [(u.user_id, u.nickname) for u in await b.friends()] == [(alice_id, "Alice")]

        await a.send_text(bob_id, "now we can talk")
        assert (await b.next_message()).content == "now we can talk"
        await b.send_text(alice_id, "indeed")
        assert (await a.next_message()).content == "indeed"

        await a.delete_friend(bob_id)
        assert await a.friends() == [] and [u.user_id for u in await b.friends()] == [alice_id]
        await expect(ErrorCode.ERR_NOT_FRIENDS, b.send_text(alice_id, "are you there?"))
        await expect(ErrorCode.ERR_NOT_FRIENDS, a.send_text(bob_id, "oops"))


async def test_blacklist_stops_messages_and_requests(deployment: Served) -> None:
    alice, alice_id, bob, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        await b.block(alice_id)
        assert [u.user_id for u in await b.blacklist()] == [alice_id]
        await expect(ErrorCode.ERR_BLOCKED, a.send_text(bob_id, "hello?"))
        await expect(ErrorCode.ERR_BLOCKED, b.send_text(alice_id, "blocked you"))
        await b.unblock(alice_id)
        await a.send_text(bob_id, "back again")
        assert (await b.next_message()).content == "back again"
        carol, carol_id = await new_user(deployment.base_url, "carol")
        async with online(deployment.base_url, carol) as c:
            await c.block(alice_id)  # a stranger can be blocked: her requests are refused
            await expect(ErrorCode.ERR_BLOCKED, a.apply_friend(carol_id, "hi"))


async def test_profiles_and_nickname_update_reach_friend_lists(deployment: Served) -> None:
    alice, alice_id, bob, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a, online(deployment.base_url, bob) as b:
        assert [u.nickname for u in await b.friends()] == ["Alice"]  # fills the profile cache
        await a.update_nickname("Alice Liddell")
        assert [u.nickname for u in await b.friends()] == ["Alice Liddell"]
        users = await b.users([bob_id, alice_id, 10**12])
        assert [(u.user_id, u.nickname) for u in users] == [(bob_id, "Bob"), (alice_id, "Alice Liddell")]
        await expect(ErrorCode.ERR_INVALID_ARGUMENT, a.update_nickname(""))


async def test_group_of_fifty_with_an_offline_member_who_catches_up_in_order(deployment: Served) -> None:
    owner_name, owner_id = await new_user(deployment.base_url, "owner")
    members: list[tuple[str, int]] = [await new_user(deployment.base_url, f"m{i}") for i in range(49)]
    async with online(deployment.base_url, owner_name) as owner:
        clients = [
            Client(deployment.base_url, name, PASSWORD, "PC", options=ClientOptions(heartbeat_interval=10))
            for name, _ in members
        ]
        try:
            # ten logins at a time: each is an argon2 hash (two at once per auth process), and 49 at once
            # outlast the internal call deadline on a loaded machine (the compose stack: auth on 1 CPU)
            for batch in range(0, len(clients), 10):
                await asyncio.gather(*(c.start() for c in clients[batch : batch + 10]))
            for c in clients:
                await c.apply_friend(owner_id, "let me in")
            for _, member_id in members:
                await owner.handle_friend(member_id, agree=True)
            group_id = await owner.create_group("fifty", [m for _, m in members])
            assert [(g.group_id, g.member_count) for g in await owner.groups()] == [(group_id, 50)]
            roles = dict((u.user_id, role) for u, role in await clients[0].group_members(group_id))
            assert len(roles) == 50 and roles[owner_id] == pb.ROLE_OWNER

            offline = clients.pop()
            await offline.sync()
            offline_seq = offline.local_max_seq
            await offline.close()
            for i in range(10):
                sender = clients[i % 3]
                await sender.send_group(group_id, f"group message {i}")
            # Every online member is notified and syncs the ten messages.
            for c in clients[3:]:
                got = [m for m in await _drain_until(c, 10) if m.type == pb.TEXT]
                assert [m.content for m in got] == [f"group message {i}" for i in range(10)]
                assert all(m.group_id == group_id and m.receiver_id == 0 for m in got)
        finally:
            for c in clients:
                await c.close()
        # The offline member comes back and gets all ten, in order, after the group's creation notice.
        caught: list[Message] = []
        back = Client(deployment.base_url, members[-1][0], PASSWORD, "PC", on_message=caught.append)
        back.local_max_seq = offline_seq
        await back.start()
        assert [m.content for m in caught] == [f"group message {i}" for i in range(10)]
        assert [m.seq_id for m in caught] == list(range(offline_seq + 1, offline_seq + 11))
        await back.close()


async def _drain_until(client: Client, count: int, timeout: float = 15.0) -> list[Message]:
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        while sum(m.type == pb.TEXT for m in got) < count:
            got.append(await client.next_message(timeout))
    return got


async def next_text(client: Client) -> Message:
    """The next chat message, passing over notices (announcements reach every member)."""
    while (m := await client.next_message()).type != pb.TEXT:
        pass
    return m


async def next_notice(client: Client, name: str) -> Message:
    """The next notice with this event, passing over everything else."""
    while True:
        m = await client.next_message()
        if m.type in (pb.SYSTEM, pb.FRIEND_REQ) and event(m) == name:
            return m


async def test_join_with_approval_leave_and_non_member_posts(deployment: Served) -> None:
    owner_name, _, friend_name, friend_id = await friend_pair(deployment.base_url, "owner", "friend")
    stranger_name, stranger_id = await new_user(deployment.base_url, "stranger")
    async with (
        online(deployment.base_url, owner_name) as owner,
        online(deployment.base_url, friend_name) as friend,
        online(deployment.base_url, stranger_name) as stranger,
    ):
        group_id = await owner.create_group("book club", [friend_id])
        for c in (owner, friend):  # announced to everyone, the creator's own devices included
            assert (await next_notice(c, "group_created")).group_id == group_id
        await expect(ErrorCode.ERR_NOT_MEMBER, stranger.send_group(group_id, "can I post?"))
        await expect(ErrorCode.ERR_NOT_MEMBER, stranger.group_members(group_id))

        await stranger.join_group(group_id)
        request = await next_notice(owner, "group_join_request")
        assert json.loads(request.content)["user_id"] == stranger_id and request.sender_id == stranger_id
        await expect(ErrorCode.ERR_ALREADY_EXISTS, stranger.join_group(group_id))
        await expect(ErrorCode.ERR_PERMISSION_DENIED, friend.handle_join(group_id, stranger_id))
        await owner.handle_join(group_id, stranger_id, agree=True)
        for c in (stranger, friend, owner):  # the applicant learns of it from the announcement
            joined = await next_notice(c, "member_joined")
            assert (joined.group_id, json.loads(joined.content)["user_id"]) == (group_id, stranger_id)

        await stranger.send_group(group_id, "thanks for having me")
        for c in (owner, friend):
            m = await next_text(c)
            assert (m.content, m.sender_id, m.group_id) == ("thanks for having me", stranger_id, group_id)

        await friend.leave_group(group_id)
        left = await next_notice(owner, "member_left")
        assert json.loads(left.content)["user_id"] == friend_id
        await owner.send_group(group_id, "after friend left")
        assert (await next_text(stranger)).content == "after friend left"
        with pytest.raises(TimeoutError):
            await friend.next_message(timeout=0.5)  # nothing posted after leaving reaches the leaver
        await expect(ErrorCode.ERR_NOT_MEMBER, friend.send_group(group_id, "still here?"))

        await owner.remove_member(group_id, stranger_id)
        removed = await next_notice(stranger, "removed_from_group")
        assert json.loads(removed.content)["group_id"] == group_id
        await expect(ErrorCode.ERR_NOT_MEMBER, stranger.send_group(group_id, "hello?"))
        assert await stranger.groups() == []
        assert [(u.user_id, role) for u, role in await owner.group_members(group_id)] == [
            (owner.user_id, pb.ROLE_OWNER)
        ]


async def test_a_new_member_gets_nothing_posted_before_joining(deployment: Served) -> None:
    owner_name, _, _, friend_id = await friend_pair(deployment.base_url, "owner", "early")
    late_name, late_id = await new_user(deployment.base_url, "late")
    async with (
        online(deployment.base_url, owner_name) as owner,
        online(deployment.base_url, late_name) as late,
    ):
        group_id = await owner.create_group("history", [friend_id])
        await owner.send_group(group_id, "before you came")
        await late.join_group(group_id)
        await owner.handle_join(group_id, late_id)
        await owner.send_group(group_id, "welcome")
        texts = [m.content for m in (await late.history(group_id=group_id))[0] if m.type == pb.TEXT]
        assert texts == ["welcome"]


async def test_history_pages_backwards(deployment: Served) -> None:
    alice, _, _, bob_id = await friend_pair(deployment.base_url)
    async with online(deployment.base_url, alice) as a:
        for i in range(12):
            await a.send_text(bob_id, f"h{i}")
        page, more = await a.history(peer_id=bob_id, limit=5)
        assert [m.content for m in page] == [f"h{i}" for i in range(7, 12)] and more
        page, more = await a.history(peer_id=bob_id, before_seq=page[0].seq_id, limit=5)
        assert [m.content for m in page] == [f"h{i}" for i in range(2, 7)] and more
        page, more = await a.history(peer_id=bob_id, before_seq=page[0].seq_id, limit=5)
        # h0, h1 and, before them, the friendship notice in this conversation
        assert [m.content for m in page if m.type == pb.TEXT] == ["h0", "h1"] and not more
        await expect(ErrorCode.ERR_INVALID_ARGUMENT, a.history(peer_id=bob_id, group_id=5))


async def test_unread_counts_follow_reads_across_devices(deployment: Served) -> None:
    alice, alice_id, bob, bob_id = await friend_pair(deployment.base_url)
    async with (
        online(deployment.base_url, bob, "PC") as b_pc,
        online(deployment.base_url, bob, "Web") as b_web,
    ):
        async with online(deployment.base_url, alice) as a:
            for i in range(4):
                await a.send_text(bob_id, f"u{i}")
        last = await _drain_until(b_pc, 4)
        counts = {u.peer_id: u.unread for u in await b_web.unread()}
        assert counts[alice_id] == 5  # her friend request and her four messages
        b_web.read_changed.clear()
        # Read on PC: the badge clears on Web (ReadNotify), and the server's counts agree.
        await b_pc.mark_read(peer_id=alice_id, read_seq=last[-1].seq_id)
        await asyncio.wait_for(b_web.read_changed.wait(), 5)
        assert b_web.read_marks[(alice_id, 0)] == last[-1].seq_id
        assert all(u.peer_id != alice_id for u in await b_web.unread())
        await expect(ErrorCode.ERR_INVALID_ARGUMENT, b_pc.mark_read(peer_id=alice_id, read_seq=10**9))
