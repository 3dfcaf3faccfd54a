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
"""

from __future__ import annotations

import asyncio
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


class GroupCommitter:
    def __init__(
        self,
        write_batch: BatchWriter,
        write_one: SingleWriter,
        max_messages: int = 256,
        max_rows: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._write_batch = write_batch
        self._write_one = write_one
        self._max_messages = max_messages
        self._max_rows = max_rows
        self._on_batch = on_batch  # called with each batch's size (a metric)
        self._queue: deque[PendingAppend] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append(PendingAppend(body, slots, future))
        if self._drainer is None:
            # Started, not awaited: everything queued before it first runs joins the first batch.
            self._drainer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                try:
                    await self._commit(batch)
                except Exception as exc:  # a bug, not a database error: never leave a sender waiting
                    log.exception("group commit failed")
                    _fail(batch, exc)
                except BaseException:  # cancelled (shutdown): whoever still waits gets an error
                    _fail([*batch, *self._queue], RuntimeError("the timeline batch writer stopped"))
                    self._queue.clear()
                    raise
        finally:
            self._drainer = None

    def _take(self) -> list[PendingAppend]:
        batch = [self._queue.popleft()]
        rows = len(batch[0].slots)
        while self._queue and len(batch) < self._max_messages:
            rows += len(self._queue[0].slots)
            if rows > self._max_rows:
                break
            batch.append(self._queue.popleft())
        return batch

    async def _commit(self, batch: list[PendingAppend]) -> None:
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
            results = await self._write_batch(leaders)
        except asyncio.CancelledError:
            raise
        except Exception:
            if len(leaders) > 1:
                log.warning(
                    "batch of %d appends failed; writing them one by one", len(leaders), exc_info=True
                )
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
