"""infra.batching.CallBatcher: no wait when idle, batches under load, errors reach the right caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tinyim.infra.batching import CallBatcher


class Remote:
    """A batch endpoint that doubles numbers, refuses negatives item by item, and can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_whole: Exception | None = None

    async def send(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        if self.fail_whole is not None:
            raise self.fail_whole
        return [ValueError(f"negative {i}") if i < 0 else 2 * i for i in items]


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_an_idle_call_leaves_at_once_alone() -> None:
    remote = Remote()
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=1)
    task = asyncio.create_task(batcher.call(21))
    await _turns()  # no time passes: a batcher that waited on a timer would not have sent yet
    assert remote.batches == [[21]]
    assert await task == 42


async def test_calls_arriving_while_the_slots_are_busy_share_the_next_call() -> None:
    remote = Remote()
    remote.gate.clear()
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=1)
    first = asyncio.create_task(batcher.call(1))
    await _turns()
    rest = [asyncio.create_task(batcher.call(i)) for i in range(2, 7)]
    await _turns()
    assert remote.batches == [[1]]  # the others wait for the slot
    remote.gate.set()
    assert await first == 2
    assert await asyncio.gather(*rest) == [4, 6, 8, 10, 12]
    assert remote.batches == [[1], [2, 3, 4, 5, 6]]


async def test_calls_in_flight_and_batch_size_are_bounded() -> None:
    remote = Remote()
    remote.gate.clear()
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=2, max_batch=3)
    tasks = [asyncio.create_task(batcher.call(i)) for i in range(10)]
    await _turns()
    assert remote.batches == [[0, 1, 2], [3, 4, 5]] and batcher.in_flight == 2
    remote.gate.set()
    assert await asyncio.gather(*tasks) == [2 * i for i in range(10)]
    assert remote.most_in_flight == 2
    assert all(len(b) <= 3 for b in remote.batches)
    assert sorted(i for b in remote.batches for i in b) == list(range(10))  # each item sent once


async def test_an_error_in_one_item_fails_only_its_caller() -> None:
    remote = Remote()
    remote.gate.clear()
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=1)
    blocker = asyncio.create_task(batcher.call(0))
    await _turns()
    tasks = [asyncio.create_task(batcher.call(i)) for i in (1, -2, 3)]
    await _turns()
    remote.gate.set()
    await blocker
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError) and "negative -2" in str(results[1])
    assert remote.batches[1] == [1, -2, 3]


async def test_a_failed_batch_fails_every_caller_in_it_and_the_next_batch_still_goes() -> None:
    remote = Remote()
    remote.fail_whole = ConnectionError("node gone")
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=1)
    results = await asyncio.gather(batcher.call(1), batcher.call(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    remote.fail_whole = None
    assert await batcher.call(3) == 6


async def test_a_caller_that_gave_up_while_waiting_is_left_out() -> None:
    remote = Remote()
    remote.gate.clear()
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=1)
    blocker = asyncio.create_task(batcher.call(0))
    await _turns()
    gone = asyncio.create_task(batcher.call(7))
    kept = asyncio.create_task(batcher.call(8))
    await _turns()
    gone.cancel()
    remote.gate.set()
    await blocker
    assert await kept == 16
    assert remote.batches == [[0], [8]]


async def test_a_wrong_number_of_answers_fails_the_batch() -> None:
    async def short(items: list[int]) -> Sequence[int | BaseException]:
        return items[:-1]

    batcher: CallBatcher[int, int] = CallBatcher(short)
    with pytest.raises(RuntimeError, match="answered with"):
        await asyncio.gather(batcher.call(1), batcher.call(2))


def test_bounds_must_be_positive() -> None:
    async def send(items: list[int]) -> Sequence[int | BaseException]:
        return items

    with pytest.raises(ValueError, match="at least 1"):
        CallBatcher(send, max_in_flight=0)


async def _cohorts(linger: float) -> list[list[int]]:
    """Caller 1's first batch is held while 2 and 3 queue; once answered, caller 1 sends again (4) a
    round trip later (10 ms), as a client answered by one batch does under load."""
    remote = Remote()
    remote.gate.clear()
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=1, linger_seconds=linger)

    async def caller_one() -> None:
        await batcher.call(1)
        await asyncio.sleep(0.01)
        await batcher.call(4)

    one = asyncio.create_task(caller_one())
    await _turns()
    others = [asyncio.create_task(batcher.call(i)) for i in (2, 3)]
    await _turns()
    remote.gate.set()
    await asyncio.gather(one, *others)
    return remote.batches


async def test_without_linger_the_answered_caller_rides_a_batch_of_its_own() -> None:
    assert await _cohorts(0.0) == [[1], [2, 3], [4]]


async def test_a_busy_batcher_lingers_so_the_answered_caller_joins_the_waiting_ones() -> None:
    assert await _cohorts(0.1) == [[1], [2, 3, 4]]


async def test_an_idle_batcher_never_lingers() -> None:
    remote = Remote()
    batcher: CallBatcher[int, int] = CallBatcher(remote.send, max_in_flight=1, linger_seconds=30.0)
    assert await asyncio.wait_for(batcher.call(1), 1.0) == 2
    # answered with nothing waiting: the next send is idle again and leaves at once
    assert await asyncio.wait_for(batcher.call(2), 1.0) == 4
    assert remote.batches == [[1], [2]]


async def test_a_full_queue_does_not_linger() -> None:
    remote = Remote()
    remote.gate.clear()
    batcher: CallBatcher[int, int] = CallBatcher(
        remote.send, max_in_flight=1, max_batch=2, linger_seconds=30.0
    )
    calls = [asyncio.create_task(batcher.call(i)) for i in range(1, 5)]
    await _turns()
    remote.gate.set()  # [1, 2] answered with a full batch waiting: it leaves at once
    assert await asyncio.wait_for(asyncio.gather(*calls), 1.0) == [2, 4, 6, 8]
    assert remote.batches == [[1, 2], [3, 4]]


def test_linger_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="linger"):
        CallBatcher(Remote().send, linger_seconds=-1)
