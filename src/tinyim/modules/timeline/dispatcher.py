"""After-commit push dispatch: the ack never waits for a gateway (DESIGN §2, §5.4).

Writers hand over the push targets of a committed message and return at once. One drain task takes
everything queued since its last call and makes ONE notify call of it, so the messages of a batch (and
of every send that finished meanwhile) cost one push RPC per gateway. Pushes are hints: a notifier error
is logged, and when the queue is full the oldest targets are dropped (counted) — their owners catch up
on their next sync.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from tinyim.kernel import PushTarget
from tinyim.modules.timeline.ports import PushNotifier

log = logging.getLogger(__name__)


class PushDispatcher:
    def __init__(
        self,
        notifier: PushNotifier,
        max_pending: int = 100_000,
        on_drop: Callable[[int], None] = lambda _n: None,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self._notifier = notifier
        self._max_pending = max_pending
        self._on_drop = on_drop  # told how many targets a full queue dropped (a metric)
        self._on_failure = on_failure  # told of each notify call that failed (a metric)
        self._pending: deque[PushTarget] = deque()
        self._drainer: asyncio.Task[None] | None = None

    def submit(self, targets: Sequence[PushTarget]) -> None:
        """Queue targets for the next notify call; never blocks, never raises."""
        self._pending.extend(targets)
        overflow = len(self._pending) - self._max_pending
        if overflow > 0:
            for _ in range(overflow):
                self._pending.popleft()
            self._on_drop(overflow)
            log.warning("push queue full: dropped the %d oldest targets", overflow)
        if self._drainer is None and self._pending:
            self._drainer = asyncio.create_task(self._drain())

    async def drained(self) -> None:
        """Wait until every queued target was handed to the notifier (shutdown, tests)."""
        while self._drainer is not None:
            await asyncio.wait({self._drainer})

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                try:
                    await self._notifier.notify(batch)
                except Exception:
                    self._on_failure()
                    log.exception("push notify failed; recipients will catch up on their next sync")
        finally:
            self._drainer = None
