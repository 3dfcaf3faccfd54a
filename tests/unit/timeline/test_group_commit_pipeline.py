"""GroupCommitter with pipeline=True: the next batch's statements overlap this one's commit, batches still
commit in queue order, and a failed batch's successor is written again after the failed messages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tinyim.modules.timeline.adapters import group_commit
from tinyim.modules.timeline.adapters.group_commit import GroupCommitter, PendingAppend, before_commit
from tinyim.modules.timeline.domain import Appended, MessageBody, TimelineSlot


def body(n: int) -> MessageBody:
    return MessageBody(n, 1, 0, 0, f"m{n}")


SLOTS = [TimelineSlot(1, 2, True), TimelineSlot(2, 1, False)]


class FakeStore:
    """A batch: 'start' after its first statement, 'ready' at before_commit(), 'commit' after a commit
    that takes `commit_seconds`; batches listed in `poisoned` fail before their commit."""

    def __init__(
        self, commit_seconds: float = 0.01, poisoned: set[int] | None = None, statements: float = 0.001
    ) -> None:
        self.events: list[tuple[str, tuple[int, ...]]] = []
        self.commit_seconds = commit_seconds
        self.statement_seconds = statements
        self.poisoned = poisoned or set()

    async def write_batch(self, batch: Sequence[PendingAppend]) -> list[Appended]:
        ids = tuple(p.body.msg_id for p in batch)
        self.events.append(("start", ids))
        await asyncio.sleep(self.statement_seconds)
        if self.poisoned & set(ids):
            self.events.append(("fail", ids))
            raise RuntimeError("poisoned")
        await before_commit()
        self.events.append(("ready", ids))
        await asyncio.sleep(self.commit_seconds)
        self.events.append(("commit", ids))
        return [Appended(p.body.msg_id, {1: p.body.msg_id, 2: p.body.msg_id}) for p in batch]

    async def write_one(self, message: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        if message.msg_id in self.poisoned:
            raise RuntimeError("poisoned")
        self.events.append(("single", (message.msg_id,)))
        return Appended(message.msg_id, {1: message.msg_id, 2: message.msg_id})


async def send_in_waves(committer: GroupCommitter, waves: int, per_wave: int) -> list[object]:
    tasks = []
    for w in range(waves):
        for i in range(per_wave):
            tasks.append(asyncio.create_task(committer.append(body(100 * w + i), SLOTS)))
        await asyncio.sleep(0.004)  # the next wave queues while a batch is in flight
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_next_batch_starts_while_this_one_commits_and_commits_after_it() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.write_batch, store.write_one, pipeline=True)
    results = await send_in_waves(committer, 4, 3)
    assert all(isinstance(r, Appended) for r in results)
    kinds = [kind for kind, _ in store.events]
    # some batch started before the one before it committed
    overlapped = any(
        kinds[i] == "start" and "ready" in kinds[:i] and kinds[:i].count("commit") < kinds[:i].count("ready")
        for i in range(len(kinds))
    )
    assert overlapped, store.events
    commits = [ids for kind, ids in store.events if kind == "commit"]
    assert [i for ids in commits for i in ids] == sorted(i for ids in commits for i in ids)  # queue order


async def test_without_pipeline_a_batch_starts_after_the_previous_commit() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.write_batch, store.write_one, pipeline=False)
    await send_in_waves(committer, 3, 2)
    kinds = [kind for kind, _ in store.events]
    assert kinds == ["start", "ready", "commit"] * (len(kinds) // 3)


async def test_a_failed_batch_is_written_one_by_one_before_the_batch_after_it() -> None:
    store = FakeStore(commit_seconds=0.01, poisoned={1})
    committer = GroupCommitter(store.write_batch, store.write_one, pipeline=True)
    results = await send_in_waves(committer, 3, 2)
    assert [isinstance(r, Appended) for r in results] == [True, False, True, True, True, True]
    written = [ids[0] for kind, ids in store.events if kind == "single"]
    written += [i for kind, ids in store.events if kind == "commit" for i in ids]
    order = [ids for kind, ids in store.events if kind in ("single", "commit")]
    flat = [i for ids in order for i in ids]
    assert flat == sorted(flat)  # the failed batch's messages (one by one) before anything queued later
    assert 1 not in flat


async def test_a_batch_waiting_on_a_failed_one_rolls_back_and_is_written_again_after_it() -> None:
    """The second batch reaches its commit before the first one failed: it must not commit first."""

    class SlowFailure(FakeStore):
        async def write_batch(self, batch: Sequence[PendingAppend]) -> list[Appended]:
            ids = tuple(p.body.msg_id for p in batch)
            if 0 in ids and ("start", ids) not in self.events:
                self.events.append(("start", ids))
                await asyncio.sleep(0.006)  # the statements: the next wave queues meanwhile
                await before_commit()  # the next batch may start now
                await asyncio.sleep(0.02)  # ... and reach its own commit before this one fails
                self.events.append(("fail", ids))
                raise RuntimeError("commit failed")
            return await super().write_batch(batch)

    store = SlowFailure()
    committer = GroupCommitter(store.write_batch, store.write_one, pipeline=True)
    results = await send_in_waves(committer, 2, 2)
    assert all(isinstance(r, Appended) for r in results)
    order = [ids for kind, ids in store.events if kind in ("single", "commit")]
    assert [i for ids in order for i in ids] == [0, 1, 100, 101]
    assert ("start", (100, 101)) in store.events[: store.events.index(("fail", (0, 1)))]  # it did overlap


async def test_a_batch_that_waits_too_long_on_the_one_before_lets_go_and_runs_again_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch before takes longer than the gate's wait to commit (it may be running again and need
    the locks this one holds): this one rolls back, and commits after it."""
    monkeypatch.setattr(group_commit, "GATE_WAIT_SECONDS", 0.005)
    store = FakeStore(commit_seconds=0.03, statements=0.006)  # the next wave queues during the statements
    committer = GroupCommitter(store.write_batch, store.write_one, pipeline=True)
    results = await send_in_waves(committer, 2, 2)
    assert all(isinstance(r, Appended) for r in results)
    commits = [ids for kind, ids in store.events if kind == "commit"]
    assert commits == [(0, 1), (100, 101)]
    assert store.events.count(("start", (100, 101))) == 2  # rolled back once, then written
