"""GroupCommitter on a fake batch writer that keeps state: when a second batch may start (overlap), and the
order that Turn keeps between overlapping batches. The database side is in the contract suites
(tests/contract/timeline/test_group_commit.py, test_overlapping_batches.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tinyim.modules.timeline.adapters.group_commit import GroupCommitter, PendingAppend, Turn
from tinyim.modules.timeline.domain import Appended, MessageBody, TimelineSlot


class FakeLog:
    """An append-only log with seqs per owner; a batch holds the 'database' for `hold` seconds between
    taking its seqs and committing, so batches can overlap."""

    def __init__(self, hold: float = 0.02) -> None:
        self.hold = hold
        self.top: dict[int, int] = {}
        self.committed: list[tuple[int, str]] = []  # (seq of the sender, content) in commit order
        self.in_flight = 0
        self.most_in_flight = 0
        self.batch_sizes: list[int] = []

    async def write_batch(self, batch: Sequence[PendingAppend], turn: Turn) -> list[Appended]:
        self.batch_sizes.append(len(batch))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await turn.before_bodies()
            results = [self._take(p.body, p.slots) for p in batch]
            turn.took_seqs()
            await asyncio.sleep(self.hold)
            turn.wrote_conversations()
            await turn.before_commit()
            for p, r in zip(batch, results, strict=True):
                self.committed.append((r.seqs[p.body.sender_id], p.body.content))
            turn.committed()
            return results
        finally:
            self.in_flight -= 1

    async def write_one(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        result = self._take(body, slots)
        self.committed.append((result.seqs[body.sender_id], body.content))
        return result

    def _take(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        seqs = {}
        for s in slots:
            seqs[s.owner_id] = self.top[s.owner_id] = self.top.get(s.owner_id, 0) + 1
        return Appended(body.msg_id, seqs)


def message(n: int, sender: int, members: int) -> tuple[MessageBody, list[TimelineSlot]]:
    owners = [sender, *range(1000, 1000 + members)]
    return MessageBody(n, sender, 0, 0, f"m{n}"), [TimelineSlot(o, sender, o == sender) for o in owners]


async def pipelined(committer: GroupCommitter, count: int, members: int) -> list[Appended]:
    """One sender, `count` messages, each sent while the earlier ones are in flight."""
    tasks = []
    for n in range(count):
        tasks.append(asyncio.create_task(committer.append(*message(n, 1, members))))
        await asyncio.sleep(0.005)
    return list(await asyncio.gather(*tasks))


async def test_big_batches_overlap_and_keep_the_senders_order() -> None:
    log = FakeLog()
    committer = GroupCommitter(log.write_batch, log.write_one, writers=2, overlap_rows=100)
    results = await pipelined(committer, 12, members=200)
    assert log.most_in_flight == 2
    assert [r.seqs[1] for r in results] == list(range(1, 13))
    assert log.committed == [(n + 1, f"m{n}") for n in range(12)]  # committed in queue order too


async def test_small_batches_never_overlap() -> None:
    """A few rows per batch (1:1 messages): a second writer would only split the batches."""
    log = FakeLog()
    committer = GroupCommitter(log.write_batch, log.write_one, writers=2, overlap_rows=100)
    results = await pipelined(committer, 12, members=1)
    assert log.most_in_flight == 1
    assert [r.seqs[1] for r in results] == list(range(1, 13))
    assert len(log.batch_sizes) < 12  # the ones sent during a batch rode the next one together


async def test_one_writer_never_overlaps_whatever_the_batch() -> None:
    log = FakeLog()
    committer = GroupCommitter(log.write_batch, log.write_one, writers=1, overlap_rows=1)
    await pipelined(committer, 8, members=200)
    assert log.most_in_flight == 1


class FailsFirstBatchAfterSeqs(FakeLog):
    async def write_batch(self, batch: Sequence[PendingAppend], turn: Turn) -> list[Appended]:
        if self.batch_sizes:
            return await super().write_batch(batch, turn)
        self.batch_sizes.append(len(batch))
        await turn.before_bodies()
        for p in batch:
            self._take(p.body, p.slots)  # seqs taken, then lost: holes
        turn.took_seqs()
        await asyncio.sleep(self.hold)  # the next batch starts and takes its seqs meanwhile
        raise ConnectionResetError("dropped")


async def test_a_failed_batch_is_written_one_by_one_before_the_overlapping_one() -> None:
    log = FailsFirstBatchAfterSeqs()
    committer = GroupCommitter(log.write_batch, log.write_one, writers=2, overlap_rows=1)
    first = asyncio.create_task(committer.append(*message(0, 1, 3)))
    await asyncio.sleep(0.005)
    second = asyncio.create_task(committer.append(*message(1, 1, 3)))
    one, two = await asyncio.gather(first, second)
    assert one.seqs[1] < two.seqs[1]
    assert [content for _, content in log.committed] == ["m0", "m1"]


@pytest.mark.parametrize("writers", [1, 2])
async def test_an_append_right_after_the_queue_drained_is_written(writers: int) -> None:
    """The sender hears back before the drain task has ended: its next append must start another."""
    log = FakeLog(hold=0)
    committer = GroupCommitter(log.write_batch, log.write_one, writers=writers, overlap_rows=100)
    async with asyncio.timeout(2):
        for n in range(5):
            await committer.append(*message(n, 1, 1))
    assert log.batch_sizes == [1] * 5


def test_writers_must_be_positive() -> None:
    log = FakeLog()
    with pytest.raises(ValueError):
        GroupCommitter(log.write_batch, log.write_one, writers=0)
