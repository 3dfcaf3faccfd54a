"""Pipelining: several requests of one connection in flight at once, answered in the order they came.

A client may send its next request before the last one is answered, so one busy sender's messages can
share the timeline writer's batch instead of costing one round trip each. Sends (and heartbeats) run
side by side; any other request (a sync, a history page, a read mark…) starts only after every earlier
request of the connection is handled, so it sees what they wrote (read-your-writes, as when requests ran
one by one).
Each request runs as its own task; an answer that is ready waits for every earlier one, so answers still
leave in request order (pushes may come in between, as always). At most `window` requests are in flight:
the owner stops reading from its socket while the queue is full (backpressure) and `on_room` says when
to go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from tinyim.wire import ErrorCode

from .router import error_frame

log = logging.getLogger(__name__)

Write = Callable[[bytes], None]


class AnswerQueue:
    """The requests of one connection still to be answered, oldest first."""

    __slots__ = ("_entries", "_on_room", "_write", "window")

    def __init__(self, window: int, write: Write, on_room: Callable[[], None]) -> None:
        self.window = window
        self._write = write
        self._on_room = on_room
        # a ready answer (bytes) or the task computing it; a list: it holds a handful at most
        self._entries: list[asyncio.Task[bytes] | bytes] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.window

    def answer(self, data: bytes) -> None:
        """An answer known at once (an error frame): it still goes after the requests before it."""
        if self._entries:
            self._entries.append(data)
        else:
            self._write(data)

    def start(self, handling: Coroutine[Any, Any, bytes], *, after_earlier: bool = False) -> None:
        """Handle a request in its own task; its answer is written once every earlier one is.
        `after_earlier`: it also starts only once every earlier request is handled (a read sees what the
        connection's earlier sends wrote, as when requests ran one at a time)."""
        earlier = [e for e in self._entries if not isinstance(e, bytes)] if after_earlier else []
        work = _after(earlier, handling) if earlier else handling
        task = asyncio.get_running_loop().create_task(work)
        self._entries.append(task)
        task.add_done_callback(self._completed)

    def cancel(self) -> None:
        """The connection is gone: stop what is in flight, answer nothing more."""
        entries, self._entries = self._entries, []
        for entry in entries:
            if not isinstance(entry, bytes):
                entry.cancel()

    def _completed(self, _task: asyncio.Task[bytes]) -> None:
        entries = self._entries
        was_full = len(entries) >= self.window
        while entries:
            head = entries[0]
            if isinstance(head, bytes):
                data: bytes | None = head
            elif head.done():
                data = _answer_of(head)
            else:
                break
            del entries[0]
            if data is not None:
                self._write(data)
        if was_full and len(entries) < self.window:
            self._on_room()


async def _after(earlier: list[asyncio.Task[bytes]], handling: Coroutine[Any, Any, bytes]) -> bytes:
    try:
        await asyncio.wait(earlier)
    except BaseException:
        handling.close()  # cancelled while waiting: it never ran
        raise
    return await handling


def _answer_of(task: asyncio.Task[bytes]) -> bytes | None:
    if task.cancelled():
        return None
    exc = task.exception()
    if exc is None:
        return task.result()
    # The router answers every failure itself; this is a bug, but the client still gets its answer.
    log.error("request handling failed", exc_info=exc)
    return error_frame(ErrorCode.ERR_INTERNAL, "internal error; the request may be retried", 0)
