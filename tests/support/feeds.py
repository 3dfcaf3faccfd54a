"""Helpers for the tests of cache-invalidation feeds on Redis pub/sub (the relation change feed, the
session route feed): run a feed until its subscription is up, and wait for what it should cause."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

from tinyim.infra.redis import ChannelFeed


class Feed(Protocol):
    feed: ChannelFeed

    def run(self) -> Coroutine[Any, Any, None]: ...


@contextlib.asynccontextmanager
async def listening(feed: Feed) -> AsyncIterator[asyncio.Event]:
    """The feed running; the event is set while its subscription is up (cleared when it is lost)."""
    up = asyncio.Event()
    feed.feed.on_state = lambda live: up.set() if live else up.clear()
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(up.wait(), 10)
        yield up
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time allowed")
