"""The after-commit push dispatcher: the ack does not wait for the push, pushes are batched, bounded,
and a failing notifier fails no send."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tests.unit.fakes import RecordingNotifier
from tinyim.infra import metrics
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import Caller, PushTarget
from tinyim.modules.timeline import MsgType, SendRequest, TimelineService, TimelineWriter
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.dispatcher import PushDispatcher

ALICE, BOB, CAROL = 1, 2, 3


class AllowAll:
    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        return None

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        return [sender_id]


class SlowNotifier(RecordingNotifier):
    """A gateway that takes its time: every notify call waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def notify(self, targets: Sequence[PushTarget]) -> None:
        self.started.set()
        await self.release.wait()
        await super().notify(targets)


def service(notifier: RecordingNotifier) -> tuple[TimelineService, TimelineWriter, InMemoryTimelineStore]:
    store = InMemoryTimelineStore()
    writer = TimelineWriter(store, Snowflake(1), notifier)
    return TimelineService(store, writer, AllowAll(), notifier), writer, store


async def test_the_ack_returns_before_a_slow_notifier_finishes() -> None:
    notifier = SlowNotifier()
    timeline, writer, store = service(notifier)
    result = await asyncio.wait_for(
        timeline.send(Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "hi")), 5
    )
    assert result.seq_id == 1 and len(store.timelines[BOB]) == 1
    await asyncio.wait_for(notifier.started.wait(), 5)  # the push is under way, and still unfinished
    assert notifier.batches == []
    notifier.release.set()
    await writer.pushes_sent()
    assert notifier.batches == [[PushTarget(ALICE, 1, "PC"), PushTarget(BOB, 1)]]


async def test_a_failing_notifier_fails_no_send_and_the_next_pushes_still_go() -> None:
    notifier = RecordingNotifier(fail=True)
    store, failures = InMemoryTimelineStore(), []
    writer = TimelineWriter(store, Snowflake(1), notifier, on_push_failure=lambda: failures.append(1))
    timeline = TimelineService(store, writer, AllowAll(), notifier)
    first = await timeline.send(Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "one"))
    await writer.pushes_sent()
    second = await timeline.send(Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "two"))
    await writer.pushes_sent()
    assert (first.seq_id, second.seq_id) == (1, 2)
    assert [[t.max_seq for t in b if t.user_id == BOB] for b in notifier.batches] == [[1], [2]]
    assert len(failures) == 2  # each failed notify call is counted (tinyim_after_commit_failed_total)


async def test_sends_that_finish_together_share_one_notify_call() -> None:
    notifier = RecordingNotifier()
    timeline, writer, _ = service(notifier)
    await asyncio.gather(
        *(timeline.send(Caller(s, "PC"), SendRequest(CAROL, 0, MsgType.TEXT, "x")) for s in (ALICE, BOB))
    )
    await writer.pushes_sent()
    assert len(notifier.batches) == 1
    assert sorted(t.max_seq for t in notifier.batches[0] if t.user_id == CAROL) == [1, 2]


async def test_pushes_queued_during_a_slow_notify_go_in_order_in_the_next_call() -> None:
    notifier = SlowNotifier()
    dispatcher = PushDispatcher(notifier)
    dispatcher.submit([PushTarget(BOB, 1)])
    await asyncio.wait_for(notifier.started.wait(), 5)
    dispatcher.submit([PushTarget(BOB, 2)])
    dispatcher.submit([PushTarget(BOB, 3), PushTarget(CAROL, 1)])
    notifier.release.set()
    await dispatcher.drained()
    assert notifier.batches == [
        [PushTarget(BOB, 1)],
        [PushTarget(BOB, 2), PushTarget(BOB, 3), PushTarget(CAROL, 1)],
    ]


async def test_a_full_queue_drops_the_oldest_targets_and_counts_them() -> None:
    notifier = SlowNotifier()
    dispatcher = PushDispatcher(notifier, max_pending=3, on_drop=metrics.PUSHES_DROPPED.inc)
    dispatcher.submit([PushTarget(BOB, 1)])
    await asyncio.wait_for(notifier.started.wait(), 5)  # taken by the first call: no longer queued
    before = metrics.PUSHES_DROPPED._value.get()
    dispatcher.submit([PushTarget(BOB, s) for s in range(2, 7)])
    assert metrics.PUSHES_DROPPED._value.get() - before == 2
    notifier.release.set()
    await dispatcher.drained()
    assert notifier.batches == [
        [PushTarget(BOB, 1)],
        [PushTarget(BOB, 4), PushTarget(BOB, 5), PushTarget(BOB, 6)],
    ]


# ---------- big fan-outs: paced, several messages to a call; small pushes never wait ----------
class TimedNotifier(RecordingNotifier):
    """Records when (loop time) each notify call began."""

    def __init__(self) -> None:
        super().__init__()
        self.began: list[float] = []

    async def notify(self, targets: Sequence[PushTarget]) -> None:
        self.began.append(asyncio.get_running_loop().time())
        await super().notify(targets)


def group_message(seq: int, owners: int = 3) -> list[PushTarget]:
    """One group message's targets: owners 10, 11, ... each at `seq`."""
    return [PushTarget(10 + k, seq) for k in range(owners)]


async def test_an_isolated_big_fanout_goes_at_once() -> None:
    notifier = TimedNotifier()
    dispatcher = PushDispatcher(notifier, fanout_min=3, fanout_rate=30)  # 3 owners: the next waits 0.1 s
    submitted = asyncio.get_running_loop().time()
    dispatcher.submit(group_message(1))
    await dispatcher.drained()
    assert notifier.batches == [group_message(1)]
    assert notifier.began[0] - submitted < 0.05


async def test_a_busy_groups_messages_after_the_first_wait_their_turn_and_share_one_call() -> None:
    notifier = TimedNotifier()
    dispatcher = PushDispatcher(notifier, fanout_min=3, fanout_rate=30)
    dispatcher.submit(group_message(1))
    await asyncio.sleep(0.01)  # the first call went; the next may begin 3 / 30 s after it
    for seq in (2, 3, 4):
        dispatcher.submit(group_message(seq))
        await asyncio.sleep(0.01)
    await dispatcher.drained()
    assert notifier.batches == [group_message(1), group_message(2) + group_message(3) + group_message(4)]
    assert notifier.began[1] - notifier.began[0] >= 0.1 - 0.005  # the loop's clock resolution


async def test_the_wait_follows_the_last_calls_size() -> None:
    notifier = TimedNotifier()
    dispatcher = PushDispatcher(notifier, fanout_min=3, fanout_rate=30)
    dispatcher.submit(group_message(1, owners=6))  # 6 owners: the next call waits 0.2 s
    await asyncio.sleep(0.01)
    dispatcher.submit(group_message(2, owners=3))
    dispatcher.submit(group_message(3, owners=6))  # 6 targets, 6 owners: 0.2 s again
    await asyncio.sleep(0.3)
    dispatcher.submit(group_message(4, owners=3))
    dispatcher.submit(group_message(5, owners=3))  # 6 targets, 3 owners (a frame each): 0.1 s
    await asyncio.sleep(0.12)  # the third call went (0.4 s after the first)
    dispatcher.submit(group_message(6, owners=3))
    await dispatcher.drained()
    assert [len(b) for b in notifier.batches] == [6, 9, 6, 3]
    gaps = [b - a for a, b in zip(notifier.began, notifier.began[1:], strict=False)]
    assert 0.2 - 0.005 <= gaps[0] < 0.28
    assert 0.2 - 0.005 <= gaps[1] < 0.28
    assert 0.1 - 0.005 <= gaps[2] < 0.18


async def test_small_pushes_go_at_once_while_a_big_fanout_waits() -> None:
    notifier = TimedNotifier()
    dispatcher = PushDispatcher(notifier, fanout_min=3, fanout_rate=30)
    dispatcher.submit(group_message(1))
    await asyncio.sleep(0.01)
    dispatcher.submit(group_message(2))  # waits ~0.1 s
    one_to_one = [PushTarget(ALICE, 5, "PC"), PushTarget(BOB, 5)]
    dispatcher.submit(one_to_one)
    await asyncio.sleep(0.02)
    assert notifier.batches == [group_message(1), one_to_one]
    await dispatcher.drained()  # waits for the paced call too
    assert notifier.batches[-1] == group_message(2)


async def test_pacing_is_off_without_a_rate_or_a_threshold() -> None:
    for fanout_min, fanout_rate in ((3, 0.0), (0, 30.0), (0, 0.0)):
        notifier = TimedNotifier()
        dispatcher = PushDispatcher(notifier, fanout_min=fanout_min, fanout_rate=fanout_rate)
        for seq in (1, 2, 3):
            dispatcher.submit(group_message(seq))
            await asyncio.sleep(0.005)
        await dispatcher.drained()
        assert notifier.batches == [group_message(1), group_message(2), group_message(3)]


async def test_a_busy_groups_pushes_reach_its_members_several_messages_to_a_call() -> None:
    """Through the writer: 120 owners (the default threshold is 100), several sends in a row; every
    member's pushes reach seq 1..n, in fewer notify calls than messages."""
    notifier = TimedNotifier()
    store = InMemoryTimelineStore()
    writer = TimelineWriter(store, Snowflake(1), notifier, fanout_min=100, fanout_rate=6000)
    members = list(range(100, 220))

    class Group(AllowAll):
        async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
            return members

    timeline = TimelineService(store, writer, Group(), notifier)
    for k in range(6):
        await timeline.send(Caller(members[0], "PC"), SendRequest(0, 77, MsgType.TEXT, f"m{k}"))
        await asyncio.sleep(0.005)
    await writer.pushes_sent()
    assert 2 <= len(notifier.batches) < 6
    last = members[-1]
    assert [t.max_seq for b in notifier.batches for t in b if t.user_id == last] == [1, 2, 3, 4, 5, 6]


async def test_a_paced_messages_sending_device_gets_it_in_the_push_too() -> None:
    """Its ack may overtake the paced push of the messages before it: the device then cannot take its own
    message from the ack, and only a push that carries it spares it a sync. Unpaced, it is left out."""
    notifier = TimedNotifier()
    store = InMemoryTimelineStore()
    writer = TimelineWriter(store, Snowflake(1), notifier, fanout_min=100, fanout_rate=6000)
    big, small = list(range(100, 220)), [100, 101, 102]

    class Groups(AllowAll):
        async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
            return big if group_id == 1 else small

    timeline = TimelineService(store, writer, Groups(), notifier)
    await timeline.send(Caller(100, "PC"), SendRequest(0, 1, MsgType.TEXT, "to the big group"))
    await timeline.send(Caller(100, "PC"), SendRequest(0, 2, MsgType.TEXT, "to the small one"))
    await writer.pushes_sent()
    own = [t for b in notifier.batches for t in b if t.user_id == 100]
    assert [(t.max_seq, t.except_device) for t in own] == [(1, ""), (2, "PC")]
