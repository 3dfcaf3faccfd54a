"""Conversation list, pin/mute across devices, read receipts, recall, group read counts, end to end:
real processes, real WebSockets, the SDK — on one process and on the multi-process topology."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.e2e.conftest import Served
from tests.e2e.helpers import friend_pair, new_user, online
from tests.support.server import ServerProcess
from tinyim.client import (
    Client,
    ClientEvent,
    ConversationEvent,
    ConversationItem,
    Message,
    RecallEvent,
    ReceiptEvent,
    ServerError,
)
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import ErrorCode

pytestmark = pytest.mark.e2e


async def expect(code: int, coro: object) -> None:
    with pytest.raises(ServerError) as exc:
        await coro  # type: ignore[misc]
    assert exc.value.code == code, exc.value.message


E = TypeVar("E", ReceiptEvent, RecallEvent, ConversationEvent)


async def next_of(client: Client, kind: type[E], timeout: float = 10.0) -> E:
    while True:
        event: ClientEvent = await client.next_event(timeout)
        if isinstance(event, kind):
            return event


async def text(client: Client, timeout: float = 10.0) -> Message:
    while True:
        m = await client.next_message(timeout)
        if m.type == pb.TEXT:
            return m


def item(items: list[ConversationItem], peer_id: int = 0, group_id: int = 0) -> ConversationItem:
    (found,) = [c for c in items if c.peer_id == peer_id and c.group_id == group_id]
    return found


async def group_of_three(base_url: str) -> tuple[tuple[str, int], tuple[str, int], tuple[str, int]]:
    """owner, bob, carol: the owner is friends with both (group creation needs it)."""
    owner, owner_id, bob, bob_id = await friend_pair(base_url, "owner", "bob")
    carol, carol_id = await new_user(base_url, "carol")
    async with online(base_url, owner, "Pad") as o, online(base_url, carol, "Pad") as c:
        await c.apply_friend(owner_id, "")
        await o.handle_friend(carol_id)
    return (owner, owner_id), (bob, bob_id), (carol, carol_id)


async def test_conversation_list_previews_unread_and_pin_mute_on_every_device(deployment: Served) -> None:
    base = deployment.base_url
    alice, alice_id, bob, bob_id = await friend_pair(base)
    async with online(base, alice, "PC") as pc, online(base, alice, "Web") as web, online(base, bob) as b:
        base_seq = pc.local_max_seq
        await b.send_text(alice_id, "first from bob")
        await b.send_text(alice_id, "second from bob " + "x" * 100)
        await pc.wait_for_seq(base_seq + 2)
        answer = await pc.send_text(bob_id, "alice answers")
        items, cursor = await web.conversations()
        assert cursor == ""
        with_bob = item(items, peer_id=bob_id)
        assert (with_bob.last_sender_id, with_bob.preview, with_bob.unread) == (alice_id, "alice answers", 3)
        # unread: bob's friend_accepted notice and his two messages; alice's own answer does not count
        assert with_bob.last_seq == answer.seq_id and with_bob.last_type == pb.TEXT and with_bob.last_time > 0
        bobs_view = item(await b.all_conversations(), peer_id=alice_id)
        assert bobs_view.unread == 2 and bobs_view.preview == "alice answers"  # alice's request + answer

        pinned = await pc.pin_conversation(peer_id=bob_id)
        assert pinned.pinned and not pinned.muted
        change = await next_of(web, ConversationEvent)
        assert change == ConversationEvent(bob_id, 0, True, False)
        await pc.mute_conversation(peer_id=bob_id)
        assert await next_of(web, ConversationEvent) == ConversationEvent(bob_id, 0, True, True)
        seen_on_web = item(await web.all_conversations(), peer_id=bob_id)
        assert (seen_on_web.pinned, seen_on_web.muted) == (True, True)
        assert not item(await b.all_conversations(), peer_id=alice_id).pinned  # pinning is per user
        await expect(ErrorCode.ERR_INVALID_ARGUMENT, web.conversations(cursor="not-a-cursor"))
        await expect(ErrorCode.ERR_NOT_FOUND, web.pin_conversation(peer_id=alice_id + 10**6))


async def test_read_receipt_reaches_every_device_of_the_sender(deployment: Served) -> None:
    base = deployment.base_url
    alice, alice_id, bob, bob_id = await friend_pair(base)
    async with online(base, bob, "PC") as b_pc, online(base, bob, "Web") as b_web, online(base, alice) as a:
        base_seq = a.local_max_seq
        first = await b_pc.send_text(alice_id, "did you read this?")
        await b_pc.send_text(alice_id, "and this?")
        await a.wait_for_seq(base_seq + 2)
        read_to = (await text(a)).seq_id  # alice reads only the first
        await a.mark_read(peer_id=bob_id, read_seq=read_to)
        for device in (b_pc, b_web):
            receipt = await next_of(device, ReceiptEvent)
            assert receipt == ReceiptEvent(alice_id, first.seq_id)  # in bob's own seqs
            assert device.receipts[alice_id] == first.seq_id
        assert item(await b_web.all_conversations(), peer_id=alice_id).peer_read_seq == first.seq_id
        await a.mark_read(peer_id=bob_id, read_seq=a.local_max_seq)
        assert (await next_of(b_web, ReceiptEvent)).read_seq == first.seq_id + 1
        assert item(await a.all_conversations(), peer_id=bob_id).unread == 0


async def test_sender_recalls_and_the_content_is_no_longer_served(deployment: Served) -> None:
    base = deployment.base_url
    alice, alice_id, bob, bob_id = await friend_pair(base)
    async with online(base, alice) as a, online(base, bob) as b:
        sent = await a.send_text(bob_id, "meant for someone else")
        got = await text(b)
        assert got.content == "meant for someone else"
        await expect(ErrorCode.ERR_PERMISSION_DENIED, b.recall(got.msg_id))  # not bob's message
        result = await a.recall(sent.msg_id)
        assert not result.already_recalled and result.seq_id > sent.seq_id
        event = await next_of(b, RecallEvent)
        assert (event.msg_id, event.recalled_by, event.peer_id, event.group_id) == (
            sent.msg_id,
            alice_id,
            alice_id,
            0,
        )
        assert b.recalled[sent.msg_id] == alice_id
        mine = await next_of(a, RecallEvent)  # the recalling device syncs its own RECALL entry too
        assert (mine.msg_id, mine.peer_id, mine.seq_id) == (sent.msg_id, bob_id, result.seq_id)
        assert (await a.recall(sent.msg_id)).already_recalled
        history, _ = await b.history(peer_id=alice_id)
        (recalled,) = [m for m in history if m.msg_id == sent.msg_id]
        assert recalled.recalled and recalled.recalled_by == alice_id and recalled.content == ""
        entry = history[-1]
        assert entry.type == pb.RECALL and json.loads(entry.content)["msg_id"] == str(sent.msg_id)
        view = item(await b.all_conversations(), peer_id=alice_id)
        assert "meant for" not in view.preview and view.last_type == pb.RECALL
    async with online(base, bob, "Web", drain=False) as fresh:  # a new device syncs everything from 0
        synced = [m for m in fresh.take_delivered() if m.msg_id == sent.msg_id]
        assert [(m.content, m.recalled_by) for m in synced] == [("", alice_id)]


async def test_group_owner_recalls_a_members_message_and_read_counts(deployment: Served) -> None:
    base = deployment.base_url
    (owner, _), (bob, bob_id), (carol, carol_id) = await group_of_three(base)
    async with online(base, owner) as o, online(base, bob) as b, online(base, carol) as c:
        group_id = await o.create_group("recall test", [bob_id, carol_id])
        spam = await c.send_group(group_id, "spam")
        await text(b)
        await text(o)
        await expect(ErrorCode.ERR_PERMISSION_DENIED, b.recall(spam.msg_id))  # a plain member
        assert not (await o.recall(spam.msg_id)).already_recalled
        for member in (b, c):
            event = await next_of(member, RecallEvent)
            assert (event.msg_id, event.group_id) == (spam.msg_id, group_id)
        history, _ = await b.history(group_id=group_id)
        assert [m.content for m in history if m.msg_id == spam.msg_id] == [""]

        news = await o.send_group(group_id, "read me")
        await text(b)
        await text(c)
        await b.mark_read(group_id=group_id, read_seq=b.local_max_seq)
        counts = await o.group_read_count(group_id, [news.msg_id, spam.msg_id])
        assert [(r.msg_id, r.read, r.total) for r in counts.values()] == [(news.msg_id, 1, 2)]
        await c.mark_read(group_id=group_id, read_seq=c.local_max_seq)
        assert (await o.group_read_count(group_id, [news.msg_id]))[news.msg_id].read == 2
        assert await c.group_read_count(group_id, [news.msg_id]) == {}  # not carol's message
        assert item(await b.all_conversations(), group_id=group_id).unread == 0


@pytest.fixture(scope="module")
def short_recall_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One process whose recall window is 1 s, so 'after the window' needs no two-minute wait."""
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("tinyim-recall")), env={"IM_RECALL_WINDOW_SECONDS": "1"}
    ).start()
    yield proc
    proc.stop()


async def test_recall_is_refused_after_the_window(short_recall_window: ServerProcess) -> None:
    base = short_recall_window.base_url
    alice, _, bob, bob_id = await friend_pair(base)
    async with online(base, alice) as a, online(base, bob) as b:
        early = await a.send_text(bob_id, "quick")
        assert not (await a.recall(early.msg_id)).already_recalled
        late = await a.send_text(bob_id, "slow")
        await asyncio.sleep(1.3)
        await expect(ErrorCode.ERR_RECALL_TOO_LATE, a.recall(late.msg_id))
        history, _ = await b.history(peer_id=a.user_id)
        assert [m.content for m in history if m.type == pb.TEXT] == ["", "slow"]
