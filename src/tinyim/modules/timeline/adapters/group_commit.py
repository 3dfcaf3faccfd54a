"""Group commit: concurrent appends of one process share one transaction.

Appends queue up; one drain task writes everything that queued while the previous commit ran (up to
`max_messages` messages and `max_rows` index rows) through `write_batch`, then resolves each sender's
future: an ack still means committed (DESIGN §5.1). One commit then serves many messages, which lifts
the one-commit-per-message cap on throughput.

- The same (sender, client_msg_id) twice in one batch is written once; the later ones get the first's
  result as a duplicate (the service then checks the content, as for a retry across batches).
- When a batch fails, its messages are written one by one through `write_one` (the single-message path
  with its own dedup and deadlock handling), in queue order: only a poisoned message fails.
- The future outlives a caller that gave up (a closed connection): the batch is written regardless, and
  a retry with the same client_msg_id gets the first result.
- With `writers` > 1, a batch may start while the previous one is still in the database, once that one
  holds `overlap_rows` index rows or more (a 500-member group message: its rows are where the time goes;
  1:1 batches of a few rows only get smaller by overlapping, and cost more CPU per message). Each batch
  gets a `Turn`: the writer passes its gates in queue order (see Turn), so seqs are still handed out and
  transactions committed in queue order, and the index rows of two batches go in at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from tinyim.modules.timeline.domain import Appended, MessageBody, TimelineSlot

log = logging.getLogger(__name__)


class PrecedingBatchFailed(Exception):
    """The batch before this one failed after this one took its seqs: this one gives way (rolls back)
    and is written one by one after it, so that no sender's message overtakes an earlier one."""


class Turn:
    """A batch's place in line when batches overlap. A writer calls, in this order:

    - `before_bodies()` before its transaction: returns once the previous batch took its seqs (its bodies
      are in, a duplicate can no longer fail it, and seqs go out in queue order); if the previous batch
      failed, once it was written one by one: none of its fallback writes then waits for our locks;
    - `took_seqs()`;
    - `before_conversations()` / `wrote_conversations()` around the rows that two batches may share (the
      same conversation rows, then locked in queue order: the two never wait for each other in a cycle);
    - `before_commit()` as the last thing in its transaction: returns once the previous batch committed;
      raises PrecedingBatchFailed when that one failed after we took seqs;
    - `committed()` once its commit returned.

    The committer calls `fail()` when the batch failed (every gate of the next batch opens: it never waits
    for a failed batch with locks held) and `finish()` when each of its messages has its result. A writer
    that calls none of these gets batches one after another, as with a single writer."""

    def __init__(self, previous: Turn | None) -> None:
        self._previous = previous  # dropped once finished: the line never grows past the batches in flight
        self._seqs_taken = asyncio.Event()
        self._conversations_written = asyncio.Event()
        self._committed = asyncio.Event()
        self._finished = asyncio.Event()
        self.failed = False
        self._waited_for_fallback = False  # our seqs come after the previous batch's one-by-one writes

    async def before_bodies(self) -> None:
        previous = self._previous
        if previous is None:
            return
        await previous._seqs_taken.wait()
        if previous.failed:
            await previous._finished.wait()
            self._waited_for_fallback = True

    def took_seqs(self) -> None:
        self._seqs_taken.set()

    @property
    def conversations_clear(self) -> bool:
        """`before_conversations()` would not wait (the store may then send index and conversation rows
        in one round trip)."""
        return self._previous is None or self._previous._conversations_written.is_set()

    async def before_conversations(self) -> None:
        if self._previous is not None:
            await self._previous._conversations_written.wait()

    def wrote_conversations(self) -> None:
        self._conversations_written.set()

    @property
    def commit_clear(self) -> bool:
        """`before_commit()` would return at once, without raising (the store may then send its commit
        in the round trip of its last rows)."""
        previous = self._previous
        if previous is None:
            return True
        return previous._committed.is_set() and (not previous.failed or self._waited_for_fallback)

    async def before_commit(self) -> None:
        previous = self._previous
        if previous is None:
            return
        await previous._committed.wait()
        if previous.failed and not self._waited_for_fallback:
            raise PrecedingBatchFailed("the batch before this one failed")

    def committed(self) -> None:
        self._committed.set()

    def fail(self) -> None:
        self.failed = True
        self._open()

    async def preceding_finished(self) -> None:
        if self._previous is not None:
            await self._previous._finished.wait()

    def finish(self) -> None:
        self._open()
        self._finished.set()
        self._previous = None

    def _open(self) -> None:
        for event in (self._seqs_taken, self._conversations_written, self._committed):
            event.set()


@dataclass(slots=True)
class PendingAppend:
    body: MessageBody
    slots: Sequence[TimelineSlot]
    future: asyncio.Future[Appended] = field(repr=False)


BatchWriter = Callable[[Sequence[PendingAppend], Turn], Awaitable[list[Appended]]]
SingleWriter = Callable[[MessageBody, Sequence[TimelineSlot]], Awaitable[Appended]]


class GroupCommitter:
    def __init__(
        self,
        write_batch: BatchWriter,
        write_one: SingleWriter,
        max_messages: int = 256,
        max_rows: int = 4096,
        on_batch: Callable[[int], None] | None = None,
        writers: int = 1,
        overlap_rows: int = 256,
    ) -> None:
        if writers < 1:
            raise ValueError("writers must be at least 1")
        self._write_batch = write_batch
        self._write_one = write_one
        self._max_messages = max_messages
        self._max_rows = max_rows
        self._on_batch = on_batch  # called with each batch's size (a metric)
        self.writers = writers
        self._overlap_rows = overlap_rows
        self._queue: deque[PendingAppend] = deque()
        self._drainers: set[asyncio.Task[None]] = set()  # started and not yet done
        self._last_turn: Turn | None = None
        self._last_rows = 0  # index rows of the batch taken last

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        return await asyncio.shield(self._enqueue(body, slots))

    async def append_many(
        self, items: Sequence[tuple[MessageBody, Sequence[TimelineSlot]]]
    ) -> list[Appended | Exception]:
        """Many appends queued at once and awaited together (no task each); a caller that gives up
        leaves them to be written, as `append`'s shield does."""
        futures = [self._enqueue(body, slots) for body, slots in items]
        if futures:
            await asyncio.wait(futures)
        return [_outcome(f) for f in futures]

    def _enqueue(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> asyncio.Future[Appended]:
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append(PendingAppend(body, slots, future))
        running = len(self._drainers)
        if not running or (running < self.writers and self._last_rows >= self._overlap_rows):
            # Started, not awaited: everything queued before it first runs joins its first batch.
            self._drainers.add(asyncio.create_task(self._drain()))
        return future

    async def _drain(self) -> None:
        try:
            await self._drain_queue()
        finally:
            # at once, not in a done callback: an append right after this must see it gone
            self._drainers.discard(asyncio.current_task())

    async def _drain_queue(self) -> None:
        while self._queue:
            batch = self._take()
            turn = self._last_turn = Turn(self._last_turn)
            try:
                await self._commit(batch, turn)
            except Exception as exc:  # a bug, not a database error: never leave a sender waiting
                log.exception("group commit failed")
                _fail(batch, exc)
            except BaseException:  # cancelled (shutdown): whoever still waits gets an error
                _fail([*batch, *self._queue], RuntimeError("the timeline batch writer stopped"))
                self._queue.clear()
                raise
            finally:
                turn.finish()

    def _take(self) -> list[PendingAppend]:
        batch = [self._queue.popleft()]
        rows = len(batch[0].slots)
        while self._queue and len(batch) < self._max_messages:
            if rows + len(self._queue[0].slots) > self._max_rows:
                break
            batch.append(self._queue.popleft())
            rows += len(batch[-1].slots)
        self._last_rows = rows
        return batch

    async def _commit(self, batch: list[PendingAppend], turn: Turn) -> None:
        leaders: list[PendingAppend] = []
        first_of: dict[tuple[int, str], PendingAppend] = {}
        followers: list[tuple[PendingAppend, PendingAppend]] = []
        for item in batch:
            key = (item.body.sender_id, item.body.client_msg_id)
            leader = first_of.get(key) if item.body.client_msg_id else None
            if leader is not None and _has_slot(leader, leader.body.sender_id):
                followers.append((item, leader))
                continue
            first_of.setdefault(key, item)
            leaders.append(item)
        if self._on_batch is not None:
            self._on_batch(len(leaders))
        try:
            results = await self._write_batch(leaders, turn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            turn.fail()
            if len(leaders) > 1 and not isinstance(exc, PrecedingBatchFailed):
                log.warning(
                    "batch of %d appends failed; writing them one by one", len(leaders), exc_info=True
                )
            await turn.preceding_finished()  # one-by-one writes in queue order, after the previous batch's
            for item in leaders:  # in queue order: a sender's messages keep their order
                await self._write_single(item)
        else:
            for item, result in zip(leaders, results, strict=True):
                _resolve(item.future, result)
        for item, leader in followers:
            _follow(item.future, leader)

    async def _write_single(self, item: PendingAppend) -> None:
        try:
            result = await self._write_one(item.body, item.slots)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
        else:
            _resolve(item.future, result)


def _outcome(future: asyncio.Future[Appended]) -> Appended | Exception:
    exc = future.exception()  # raises CancelledError for a cancelled one (shutdown)
    if exc is None:
        return future.result()
    if isinstance(exc, Exception):
        return exc
    raise exc


def _fail(batch: Sequence[PendingAppend], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


def _has_slot(item: PendingAppend, owner: int) -> bool:
    return any(s.owner_id == owner for s in item.slots)


def _resolve(future: asyncio.Future[Appended], result: Appended) -> None:
    if not future.done():
        future.set_result(result)


def _follow(future: asyncio.Future[Appended], leader: PendingAppend) -> None:
    """A second append of (sender, client_msg_id) in the batch: the first one's result, as a duplicate."""
    if future.done():
        return
    if leader.future.cancelled():
        future.cancel()
        return
    exc = leader.future.exception()
    if exc is not None:
        future.set_exception(exc)
        return
    first = leader.future.result()
    if first.duplicate:  # the leader itself was a retry of an earlier batch's message
        future.set_result(first)
        return
    sender = leader.body.sender_id
    other = next(s.other_id for s in leader.slots if s.owner_id == sender)
    body = leader.body
    original = (other, body.group_id, body.msg_type, body.content)
    future.set_result(Appended(first.msg_id, {sender: first.seqs[sender]}, True, original))
