"""Concurrent calls gathered into batches, with no wait when idle.

`CallBatcher.call(item)` queues the item. When fewer than `max_in_flight` batches are in flight, a batch
leaves at once with everything queued so far (the first call of an idle process goes alone, on the
next turn of the loop); calls arriving while every slot is busy wait and leave together as soon as a
slot frees, at most `max_batch` items per batch. So the batch size follows the load: one call per item
when calls are rare, and under load one call carries many (an internal RPC costs far more CPU than an
item in it).

Under load the callers tend to split into cohorts: those answered by one batch send again while the
next batch is already on its way, and the two groups then alternate, each half the size it could be.
`linger_seconds` merges them: a batch that starts as soon as the previous one ended, with sends already
waiting (the process is busy), first waits that long for the callers just answered to send again. An
idle process never waits: its first send still leaves on the next turn of the loop.

`send_batch(items)` answers item by item, in order: a result, or the exception for that item alone. When
it raises, the whole batch failed and every item's caller gets that error. A caller that gave up (was
cancelled) while its item still waited is left out of the next batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class CallBatcher(Generic[Item, Result]):
    def __init__(
        self,
        send_batch: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
        max_in_flight: int = 2,
        max_batch: int = 64,
        on_batch: Callable[[int], None] | None = None,
        linger_seconds: float = 0.0,
    ) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        if linger_seconds < 0:
            raise ValueError("linger_seconds must not be negative")
        self._send_batch = send_batch
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._on_batch = on_batch  # called with each batch's size (a metric)
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._in_flight = 0
        self._starting = False  # a batch task was started and has not taken its items yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._linger = linger_seconds

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def call(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start()
        return await future

    def _start(self, linger: bool = False) -> None:
        if self._queue and not self._starting and self._in_flight < self._max_in_flight:
            # Started, not awaited: every call queued before it first runs joins its batch.
            self._starting = True
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(linger))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        while self._queue and len(batch) < self._max_batch:
            item, future = self._queue.popleft()
            if not future.done():  # done: its caller was cancelled while it waited
                batch.append((item, future))
        return batch

    async def _run(self, linger: bool) -> None:
        if linger and self._linger and len(self._queue) < self._max_batch:
            await asyncio.sleep(self._linger)
        batch = self._take()
        self._starting = False
        self._start()  # more than one batch waited and a slot is free: the rest leaves too
        try:
            if batch:
                await self._send(batch)
        finally:
            self._in_flight -= 1
            # what queued meanwhile leaves now; sends waiting means busy: linger for the ones just answered
            self._start(linger=True)

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            outcomes = await self._send_batch([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} was answered with {len(outcomes)} results")
        except asyncio.CancelledError:  # shutdown: nobody is left waiting
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError("the batch was cancelled"))
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
