"""kernel.outcomes: a batch's items run at once and each is answered alone (send_many, append_many)."""

from __future__ import annotations

import asyncio

import pytest

from tinyim.kernel import ImError, outcomes


async def test_each_result_or_its_own_error_in_order_and_at_once() -> None:
    running = 0
    most = 0

    async def item(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1
        if n == 1:
            raise ImError("not_found", "no such user")
        return n * 10

    first, second, third = await outcomes(item(n) for n in range(3))
    assert (first, third) == (0, 20)
    assert isinstance(second, ImError) and second.code == "not_found"
    assert most == 3


async def test_a_cancelled_item_is_nobodys_own_failure() -> None:
    async def cancelled() -> int:
        raise asyncio.CancelledError  # e.g. shutdown reached the store

    async def fine() -> int:
        return 1

    with pytest.raises(asyncio.CancelledError):
        await outcomes([fine(), cancelled()])
