"""Push carries the message: the writer encodes each owner's copy, the gateway connection carries a small
pile of them in one MsgPushNotify, and the SDK applies them only when they continue its timeline."""

from __future__ import annotations

import asyncio

from google.protobuf.message import Message as ProtoMessage

from tests.unit.fakes import FakePolicy, RecordingNotifier
from tinyim.client.options import ClientOptions
from tinyim.client.sdk import Client
from tinyim.edges.gateway.connection import INLINE_MAX_MESSAGES, Connection, TokenBucket
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import Caller, PushTarget
from tinyim.modules.timeline import MsgType, SendRequest, TimelineService, TimelineWriter
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.protocol import inline_messages
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode

ALICE, BOB, CAROL = 1, 2, 3
GROUP = 10


def service(notifier: RecordingNotifier, inline_max: int = 2048) -> TimelineService:
    store = InMemoryTimelineStore()
    writer = TimelineWriter(
        store, Snowflake(1), notifier, inline=inline_messages, inline_max_bytes=inline_max
    )
    policy = FakePolicy({ALICE, BOB, CAROL}, {GROUP: [ALICE, BOB, CAROL]})
    return TimelineService(store, writer, policy, notifier)


async def pushed_targets(notifier: RecordingNotifier) -> dict[int, PushTarget]:
    for _ in range(20):  # the signal may go out after the ack
        if notifier.batches:
            break
        await asyncio.sleep(0.01)
    return {t.user_id: t for batch in notifier.batches for t in batch}


async def test_each_owner_gets_their_own_copy_of_a_direct_message() -> None:
    notifier = RecordingNotifier()
    sent = await service(notifier).send(
        Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "hello 你好", "c-1")
    )
    targets = await pushed_targets(notifier)
    bob = pb.MessageData.FromString(targets[BOB].message)
    alice = pb.MessageData.FromString(targets[ALICE].message)
    assert (bob.seq_id, bob.is_sender, alice.seq_id, alice.is_sender) == (1, False, sent.seq_id, True)
    for m in (bob, alice):
        assert (m.msg_id, m.sender_id, m.receiver_id, m.group_id) == (sent.msg_id, ALICE, BOB, 0)
        assert (m.content, m.client_msg_id, m.type) == ("hello 你好", "c-1", pb.TEXT)
        assert m.create_time == sent.send_time_ms


async def test_group_copies_differ_only_in_seq_and_sender_flag() -> None:
    notifier = RecordingNotifier()
    svc = service(notifier)
    await svc.send(Caller(BOB, "PC"), SendRequest(CAROL, 0, MsgType.TEXT, "earlier", ""))  # seqs differ
    notifier.batches.clear()
    await svc.send(Caller(ALICE, "PC"), SendRequest(0, GROUP, MsgType.TEXT, "to all", ""))
    targets = await pushed_targets(notifier)
    copies = {owner: pb.MessageData.FromString(t.message) for owner, t in targets.items()}
    assert {o: (m.seq_id, m.is_sender) for o, m in copies.items()} == {
        ALICE: (1, True),
        BOB: (2, False),
        CAROL: (2, False),
    }
    assert {(m.group_id, m.receiver_id, m.content) for m in copies.values()} == {(GROUP, 0, "to all")}


async def test_a_large_message_is_only_signalled() -> None:
    notifier = RecordingNotifier()
    await service(notifier, inline_max=16).send(
        Caller(ALICE, "PC"),
        SendRequest(BOB, 0, MsgType.TEXT, "é" * 9, ""),  # 18 bytes in UTF-8
    )
    targets = await pushed_targets(notifier)
    assert targets[BOB].message == b"" and targets[BOB].max_seq == 1


# ---------- the gateway connection: what one MsgPushNotify carries ----------
class Wire:
    def __init__(self) -> None:
        self.frames: list[pb.MsgPushNotify] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, data: bytes) -> None:
        await self.gate.wait()
        frame = decode(data, 1 << 20)
        assert frame.cmd == Cmd.CMD_MSG_PUSH_NOTIFY
        self.frames.append(pb.MsgPushNotify.FromString(frame.body))


def connection(wire: Wire) -> Connection:
    async def close(_code: int, _reason: str) -> None:
        return None

    bucket = TokenBucket(100, 100)
    return Connection(wire.send, close, BOB, "PC", "t", "c", bucket, TokenBucket(1, 10))


def copy(seq: int) -> bytes:
    return pb.MessageData(msg_id=100 + seq, seq_id=seq, content=f"m{seq}").SerializeToString()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_pile_of_signals_carries_its_messages_in_seq_order() -> None:
    wire = Wire()
    conn = connection(wire)
    wire.gate.clear()  # the first push is stuck on the socket while more arrive
    conn.signal(1, copy(1))
    await settle()
    conn.signal(3, copy(3))
    conn.signal(2, b"")  # older than what is queued: dropped, as before
    conn.signal(4, copy(4))
    wire.gate.set()
    await settle()
    assert [(f.max_seq_id, [m.seq_id for m in f.msgs]) for f in wire.frames] == [(1, [1]), (4, [3, 4])]


async def test_a_signal_without_its_message_leaves_only_the_seq() -> None:
    wire = Wire()
    conn = connection(wire)
    wire.gate.clear()
    conn.signal(1, b"")
    await settle()
    conn.signal(2, copy(2))
    conn.signal(3, b"")  # too large to ride: the client must sync anyway
    conn.signal(4, copy(4))
    wire.gate.set()
    await settle()
    assert [(f.max_seq_id, len(f.msgs)) for f in wire.frames] == [(1, 0), (4, 0)]
    conn.signal(5, copy(5))  # the next pile starts afresh
    await settle()
    assert [m.seq_id for m in wire.frames[-1].msgs] == [5]


async def test_too_many_piled_messages_leave_only_the_seq() -> None:
    wire = Wire()
    conn = connection(wire)
    wire.gate.clear()
    conn.signal(1, copy(1))
    await settle()
    for seq in range(2, 3 + INLINE_MAX_MESSAGES):
        conn.signal(seq, copy(seq))
    wire.gate.set()
    await settle()
    assert [(f.max_seq_id, len(f.msgs)) for f in wire.frames] == [(1, 1), (2 + INLINE_MAX_MESSAGES, 0)]


# ---------- the SDK: apply when the messages continue the timeline, sync otherwise ----------
GAP_WAIT = 0.2


class OfflineClient(Client):
    """The SDK's timeline logic without a server: its sync requests are counted and answered from
    `stored` (the server's timeline) instead of being sent."""

    def __init__(self, gap_wait: float = GAP_WAIT) -> None:
        super().__init__("http://unused", "bob", "pw", options=ClientOptions(gap_wait=gap_wait))
        self.user_id = BOB
        self.syncs = 0
        self.synced_at: list[float] = []
        self.stored: list[pb.MessageData] = []

    async def request(self, cmd: int, body: ProtoMessage) -> ProtoMessage:
        assert cmd == Cmd.CMD_MSG_SYNC_REQ and isinstance(body, pb.MsgSyncReq)
        self.syncs += 1
        self.synced_at.append(asyncio.get_running_loop().time())
        return pb.MsgSyncResp(msgs=[m for m in self.stored if m.seq_id > body.local_max_seq])


def message(seq: int, sender: int = ALICE, cmid: str = "") -> pb.MessageData:
    return pb.MessageData(
        msg_id=1000 + seq, seq_id=seq, sender_id=sender, content=f"m{seq}", client_msg_id=cmid
    )


async def drain(client: OfflineClient) -> None:
    assert client._sync_task is not None
    await client._sync_task


async def test_the_next_messages_are_applied_without_a_sync() -> None:
    client = OfflineClient()
    client.local_max_seq = 4
    client._schedule_sync([message(5), message(6)])
    await drain(client)
    assert (client.syncs, client.local_max_seq) == (0, 6)
    assert [m.content for m in client.take_delivered()] == ["m5", "m6"]


async def test_a_gap_that_stays_open_means_one_sync_after_gap_wait_and_nothing_applied_before() -> None:
    client = OfflineClient(gap_wait=0.5)  # well past the look at 0.05 s, even on a loaded machine
    client.local_max_seq = 4
    started = asyncio.get_running_loop().time()
    client._schedule_sync([message(6)])  # seq 5 has not arrived (its push was lost)
    await asyncio.sleep(0.05)
    assert (client.syncs, client.local_max_seq, client.take_delivered()) == (0, 4, [])  # 6 waits for 5
    await drain(client)
    assert client.syncs == 1 and client.synced_at[0] - started >= 0.45
    assert (client.local_max_seq, client.take_delivered()) == (4, [])  # the (empty) sync brought nothing


async def test_a_gap_filled_by_a_late_push_is_applied_in_order_without_a_sync() -> None:
    """A busy group's paced push, overtaken by a 1:1 push or this device's own ack, arrives later."""
    client = OfflineClient(gap_wait=5.0)  # the test ends when the gap fills, long before this
    client.local_max_seq = 4
    client._schedule_sync([message(6), message(7)])
    await asyncio.sleep(0.01)
    client._schedule_sync([message(5)])
    await drain(client)
    assert (client.syncs, client.local_max_seq) == (0, 7)
    assert [m.content for m in client.take_delivered()] == ["m5", "m6", "m7"]


async def test_a_sync_fills_the_gap_and_what_was_held_is_not_delivered_twice() -> None:
    client = OfflineClient()
    client.local_max_seq = 4
    client.stored = [message(5), message(6), message(7)]
    client._schedule_sync([message(6)])
    await drain(client)
    assert (client.syncs, client.local_max_seq) == (1, 7)
    assert [m.content for m in client.take_delivered()] == ["m5", "m6", "m7"]
    client._schedule_sync([message(8)])  # the next push continues from the sync
    await drain(client)
    assert (client.syncs, client.local_max_seq, client._ahead) == (1, 8, {})


async def test_what_was_held_past_the_synced_end_is_applied_after_the_sync_without_another() -> None:
    """The sync ends at 6 (7 is not visible to it yet); 7, held from its push, continues at once."""
    client = OfflineClient()
    client.local_max_seq = 4
    client.stored = [message(5), message(6)]
    client._schedule_sync([message(7)])
    await asyncio.wait_for(drain(client), 5)
    assert (client.syncs, client.local_max_seq, client._ahead) == (1, 7, {})
    assert [m.content for m in client.take_delivered()] == ["m5", "m6", "m7"]


class LateWriteClient(OfflineClient):
    """Its server makes seq 6 visible only after the first sync."""

    async def request(self, cmd: int, body: ProtoMessage) -> ProtoMessage:
        answer = await super().request(cmd, body)
        if self.syncs == 1:
            self.stored.append(message(6))
        return answer


async def test_a_gap_the_sync_did_not_fill_keeps_what_is_held_for_the_next_sync() -> None:
    """One sync per gap wait, as ever (no polling while a seq stays invisible); the next signal's sync
    (a push, or the heartbeat's pull) brings the missing seq and what was held follows it."""
    client = LateWriteClient()
    client.local_max_seq = 4
    client.stored = [message(5)]
    client._schedule_sync([message(7)])  # 5 and 6 missing; the first sync brings only 5
    await asyncio.wait_for(drain(client), 5)
    assert (client.syncs, client.local_max_seq, list(client._ahead)) == (1, 5, [7])
    client._schedule_sync()
    await asyncio.wait_for(drain(client), 5)
    assert (client.syncs, client.local_max_seq, client._ahead) == (2, 7, {})
    assert [m.content for m in client.take_delivered()] == ["m5", "m6", "m7"]


async def test_a_signal_without_messages_during_the_wait_syncs_at_once() -> None:
    client = OfflineClient(gap_wait=30.0)
    client.local_max_seq = 4
    client.stored = [message(5), message(6), message(7)]
    client._schedule_sync([message(6)])
    await asyncio.sleep(0.01)
    client._schedule_sync()  # seq 7 was too large to ride its push: only a sync can bring it
    await asyncio.wait_for(drain(client), 5)
    assert (client.syncs, client.local_max_seq) == (1, 7)


async def test_gap_wait_zero_syncs_at_once() -> None:
    client = OfflineClient(gap_wait=0)
    client.local_max_seq = 4
    client._schedule_sync([message(6)])
    await asyncio.wait_for(drain(client), 1)
    assert client.syncs == 1


async def test_a_duplicate_push_is_ignored() -> None:
    client = OfflineClient()
    client.local_max_seq = 4
    client._schedule_sync([message(5)])
    await drain(client)
    client._schedule_sync([message(4), message(5)])  # already applied (a resent or late push)
    await drain(client)
    assert (client.syncs, client.local_max_seq) == (0, 5)
    assert [m.content for m in client.take_delivered()] == ["m5"]


async def test_an_own_send_that_is_the_next_seq_needs_no_sync_and_is_not_echoed() -> None:
    client = OfflineClient()
    client.local_max_seq = 2
    client._remember_sent("mine")
    client._schedule_sync([message(3, sender=BOB, cmid="mine")])
    await drain(client)
    assert (client.syncs, client.local_max_seq, client.take_delivered()) == (0, 3, [])


# ---------- the SDK's reconnect: a gateway that could not check the token is asked again ----------
async def test_a_reconnect_refused_with_503_is_retried_not_taken_as_revoked() -> None:
    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidStatus
    from websockets.http11 import Response

    client = OfflineClient()
    client.session._backoff = (0.001, 0.002)
    client.token, client.token_expires_at = "live", 2**40
    attempts: list[str] = []

    async def redispatch() -> None:
        return None

    async def connect() -> None:
        attempts.append(client.token)
        if len(attempts) < 3:
            raise InvalidStatus(Response(503, "Service Unavailable", Headers()))
        client.connects += 1
        client.session.closing = True  # connected: the test ends here

    client.session._redispatch = redispatch  # type: ignore[method-assign]
    client.session._connect = connect  # type: ignore[method-assign]

    async def idle() -> None:
        return None

    client.session._reader = asyncio.create_task(idle())  # the connection that just dropped
    client.session._beater = asyncio.create_task(idle())
    await asyncio.wait_for(client.session._supervise(), 5)
    assert not client.kicked.is_set()
    assert attempts == ["live", "live", "live"] and client.connects == 1  # the token was kept


async def test_an_active_client_pulls_once_per_heartbeat_and_an_idle_one_never() -> None:
    """A lost last push (a msg node killed between commit and push) waits one heartbeat at most."""
    client = OfflineClient()
    client.session._heartbeat_interval = 0.01

    async def heartbeat() -> int:
        return 0

    client.session.heartbeat = heartbeat  # type: ignore[method-assign]
    beats = asyncio.create_task(client.session._heartbeats(None))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert client.syncs == 0  # idle: no pull
    client._active = True  # a push came (or a send was answered)
    await asyncio.sleep(0.05)
    assert client.syncs == 1  # one pull, then idle again
    beats.cancel()


def test_each_copy_parses_as_the_message_serialized_in_full() -> None:
    """The hand-encoded seq and sender flag, at varint boundaries, equal a MessageData built in full."""
    from tinyim.modules.timeline import StoredMessage

    message = StoredMessage(0, 7 << 40, ALICE, 0, GROUP, int(MsgType.TEXT), "héllo", "c-1", False, 0)
    seqs = {ALICE: 2**63 - 1, BOB: 127, CAROL: 128, 4: 0, 5: 16_384, 6: 300}
    for owner, copy in inline_messages(message, seqs).items():
        full = pb.MessageData(
            msg_id=message.msg_id, seq_id=seqs[owner], sender_id=ALICE, group_id=GROUP, content="héllo",
            create_time=message.created_ms, client_msg_id="c-1", is_sender=owner == ALICE,
        )  # fmt: skip
        assert pb.MessageData.FromString(copy) == full
