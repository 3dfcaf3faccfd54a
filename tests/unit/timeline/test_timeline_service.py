"""timeline service with in-memory fakes (spec test plan C.2, plus dedup and validation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakePolicy, RecordingNotifier
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import (
    CLIENT_MSG_ID_REUSED,
    INVALID_ARGUMENT,
    NOT_FOUND,
    NOT_MEMBER,
    AfterCommit,
    Caller,
    ImError,
    PushTarget,
)
from tinyim.modules.timeline import (
    Appended,
    Conversation,
    ConvType,
    MessageBody,
    MsgType,
    NoticeApi,
    SendRequest,
    SendResult,
    TimelineApi,
    TimelineService,
    TimelineSlot,
    TimelineWriter,
)
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.adapters.rpc import GrpcTimelineClient, msg_registrar
from tinyim.pb.im_internal_pb2_grpc import MsgServiceStub

ALICE, BOB, CAROL = 1, 2, 3
GROUP = 1  # the same number as ALICE on purpose: user and group ids overlap


class Env:
    def __init__(self, notifier_fails: bool = False) -> None:
        self.store = InMemoryTimelineStore()
        self.notifier = RecordingNotifier(fail=notifier_fails)
        self.writer = TimelineWriter(self.store, Snowflake(1), self.notifier)
        self.notices: NoticeApi = self.writer
        self.policy = FakePolicy({ALICE, BOB, CAROL}, {GROUP: [ALICE, BOB, CAROL]})
        self.after_commit = AfterCommit()  # read notices leave after the answer, through this queue
        self.local = TimelineService(
            self.store,
            self.writer,
            self.policy,
            self.notifier,
            max_content_bytes=100,
            sync_page_default=5,
            sync_page_max=10,
            after_commit=self.after_commit,
        )
        self.service: TimelineApi = self.local

    async def send(
        self, sender: int, receiver: int, text: str, cmid: str = "", device: str = "PC"
    ) -> SendResult:
        return await self.service.send(
            Caller(sender, device), SendRequest(receiver, 0, MsgType.TEXT, text, cmid)
        )


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """The TimelineApi/NoticeApi contract: the local service, and the gRPC client adapter in front of it."""
    env = Env()
    async with remote_if(
        request.param, "msg", msg_registrar(env.local, env.writer), MsgServiceStub
    ) as remote:
        if remote is not None:
            env.service = env.notices = GrpcTimelineClient(remote)
        yield env


async def test_send_stores_one_body_and_two_timeline_entries(env: Env) -> None:
    result = await env.service.send(Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "hi", "c1"))
    assert list(env.store.bodies) == [result.msg_id] and env.store.appends == 1
    (mine,) = env.store.timelines[ALICE]
    (theirs,) = env.store.timelines[BOB]
    assert (mine.is_sender, mine.receiver_id, mine.seq_id) == (True, BOB, result.seq_id)
    assert (theirs.is_sender, theirs.sender_id, theirs.receiver_id, theirs.content) == (
        False,
        ALICE,
        BOB,
        "hi",
    )


async def test_send_signals_receiver_and_the_senders_other_devices(env: Env) -> None:
    await env.send(ALICE, BOB, "one", device="Web")
    await env.writer.pushes_sent()  # signals leave after the ack, through the writer's queue
    assert env.notifier.batches == [[PushTarget(ALICE, 1, "Web"), PushTarget(BOB, 1, "")]]


async def test_retry_with_same_client_msg_id_writes_nothing_and_signals_nothing(env: Env) -> None:
    first = await env.send(ALICE, BOB, "once", "same-id")
    again = await env.send(ALICE, BOB, "once", "same-id")
    assert (again.msg_id, again.seq_id, again.duplicate) == (first.msg_id, first.seq_id, True)
    assert env.store.appends == 1 and len(env.store.timelines[BOB]) == 1
    await env.writer.pushes_sent()
    assert len(env.notifier.batches) == 1
    other = await env.send(CAROL, BOB, "same id, other sender", "same-id")
    assert not other.duplicate


async def test_sync_returns_the_range_after_local_seq(env: Env) -> None:
    for i in range(15):
        await env.send(ALICE, BOB, f"m{i + 1}")
    page = await env.service.sync(Caller(BOB, "PC"), after_seq=10, limit=5)
    assert [m.seq_id for m in page.messages] == [11, 12, 13, 14, 15]
    assert [m.content for m in page.messages] == ["m11", "m12", "m13", "m14", "m15"]
    assert (page.max_seq, page.has_more) == (15, False)


async def test_sync_pages_and_caps_the_limit(env: Env) -> None:
    for i in range(25):
        await env.send(ALICE, BOB, f"m{i}")
    page = await env.service.sync(Caller(BOB, "PC"), after_seq=0, limit=1000)
    assert len(page.messages) == 10 and page.has_more and page.max_seq == 25  # capped at sync_page_max
    page = await env.service.sync(Caller(BOB, "PC"), after_seq=0, limit=0)
    assert len(page.messages) == 5  # 0 = the default page
    page = await env.service.sync(Caller(BOB, "PC"), after_seq=99, limit=5)
    assert page.messages == [] and page.max_seq == 25


async def test_sync_reads_only_the_callers_timeline(env: Env) -> None:
    await env.send(ALICE, BOB, "for bob")
    page = await env.service.sync(Caller(CAROL, "PC"), 0, 10)
    assert page.messages == [] and page.max_seq == 0


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (SendRequest(BOB, 0, MsgType.TEXT, ""), INVALID_ARGUMENT),
        (SendRequest(BOB, 0, MsgType.TEXT, "x" * 101), INVALID_ARGUMENT),
        (SendRequest(BOB, 0, MsgType.TEXT, "é" * 51), INVALID_ARGUMENT),  # 102 bytes
        (SendRequest(BOB, 0, MsgType.SYSTEM, "spoof"), INVALID_ARGUMENT),
        (SendRequest(BOB, 0, MsgType.FRIEND_REQ, "spoof"), INVALID_ARGUMENT),
        (SendRequest(BOB, 0, 99, "x"), INVALID_ARGUMENT),
        (SendRequest(0, 0, MsgType.TEXT, "to nobody"), INVALID_ARGUMENT),
        (SendRequest(BOB, 7, MsgType.TEXT, "both"), INVALID_ARGUMENT),
        (SendRequest(BOB, 0, MsgType.TEXT, "x", "c" * 65), INVALID_ARGUMENT),
        (SendRequest(ALICE, 0, MsgType.TEXT, "to myself"), INVALID_ARGUMENT),
        (SendRequest(404, 0, MsgType.TEXT, "x"), NOT_FOUND),
        (SendRequest(0, 7, MsgType.TEXT, "no such group"), NOT_FOUND),
    ],
)
async def test_refused_sends_write_nothing(env: Env, req: SendRequest, code: str) -> None:
    with pytest.raises(ImError) as exc:
        await env.service.send(Caller(ALICE, "PC"), req)
    assert exc.value.code == code
    assert env.store.bodies == {} and env.notifier.batches == []


async def test_a_failing_push_does_not_fail_the_send(env: Env) -> None:
    failing = Env(notifier_fails=True)
    result = await failing.send(ALICE, BOB, "still stored")
    assert result.seq_id == 1
    page = await failing.service.sync(Caller(BOB, "PC"), 0, 10)
    assert [m.content for m in page.messages] == ["still stored"]


async def test_seqs_are_per_owner(env: Env) -> None:
    await env.send(ALICE, BOB, "a->b")
    await env.send(CAROL, BOB, "c->b")
    await env.send(ALICE, CAROL, "a->c")
    assert [m.seq_id for m in env.store.timelines[BOB]] == [1, 2]
    assert [m.seq_id for m in env.store.timelines[CAROL]] == [1, 2]
    assert [m.seq_id for m in env.store.timelines[ALICE]] == [1, 2]


async def test_group_send_writes_one_body_and_a_copy_per_member(env: Env) -> None:
    result = await env.service.send(Caller(BOB, "PC"), SendRequest(0, GROUP, MsgType.TEXT, "hello all"))
    assert len(env.store.bodies) == 1 and env.store.appends == 1
    for member in (ALICE, BOB, CAROL):
        (m,) = env.store.timelines[member]
        assert (m.group_id, m.sender_id, m.receiver_id, m.is_sender) == (GROUP, BOB, 0, member == BOB)
    assert result.seq_id == 1
    await env.writer.pushes_sent()
    (batch,) = env.notifier.batches  # one notify call for the whole group
    assert sorted(batch, key=lambda t: t.user_id) == [
        PushTarget(ALICE, 1),
        PushTarget(BOB, 1, "PC"),
        PushTarget(CAROL, 1),
    ]


async def test_non_member_cannot_post_to_a_group(env: Env) -> None:
    env.policy.groups[GROUP].remove(CAROL)
    with pytest.raises(ImError) as exc:
        await env.service.send(Caller(CAROL, "PC"), SendRequest(0, GROUP, MsgType.TEXT, "let me in"))
    assert exc.value.code == NOT_MEMBER and env.store.bodies == {}


async def test_notices_land_only_with_their_receivers(env: Env) -> None:
    await env.notices.post_notice(ALICE, [BOB], 0, MsgType.FRIEND_REQ, '{"event":"friend_request"}')
    assert ALICE not in env.store.timelines
    (m,) = env.store.timelines[BOB]
    assert (m.msg_type, m.sender_id, m.receiver_id, m.is_sender) == (MsgType.FRIEND_REQ, ALICE, BOB, False)
    await env.writer.pushes_sent()
    assert env.notifier.batches == [[PushTarget(BOB, 1)]]


async def test_a_notice_posted_again_with_its_key_is_written_once(env: Env) -> None:
    """The relation outbox redelivers at-least-once: the key (through gRPC too) makes it idempotent,
    for a 1:1 notice (no copy for the sender) and for a group notice (one body, every member once)."""
    for _ in range(2):
        await env.notices.post_notice(
            ALICE, [BOB], 0, MsgType.SYSTEM, '{"event":"friend_added"}', "relation:k1"
        )
        await env.notices.post_notice(
            BOB, [ALICE, CAROL], GROUP, MsgType.SYSTEM, '{"event":"x"}', "relation:k2"
        )
    assert [m.content for m in env.store.timelines[BOB]] == ['{"event":"friend_added"}']
    assert len(env.store.timelines[ALICE]) == len(env.store.timelines[CAROL]) == 1
    assert len(env.store.bodies) == 2
    # without a key, a notice posted twice is two notices (as before)
    await env.notices.post_notice(ALICE, [BOB], 0, MsgType.SYSTEM, '{"event":"y"}')
    await env.notices.post_notice(ALICE, [BOB], 0, MsgType.SYSTEM, '{"event":"y"}')
    assert len(env.store.timelines[BOB]) == 3


async def test_a_client_send_cannot_reuse_a_notice_key(env: Env) -> None:
    await env.notices.post_notice(ALICE, [BOB], 0, MsgType.SYSTEM, '{"event":"friend_added"}', "relation:k3")
    with pytest.raises(ImError) as exc:
        await env.service.send(Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "hi", "relation:k3"))
    assert exc.value.code == CLIENT_MSG_ID_REUSED
    assert len(env.store.timelines[BOB]) == 1


async def test_history_pages_backwards_within_one_conversation(env: Env) -> None:
    for i in range(6):
        await env.send(ALICE, BOB, f"a{i}")
        await env.send(CAROL, BOB, f"c{i}")
    await env.service.send(Caller(ALICE, "PC"), SendRequest(0, GROUP, MsgType.TEXT, "in the group"))
    bob = Caller(BOB, "PC")
    page, more = await env.service.history(bob, Conversation(ConvType.DIRECT, ALICE), 0, 4)
    assert [m.content for m in page] == ["a2", "a3", "a4", "a5"] and more
    older, more = await env.service.history(bob, Conversation(ConvType.DIRECT, ALICE), page[0].seq_id, 4)
    assert [m.content for m in older] == ["a0", "a1"] and not more
    group, _ = await env.service.history(bob, Conversation(ConvType.GROUP, GROUP), 0, 10)
    assert [m.content for m in group] == ["in the group"]  # group 1 is not user 1


async def test_read_marks_and_unread_counts(env: Env) -> None:
    for i in range(3):
        await env.send(ALICE, BOB, f"a{i}")
    await env.send(CAROL, BOB, "c0")
    await env.send(BOB, ALICE, "mine does not count")
    bob = Caller(BOB, "Web")
    unread = {u.conversation: u.unread for u in await env.service.unread(bob)}
    assert unread == {Conversation(ConvType.DIRECT, ALICE): 3, Conversation(ConvType.DIRECT, CAROL): 1}
    stored = await env.service.mark_read(bob, Conversation(ConvType.DIRECT, ALICE), 2)
    assert stored == 2
    assert await env.service.mark_read(bob, Conversation(ConvType.DIRECT, ALICE), 1) == 2  # never goes back
    unread = {u.conversation: u.unread for u in await env.service.unread(bob)}
    assert unread == {Conversation(ConvType.DIRECT, ALICE): 1, Conversation(ConvType.DIRECT, CAROL): 1}
    with pytest.raises(ImError):
        await env.service.mark_read(bob, Conversation(ConvType.DIRECT, ALICE), 999)
    await env.after_commit.drained()
    assert env.notifier.reads[-1] == (BOB, "Web", ALICE, 0, 2)


async def test_send_many_answers_each_send_alone_in_order_and_writes_them_together() -> None:
    """A msg node's batch: refusals (a stranger, too long, a reused client_msg_id) fail only their own
    send; the others are written, signalled and answered as `send` answers them."""
    env = Env()
    first = await env.send(ALICE, BOB, "first", "c-1")
    outcomes = await env.local.send_many(
        [
            (Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "one", "")),
            (Caller(ALICE, "PC"), SendRequest(999, 0, MsgType.TEXT, "to nobody", "")),
            (Caller(BOB, "Web"), SendRequest(ALICE, 0, MsgType.TEXT, "x" * 101, "")),
            (Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "not first", "c-1")),
            (Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "first", "c-1")),
            (Caller(CAROL, "PC"), SendRequest(0, GROUP, MsgType.TEXT, "to all", "")),
        ]
    )
    one, stranger, too_long, reused, retried, group = outcomes
    assert isinstance(stranger, ImError) and stranger.code == NOT_FOUND
    assert isinstance(too_long, ImError) and too_long.code == INVALID_ARGUMENT
    assert isinstance(reused, ImError) and reused.code == CLIENT_MSG_ID_REUSED
    assert isinstance(retried, SendResult) and retried.duplicate and retried.msg_id == first.msg_id
    assert isinstance(one, SendResult) and isinstance(group, SendResult) and not one.duplicate
    assert [m.content for m in env.store.timelines[BOB]] == ["first", "one", "to all"]
    assert one.seq_id == 2 and group.seq_id == 1  # Alice's 2nd message; Carol's first
    await env.writer.pushes_sent()
    signalled = [(t.user_id, t.max_seq) for batch in env.notifier.batches for t in batch]
    assert (BOB, 2) in signalled and (BOB, 3) in signalled and (ALICE, 3) in signalled


async def test_send_many_answers_every_send_when_the_batch_write_itself_fails() -> None:
    """A failure of the whole write (not of one message) is each send's answer; a refused send keeps its
    own refusal; nothing escapes to fail the stream the batch came on."""

    class Broken(InMemoryTimelineStore):
        async def append_many(
            self, items: Sequence[tuple[MessageBody, Sequence[TimelineSlot]]]
        ) -> list[Appended | Exception]:
            raise RuntimeError("the database went away")

    env, broken = Env(), Broken()
    writer = TimelineWriter(broken, Snowflake(1), env.notifier)
    service = TimelineService(broken, writer, env.policy, env.notifier)
    outcomes = await service.send_many(
        [
            (Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "one", "")),
            (Caller(ALICE, "PC"), SendRequest(999, 0, MsgType.TEXT, "to nobody", "")),
            (Caller(BOB, "PC"), SendRequest(ALICE, 0, MsgType.TEXT, "two", "")),
        ]
    )
    assert [type(o).__name__ for o in outcomes] == ["RuntimeError", "ImError", "RuntimeError"]
    assert isinstance(outcomes[1], ImError) and outcomes[1].code == NOT_FOUND


class OverlapPolicy(FakePolicy):
    """timeline.KnownRules over FakePolicy: the pairs in `known_pairs` answer from memory; every check yields
    to the loop and counts how many run at once. `release_at`: the checks wait until that many run."""

    def __init__(self, known: set[tuple[int, int]], release_at: int = 0) -> None:
        super().__init__({ALICE, BOB, CAROL})
        self.known_pairs = known
        self.running = self.most = 0
        self.release_at = release_at
        self.all_running = asyncio.Event()

    def known(self, sender_id: int, receiver_id: int, group_id: int) -> bool:
        return (sender_id, receiver_id) in self.known_pairs

    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        if self.running == self.release_at:
            self.all_running.set()
        try:
            if self.release_at:
                await asyncio.wait_for(self.all_running.wait(), 2)  # in turn, this times out
            await asyncio.sleep(0)
            await super().check_direct(sender_id, receiver_id)
        finally:
            self.running -= 1


def batch_of_three() -> list[tuple[Caller, SendRequest]]:
    return [
        (Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "one", "")),
        (Caller(BOB, "PC"), SendRequest(ALICE, 0, MsgType.TEXT, "two", "")),
        (Caller(CAROL, "PC"), SendRequest(ALICE, 0, MsgType.TEXT, "three", "")),
    ]


async def test_send_many_checks_in_turn_when_every_answer_is_known() -> None:
    env = Env()
    policy = OverlapPolicy({(ALICE, BOB), (BOB, ALICE), (CAROL, ALICE)})
    service = TimelineService(env.store, env.writer, policy, env.notifier)
    outcomes = await service.send_many(batch_of_three())
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert policy.most == 1


async def test_send_many_runs_the_checks_together_when_one_needs_a_call() -> None:
    """A cold rules cache (after a start, or as entries expire): the misses' calls overlap instead of
    adding up; each send is still answered in its place."""
    env = Env()
    policy = OverlapPolicy({(ALICE, BOB), (BOB, ALICE)}, release_at=3)  # Carol's pair is not known
    service = TimelineService(env.store, env.writer, policy, env.notifier)
    outcomes = await service.send_many(batch_of_three())
    assert policy.most == 3
    assert [o.seq_id for o in outcomes if isinstance(o, SendResult)] == [1, 2, 1]  # each sender's own seq
    assert [m.content for m in env.store.timelines[ALICE]] == ["one", "two", "three"]
