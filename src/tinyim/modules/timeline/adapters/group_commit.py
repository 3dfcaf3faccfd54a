"""Group commit: concurrent appends of one process share one transaction.

Appends queue up; one drain task writes everything that queued while the previous commit ran (up to
`max_messages` messages and `max_rows` index rows) through `write_batch`, then resolves each sender's
future: an ack still means committed (DESIGN §5.1). One commit then serves many messages, which lifts
the one-commit-per-message cap on throughput.

- The same (sender, client_msg_id) twice in one batch is written once; the later ones get the first's
  result as a duplicate (the service then checks the content, as for a retry across batches).
- When a batch fails, its messages are written one by one through `write_one` (the single-message path
  with its own dedup and deadlock handling), in queue order: only a poisoned message fails.
- pipeline=True (MariaDB/MySQL): when a batch reaches its COMMIT (`before_commit()`), the next batch starts
  its statements; they wait on the first one's seq row locks in the database and go on the moment it
  commits, instead of starting only then (the commit's round trip and fsync overlap the next batch's
  first statements). At most two batches are in flight; each commits after the one before it, and when
  one fails the next rolls back and is written again after the failed one's messages.
- The future outlives a caller that gave up (a closed connection): the batch is written regardless, and
  a retry with the same client_msg_id gets the first result.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from tinyim.modules.timeline.domain import Appended, MessageBody, TimelineSlot

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingAppend:
    body: MessageBody
    slots: Sequence[TimelineSlot]
    future: asyncio.Future[Appended] = field(repr=False)


BatchWriter = Callable[[Sequence[PendingAppend]], Awaitable[list[Appended]]]
SingleWriter = Callable[[MessageBody, Sequence[TimelineSlot]], Awaitable[Appended]]


# A batch at its commit waits this long at most for the one before it to commit (normally one round trip)
GATE_WAIT_SECONDS = 1.0


class _BatchFailed(Exception):
    """The batch before this one did not commit: this one rolls back and is written again after it."""


# The gate of the batch being written in this task (see `before_commit`); None: no gate (one in flight).
_GATE: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "group_commit_gate", default=None
)


async def before_commit() -> None:
    """Called by a batch writer after its last statement, before its COMMIT. With pipelining it lets the
    next batch start its statements (they queue on this one's row locks in the database, so they are ready
    the moment this one commits, instead of starting then), and it waits until the batch before this one
    committed: batches commit in queue order, and when one fails, the next rolls back and is written again
    after the failed one's messages (a sender's messages keep their order)."""
    gate = _GATE.get()
    if gate is not None:
        await gate()


@dataclass(eq=False)
class _Flight:
    """One batch being written, and what the batch after it waits for."""

    batch: list[PendingAppend]
    after: _Flight | None  # the batch in flight before this one
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # its statements are done (or it ended)
    outcome: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    task: asyncio.Task[None] | None = None


class GroupCommitter:
    def __init__(
        self,
        write_batch: BatchWriter,
        write_one: SingleWriter,
        max_messages: int = 256,
        max_rows: int = 4096,
        on_batch: Callable[[int], None] | None = None,
        pipeline: bool = False,
    ) -> None:
        self._write_batch = write_batch
        self._write_one = write_one
        self._max_messages = max_messages
        self._max_rows = max_rows
        self._on_batch = on_batch  # called with each batch's size (a metric)
        # True: the next batch's statements run while this one commits (at most two batches in flight)
        self._pipeline = pipeline
        self._queue: deque[PendingAppend] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._flights: set[asyncio.Task[None]] = set()

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append(PendingAppend(body, slots, future))
        if self._drainer is None:
            # Started, not awaited: everything queued before it first runs joins the first batch.
            self._drainer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        previous: _Flight | None = None
        try:
            while self._queue or previous is not None:
                if not self._queue:
                    assert previous is not None and previous.task is not None
                    await asyncio.wait({previous.task})  # what queues meanwhile leaves next
                    _stop_if_cancelled(previous.task)
                    previous = None
                    continue
                flight = _Flight(self._take(), previous if self._pipeline else None)
                flight.task = asyncio.create_task(self._fly(flight))
                self._flights.add(flight.task)
                flight.task.add_done_callback(self._flights.discard)
                if not self._pipeline:
                    await asyncio.wait({flight.task})
                    _stop_if_cancelled(flight.task)
                    continue
                ready = asyncio.create_task(flight.ready.wait())
                await asyncio.wait({ready, flight.task}, return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                if previous is not None and previous.task is not None:
                    await asyncio.wait({previous.task})  # never more than two batches in flight
                    _stop_if_cancelled(previous.task)
                previous = flight
        except BaseException:  # cancelled (shutdown): whoever still waits gets an error
            for task in list(self._flights):
                task.cancel()
            _fail(list(self._queue), RuntimeError("the timeline batch writer stopped"))
            self._queue.clear()
            raise
        finally:
            self._drainer = None

    async def _fly(self, flight: _Flight) -> None:
        try:
            await self._commit(flight)
        except Exception as exc:  # a bug, not a database error: never leave a sender waiting
            log.exception("group commit failed")
            _fail(flight.batch, exc)
        except BaseException:  # cancelled (shutdown)
            _fail(flight.batch, RuntimeError("the timeline batch writer stopped"))
            raise
        finally:
            flight.ready.set()
            if not flight.outcome.done():
                flight.outcome.set_result(False)
            flight.after = None  # done with it: no chain of every batch since the start

    def _take(self) -> list[PendingAppend]:
        batch = [self._queue.popleft()]
        rows = len(batch[0].slots)
        while self._queue and len(batch) < self._max_messages:
            rows += len(self._queue[0].slots)
            if rows > self._max_rows:
                break
            batch.append(self._queue.popleft())
        return batch

    async def _commit(self, flight: _Flight) -> None:
        leaders: list[PendingAppend] = []
        first_of: dict[tuple[int, str], PendingAppend] = {}
        followers: list[tuple[PendingAppend, PendingAppend]] = []
        for item in flight.batch:
            key = (item.body.sender_id, item.body.client_msg_id)
            leader = first_of.get(key) if item.body.client_msg_id else None
            if leader is not None and _has_slot(leader, leader.body.sender_id):
                followers.append((item, leader))
                continue
            first_of.setdefault(key, item)
            leaders.append(item)
        if self._on_batch is not None:
            self._on_batch(len(leaders))
        after = flight.after

        async def gate() -> None:
            flight.ready.set()
            if after is None:
                return
            try:
                async with asyncio.timeout(GATE_WAIT_SECONDS):
                    committed = await asyncio.shield(after.outcome)
            except TimeoutError:
                # the batch before is not committing (it lost its connection and runs again, and may
                # need the row locks this one holds): let go of them, run again after it
                committed = False
            if not committed:
                raise _BatchFailed

        try:
            try:
                results = await self._gated(leaders, gate)
            except _BatchFailed:  # rolled back: written again once the failed batch's messages are
                assert after is not None and after.task is not None
                await asyncio.wait({after.task})
                results = await self._gated(leaders, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            flight.outcome.set_result(False)
            flight.ready.set()
            if after is not None and after.task is not None:
                await asyncio.wait({after.task})  # its fallback first: a sender's messages keep their order
            if len(leaders) > 1:
                log.warning(
                    "batch of %d appends failed; writing them one by one", len(leaders), exc_info=True
                )
            for item in leaders:  # in queue order: a sender's messages keep their order
                await self._write_single(item)
        else:
            flight.outcome.set_result(True)
            for item, result in zip(leaders, results, strict=True):
                _resolve(item.future, result)
        for item, leader in followers:
            _follow(item.future, leader)

    async def _gated(
        self, leaders: list[PendingAppend], gate: Callable[[], Awaitable[None]] | None
    ) -> list[Appended]:
        token = _GATE.set(gate)
        try:
            return await self._write_batch(leaders)
        finally:
            _GATE.reset(token)

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


def _stop_if_cancelled(task: asyncio.Task[None]) -> None:
    """A batch cancelled under the drainer (the process is going away): the drainer stops too."""
    if task.cancelled():
        raise asyncio.CancelledError


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
