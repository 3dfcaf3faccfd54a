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
