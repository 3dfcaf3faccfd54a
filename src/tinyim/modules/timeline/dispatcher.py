"""After-commit push dispatch: the ack never waits for a gateway (DESIGN §2, §5.4).

Writers hand over the push targets of a committed message and return at once. One drain task takes
everything queued since its last call and makes ONE notify call of it, so the messages of a batch (and
of every send that finished meanwhile) cost one push RPC per gateway. Pushes are hints: a notifier error
is logged, and when the queue is full the oldest targets are dropped (counted) — their owners catch up
on their next sync.

A big fan-out (a group message to hundreds of members) costs a frame per member, and a frame costs far
more than a message in it (a socket write on each side). Such messages go through a second queue whose
notify calls are paced by their reach: after a call for N owners the next waits N / `fanout_rate`
seconds (at most FANOUT_MAX_GAP), and carries everything queued meanwhile. An isolated group message goes
at once; a busy group's messages reach each member several to a frame, a little later. Small pushes
(1:1, small groups) never wait. A device whose small push overtakes a paced one sees a gap: the clients
hold what came after it for a moment (their gap wait) for the paced push, and sync only if it does not come.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from tinyim.kernel import PushTarget
from tinyim.modules.timeline.ports import PushNotifier

log = logging.getLogger(__name__)

FANOUT_MAX_GAP = 0.25  # seconds: the longest a paced call waits, however many owners the last one had


class _Queue:
    """Targets waiting for a notify call, drained by one task. With `rate` (owners per second) a call
    for N owners makes the next one wait N / rate seconds."""

    def __init__(
        self,
        notifier: PushNotifier,
        max_pending: int,
        rate: float,
        on_drop: Callable[[int], None],
        on_failure: Callable[[], None],
    ) -> None:
        self._notifier = notifier
        self._max_pending = max_pending
        self._rate = rate
        self._on_drop = on_drop
        self._on_failure = on_failure
        self._pending: deque[PushTarget] = deque()
        self._next_call = float("-inf")  # loop time the next notify call may begin
        self.drainer: asyncio.Task[None] | None = None

    def submit(self, targets: Sequence[PushTarget]) -> None:
        self._pending.extend(targets)
        overflow = len(self._pending) - self._max_pending
        if overflow > 0:
            for _ in range(overflow):
                self._pending.popleft()
            self._on_drop(overflow)
            log.warning("push queue full: dropped the %d oldest targets", overflow)
        if self.drainer is None and self._pending:
            self.drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                wait = self._next_call - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # what arrives meanwhile rides this call
                batch = list(self._pending)
                self._pending.clear()
                if self._rate > 0:  # by the users reached (a frame each), not the messages they get
                    owners = len({t.user_id for t in batch})
                    self._next_call = loop.time() + min(FANOUT_MAX_GAP, owners / self._rate)
                try:
                    await self._notifier.notify(batch)
                except Exception:
                    self._on_failure()
                    log.exception("push notify failed; recipients will catch up on their next sync")
        finally:
            self.drainer = None


class PushDispatcher:
    def __init__(
        self,
        notifier: PushNotifier,
        max_pending: int = 100_000,
        on_drop: Callable[[int], None] = lambda _n: None,
        on_failure: Callable[[], None] = lambda: None,
        fanout_min: int = 0,
        fanout_rate: float = 0.0,
    ) -> None:
        """`on_drop` is told how many targets a full queue dropped, `on_failure` of each failed notify
        call (metrics). `fanout_min`: a message with this many targets or more is a big fan-out (0: none
        is); `fanout_rate`: owners per second that big fan-outs' notify calls are paced to (0: none)."""
        self._now = _Queue(notifier, max_pending, 0.0, on_drop, on_failure)
        self._paced = _Queue(notifier, max_pending, fanout_rate, on_drop, on_failure)
        self._fanout_min = fanout_min if fanout_min > 0 and fanout_rate > 0 else 0

    def paced(self, owners: int) -> bool:
        """Whether a message with this many owners goes through the paced queue."""
        return bool(self._fanout_min) and owners >= self._fanout_min

    def submit(self, targets: Sequence[PushTarget]) -> None:
        """Queue one message's targets for a notify call; never blocks, never raises."""
        if self.paced(len(targets)):
            self._paced.submit(targets)
        else:
            self._now.submit(targets)

    async def drained(self) -> None:
        """Wait until every queued target was handed to the notifier (shutdown, tests)."""
        while (task := self._now.drainer or self._paced.drainer) is not None:
            await asyncio.wait({task})
