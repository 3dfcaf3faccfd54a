"""Login throttling: failed password checks per account and per client address, with backoff.

After `free_failures` failures a key is blocked for 1 s, then 2, 4, … up to `max_backoff`; a success
clears the account's count. Keys are the username as typed (whether or not such an account exists, so
throttling reveals nothing) and the client address (allowed `ADDRESS_FACTOR` times more failures: many
users may share one address). Blocked attempts cost no password hash. Memory is bounded: at most
`max_keys` keys, the least recently failed are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ADDRESS_FACTOR = 4


@dataclass(slots=True)
class _State:
    failures: int
    blocked_until: float


class LoginThrottle:
    def __init__(
        self,
        free_failures: int = 5,
        max_backoff: float = 300.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_failures
        self._max_backoff = max_backoff
        self._max_keys = max_keys
        self._clock = clock
        self._states: OrderedDict[str, _State] = OrderedDict()

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until `username` from `address` may try again; 0 = go ahead."""
        now = self._clock()
        wait = max(self._wait(f"u:{username}", now), self._wait(f"a:{address}", now))
        return math.ceil(wait)

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        self._fail(f"u:{username}", self._free, now)
        self._fail(f"a:{address}", self._free * ADDRESS_FACTOR, now)

    def succeeded(self, username: str) -> None:
        self._states.pop(f"u:{username}", None)

    def _wait(self, key: str, now: float) -> float:
        state = self._states.get(key)
        return max(0.0, state.blocked_until - now) if state else 0.0

    def _fail(self, key: str, free: int, now: float) -> None:
        state = self._states.pop(key, None) or _State(0, 0.0)
        state.failures += 1
        over = state.failures - free
        if over > 0:
            state.blocked_until = now + min(self._max_backoff, 2.0 ** (over - 1))
        self._states[key] = state  # most recently failed last
        while len(self._states) > self._max_keys:
            self._states.popitem(last=False)
