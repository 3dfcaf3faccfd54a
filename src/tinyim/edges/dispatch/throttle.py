"""Login throttling: failed password checks per account and per client address, with backoff.

After `free_failures` failures a key is blocked for 1 s, then 2, 4, … up to `max_backoff`; a success
clears the account's count. Keys are the username as typed, case-folded (whether or not such an account
exists, so throttling reveals nothing) and the client address (an IPv6 client by its /64, which one host
usually holds whole; allowed `ADDRESS_FACTOR` times more failures: many users may share one address).
Blocked attempts cost no password hash. A key's failures are forgotten `forget_after` seconds after its
last failure.

The counts live behind `FailureStore`: in memory for one dispatch process, in Redis when IM_REDIS_URL is
set, so that every dispatch process counts the same failures (an attacker gains nothing by spreading
attempts over them).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

ADDRESS_FACTOR = 4


class FailureStore(Protocol):
    """Failure counts and blocks per key, shared by every process that throttles the same logins."""

    async def blocked_for(self, keys: Sequence[str]) -> float:
        """Seconds until the last of `keys` is unblocked; 0 when none is blocked."""
        ...

    async def count_failure(self, keys: Sequence[str], forget_after: float) -> list[int]:
        """Add one failure to each key (atomically per key) and return the new counts, in order; a key's
        count is forgotten `forget_after` seconds after its last failure."""
        ...

    async def block(self, blocks: Mapping[str, float]) -> None:
        """Block each key for the given seconds from now, unless it is already blocked for longer."""
        ...

    async def clear(self, key: str) -> None:
        """Forget the key's failures and block."""
        ...


def account_key(username: object) -> str:
    """A bounded key per account name, case-folded: a case-insensitive collation finds "Bob" as "bob"."""
    name = f"s:{username.casefold()}" if isinstance(username, str) else f"r:{username!r}"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"u:{digest}"


def address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"a:{address[:64]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"a:{ip.ipv4_mapped}"
        return f"a:{ipaddress.IPv6Network((ip, 64), strict=False).network_address}/64"
    return f"a:{ip}"


class LoginThrottle:
    def __init__(
        self,
        store: FailureStore | None = None,
        free_failures: int = 5,
        max_backoff: float = 300.0,
        forget_after: float = 3600.0,
    ) -> None:
        self._store = InMemoryFailureStore() if store is None else store
        self._free = free_failures
        self._max_backoff = max_backoff
        # a block must never outlive the count that caused it
        self._forget_after = max(forget_after, max_backoff)

    async def retry_after(self, username: object, address: str) -> int:
        """Whole seconds until `username` from `address` may try again; 0 = go ahead."""
        return math.ceil(await self._store.blocked_for([account_key(username), address_key(address)]))

    async def failed(self, username: object, address: str) -> None:
        keys = [account_key(username), address_key(address)]
        counts = await self._store.count_failure(keys, self._forget_after)
        blocks = {}
        for key, count, free in zip(keys, counts, (self._free, self._free * ADDRESS_FACTOR), strict=True):
            over = count - free
            if over > 0:
                blocks[key] = min(self._max_backoff, 2.0 ** min(over - 1, 30))
        if blocks:
            await self._store.block(blocks)

    async def succeeded(self, username: object) -> None:
        await self._store.clear(account_key(username))


@dataclass(slots=True)
class _State:
    failures: int
    forget_at: float
    blocked_until: float = 0.0


class InMemoryFailureStore:
    """One process's counts. Memory is bounded: at most `max_keys` keys, the least recently failed are
    forgotten first."""

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_keys = max_keys
        self._clock = clock
        self._states: OrderedDict[str, _State] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    async def blocked_for(self, keys: Sequence[str]) -> float:
        now = self._clock()
        return max((self._wait(key, now) for key in keys), default=0.0)

    async def count_failure(self, keys: Sequence[str], forget_after: float) -> list[int]:
        now = self._clock()
        counts = []
        for key in keys:
            state = self._live(key, now) or _State(0, 0.0)
            self._states.pop(key, None)
            state.failures += 1
            state.forget_at = now + forget_after
            self._states[key] = state  # most recently failed last
            counts.append(state.failures)
        while len(self._states) > self._max_keys:
            self._states.popitem(last=False)
        return counts

    async def block(self, blocks: Mapping[str, float]) -> None:
        now = self._clock()
        for key, seconds in blocks.items():
            state = self._live(key, now)
            if state is None:
                state = self._states[key] = _State(0, now + seconds)
            state.blocked_until = max(state.blocked_until, now + seconds)
            state.forget_at = max(state.forget_at, state.blocked_until)

    async def clear(self, key: str) -> None:
        self._states.pop(key, None)

    def _live(self, key: str, now: float) -> _State | None:
        state = self._states.get(key)
        if state is not None and state.forget_at <= now:
            del self._states[key]
            return None
        return state

    def _wait(self, key: str, now: float) -> float:
        state = self._live(key, now)
        return max(0.0, state.blocked_until - now) if state else 0.0
