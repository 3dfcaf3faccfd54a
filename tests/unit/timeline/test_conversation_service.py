"""Conversation list, pin/mute, read receipts, recall, group read counts: the timeline service with
in-memory fakes, on the local service and through its gRPC client adapter (a real grpc.aio server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakePolicy, RecordingNotifier
from tinyim.infra.snowflake import Snowflake, id_time_ms
from tinyim.kernel import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    NOT_RECALLABLE,
    PERMISSION_DENIED,
    RECALL_TOO_LATE,
    AfterCommit,
    Caller,
    ImError,
    PushTarget,
)
from tinyim.modules.timeline import (
    Conversation,
    ConvType,
    MsgType,
    SendRequest,
    TimelineApi,
    TimelineService,
    TimelineWriter,
)
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.adapters.rpc import GrpcTimelineClient, msg_registrar
from tinyim.pb.im_internal_pb2_grpc import MsgServiceStub

ALICE, BOB, CAROL, DAVE = 1, 2, 3, 4
GROUP = 1  # the same number as ALICE on purpose
MEMBER, ADMIN, OWNER = 1, 2, 3


class FakeRoles:
    """timeline.GroupRoles: roles per (group, user)."""

    def __init__(self, roles: dict[tuple[int, int], int]) -> None:
        self.roles = roles
        self.asked: list[tuple[int, int]] = []

    async def group_role(self, group_id: int, user_id: int) -> int:
        self.asked.append((group_id, user_id))
        return self.roles.get((group_id, user_id), 0)


class Clock:
    """An injectable wall clock (ms): starts at the real time, moves only when a test says so."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        import time

        return time.time_ns() // 1_000_000 + self.offset_ms


class Env:
    def __init__(self) -> None:
        self.store = InMemoryTimelineStore()
        self.notifier = RecordingNotifier()
        self.writer = TimelineWriter(self.store, Snowflake(1), self.notifier)
        self.policy = FakePolicy({ALICE, BOB, CAROL, DAVE}, {GROUP: [ALICE, BOB, CAROL, DAVE]})
        self.roles = FakeRoles({(GROUP, ALICE): OWNER, (GROUP, BOB): ADMIN, (GROUP, CAROL): MEMBER})
        self.clock = Clock()
        self.after_commit = AfterCommit()  # read and conversation notices leave after the answer
        self.local = TimelineService(
            self.store,
            self.writer,
            self.policy,
            self.notifier,
            roles=self.roles,
            clock=self.clock,
            after_commit=self.after_commit,
        )
        self.service: TimelineApi = self.local

    async def send(self, sender: int, receiver: int, text: str, device: str = "PC") -> int:
        result = await self.service.send(Caller(sender, device), SendRequest(receiver, 0, MsgType.TEXT, text))
        return result.msg_id

    async def post(self, sender: int, text: str) -> int:
        result = await self.service.send(Caller(sender, "PC"), SendRequest(0, GROUP, MsgType.TEXT, text))
        return result.msg_id


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    env = Env()
    async with remote_if(
        request.param, "msg", msg_registrar(env.local, env.writer), MsgServiceStub
    ) as remote:
        if remote is not None:
            env.service = GrpcTimelineClient(remote)
        yield env


def direct(peer: int) -> Conversation:
    return Conversation(ConvType.DIRECT, peer)


GROUP_CONV = Conversation(ConvType.GROUP, GROUP)


async def test_one_request_lists_conversations_newest_first_with_previews(env: Env) -> None:
    first = await env.send(BOB, ALICE, "hello alice")
    await env.send(CAROL, ALICE, "carol here")
    last = await env.post(DAVE, "group news")
    page = await env.service.conversations(Caller(ALICE, "PC"), 0, "")
    assert page.next_cursor == ""
    assert [(v.conversation, v.preview, v.last_sender_id, v.unread) for v in page.items] == [
        (GROUP_CONV, "group news", DAVE, 1),
        (direct(CAROL), "carol here", CAROL, 1),
        (direct(BOB), "hello alice", BOB, 1),
    ]
    assert page.items[0].last_msg_id == last and page.items[0].last_time_ms == id_time_ms(last)
    assert page.items[2].last_msg_id == first


async def test_pages_follow_the_cursor_and_a_bad_cursor_is_refused(env: Env) -> None:
    for peer in (BOB, CAROL, DAVE):
        await env.send(peer, ALICE, f"from {peer}")
    alice = Caller(ALICE, "PC")
    one = await env.service.conversations(alice, 2, "")
    two = await env.service.conversations(alice, 2, one.next_cursor)
    assert [v.conversation.other_id for v in one.items + two.items] == [DAVE, CAROL, BOB]
    assert one.next_cursor and two.next_cursor == ""
    for bad in ("nonsense", "1.2.3", "2.1.0.1", "1.-1.0.1"):
        with pytest.raises(ImError) as exc:
            await env.service.conversations(alice, 2, bad)
        assert exc.value.code == INVALID_ARGUMENT


async def test_pin_and_mute_sync_to_the_users_other_devices(env: Env) -> None:
    await env.send(BOB, ALICE, "one")
    await env.send(CAROL, ALICE, "two")
    alice_pc = Caller(ALICE, "PC")
    view = await env.service.update_conversation(alice_pc, direct(BOB), True, None)
    assert (view.pinned, view.muted) == (True, False)
    view = await env.service.update_conversation(alice_pc, direct(BOB), None, True)
    assert (view.pinned, view.muted) == (True, True)
    await env.after_commit.drained()
    assert [(u, d, v.conversation, v.pinned, v.muted) for u, d, v in env.notifier.conversation_changes] == [
        (ALICE, "PC", direct(BOB), True, False),
        (ALICE, "PC", direct(BOB), True, True),
    ]
    page = await env.service.conversations(Caller(ALICE, "Web"), 10, "")  # any device sees it
    assert [(v.conversation, v.pinned, v.muted) for v in page.items] == [
        (direct(BOB), True, True),
        (direct(CAROL), False, False),
    ]
    bobs = await env.service.conversations(Caller(BOB, "PC"), 10, "")
    assert [(v.pinned, v.muted) for v in bobs.items] == [(False, False)]  # per user
    with pytest.raises(ImError) as exc:
        await env.service.update_conversation(alice_pc, direct(DAVE), True, None)
    assert exc.value.code == NOT_FOUND


async def test_a_direct_read_moves_the_senders_receipt_in_their_own_seqs(env: Env) -> None:
    await env.send(CAROL, BOB, "bob's seqs run ahead")  # bob: 1
    await env.send(BOB, ALICE, "one")  # alice 1, bob 2
    await env.send(BOB, ALICE, "two")  # alice 2, bob 3
    await env.service.mark_read(Caller(ALICE, "Phone"), direct(BOB), 1)
    await env.after_commit.drained()
    assert env.notifier.receipts == [(BOB, ALICE, 2)]
    assert env.notifier.reads == [(ALICE, "Phone", BOB, 0, 1)]  # alice's other devices, as before
    await env.service.mark_read(Caller(ALICE, "Phone"), direct(BOB), 1)  # nothing moved: no receipt
    await env.service.mark_read(Caller(ALICE, "Phone"), direct(BOB), 2)
    await env.after_commit.drained()
    assert env.notifier.receipts == [(BOB, ALICE, 2), (BOB, ALICE, 3)]
    (with_alice,) = [
        v
        for v in (await env.service.conversations(Caller(BOB, "PC"), 10, "")).items
        if v.conversation == direct(ALICE)
    ]
    assert with_alice.peer_read_seq == 3
    # group reads send no receipt
    await env.post(CAROL, "hi all")
    await env.service.mark_read(Caller(ALICE, "PC"), GROUP_CONV, 3)
    await env.after_commit.drained()
    assert len(env.notifier.receipts) == 2


async def test_sender_recalls_within_two_minutes_and_everyone_gets_a_recall_entry(env: Env) -> None:
    msg_id = await env.send(ALICE, BOB, "wrong chat")
    env.clock.offset_ms = 119_000
    result = await env.service.recall(Caller(ALICE, "PC"), msg_id)
    assert (result.msg_id, result.seq_id, result.already_recalled) == (msg_id, 2, False)
    page = await env.service.sync(Caller(BOB, "PC"), 0, 10)
    original, entry = page.messages
    assert (original.content, original.recalled_by) == ("", ALICE)
    assert entry.msg_type == MsgType.RECALL and json.loads(entry.content) == {
        "event": "recall",
        "msg_id": str(msg_id),
        "by": ALICE,
    }
    history, _ = await env.service.history(Caller(ALICE, "PC"), direct(BOB), 0, 10)
    assert history[0].recalled_by == ALICE and history[0].content == ""
    bobs = (await env.service.conversations(Caller(BOB, "PC"), 10, "")).items
    assert bobs[0].unread == 0 and "wrong chat" not in bobs[0].preview
    await env.writer.pushes_sent()  # the recall's signals come last (maybe in one call with the send's)
    assert env.notifier.batches[-1][-2:] == [PushTarget(ALICE, 2, "PC"), PushTarget(BOB, 2)]
    again = await env.service.recall(Caller(ALICE, "PC"), msg_id)  # a retry writes nothing
    assert again.already_recalled and len(env.store.timelines[BOB]) == 2


async def test_sender_cannot_recall_after_two_minutes(env: Env) -> None:
    msg_id = await env.send(ALICE, BOB, "too late")
    env.clock.offset_ms = 121_000
    with pytest.raises(ImError) as exc:
        await env.service.recall(Caller(ALICE, "PC"), msg_id)
    assert exc.value.code == RECALL_TOO_LATE
    page = await env.service.sync(Caller(BOB, "PC"), 0, 10)
    assert [m.content for m in page.messages] == ["too late"]


async def test_only_the_sender_recalls_a_direct_message(env: Env) -> None:
    msg_id = await env.send(ALICE, BOB, "mine")
    with pytest.raises(ImError) as exc:
        await env.service.recall(Caller(BOB, "PC"), msg_id)
    assert exc.value.code == PERMISSION_DENIED
    with pytest.raises(ImError) as exc:
        await env.service.recall(Caller(CAROL, "PC"), msg_id)  # carol has no copy
    assert exc.value.code == NOT_FOUND


async def test_group_owner_and_admin_recall_any_group_message_at_any_time(env: Env) -> None:
    by_carol = await env.post(CAROL, "spam")
    by_dave = await env.post(DAVE, "more spam")
    by_alice = await env.post(ALICE, "owner's")
    env.clock.offset_ms = 3_600_000  # an hour later
    assert not (await env.service.recall(Caller(BOB, "PC"), by_carol)).already_recalled  # admin
    assert not (await env.service.recall(Caller(ALICE, "PC"), by_dave)).already_recalled  # owner
    assert not (await env.service.recall(Caller(BOB, "PC"), by_alice)).already_recalled  # admin, owner's
    with pytest.raises(ImError) as exc:  # a plain member may not, even within the window
        env.clock.offset_ms = 0
        await env.service.recall(Caller(CAROL, "PC"), await env.post(DAVE, "dave's"))
    assert exc.value.code == PERMISSION_DENIED
    page = await env.service.sync(Caller(CAROL, "PC"), 0, 20)
    recalled = {m.msg_id: m.recalled_by for m in page.messages if m.recalled_by}
    assert recalled == {by_carol: BOB, by_dave: ALICE, by_alice: BOB}
    entries = [m for m in page.messages if m.msg_type == MsgType.RECALL]
    assert [(m.sender_id, m.group_id) for m in entries] == [(BOB, GROUP), (ALICE, GROUP), (BOB, GROUP)]


async def test_server_written_messages_cannot_be_recalled(env: Env) -> None:
    await env.writer.post_notice(ALICE, [BOB], 0, MsgType.SYSTEM, '{"event":"friend_added"}')
    (notice,) = env.store.timelines[BOB]
    with pytest.raises(ImError) as exc:
        await env.service.recall(Caller(ALICE, "PC"), notice.msg_id)
    assert exc.value.code == NOT_FOUND  # alice has no copy of her own notice
    msg_id = await env.post(CAROL, "x")
    await env.service.recall(Caller(CAROL, "PC"), msg_id)
    entry = env.store.timelines[ALICE][-1]
    with pytest.raises(ImError) as exc:
        await env.service.recall(Caller(ALICE, "PC"), entry.msg_id)  # even the owner: a RECALL entry
    assert exc.value.code == NOT_RECALLABLE


async def test_group_read_counts_only_for_the_callers_own_messages(env: Env) -> None:
    mine = await env.post(ALICE, "read me")
    theirs = await env.post(BOB, "bob's")
    for member in (BOB, CAROL):
        await env.service.mark_read(Caller(member, "PC"), GROUP_CONV, 1)
    counts = await env.service.group_read_counts(Caller(ALICE, "PC"), GROUP, [mine, theirs])
    assert [(c.msg_id, c.read, c.total) for c in counts] == [(mine, 2, 3)]
    with pytest.raises(ImError) as exc:
        await env.service.group_read_counts(Caller(ALICE, "PC"), GROUP, list(range(1, 102)))
    assert exc.value.code == INVALID_ARGUMENT
    with pytest.raises(ImError) as exc:
        await env.service.group_read_counts(Caller(ALICE, "PC"), 0, [mine])
    assert exc.value.code == INVALID_ARGUMENT
