"""Login throttling and the cap on concurrent password hashes."""

from __future__ import annotations

import asyncio
import threading
import time

from tinyim.edges.dispatch.throttle import ADDRESS_FACTOR, LoginThrottle
from tinyim.modules.auth.adapters.crypto import Argon2Hasher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_after_the_free_failures_and_success_clears_the_account() -> None:
    clock = Clock()
    t = LoginThrottle(free_failures=3, max_backoff=10, clock=clock)
    for _ in range(3):
        assert t.retry_after("alice", "1.2.3.4") == 0
        t.failed("alice", "1.2.3.4")
    assert t.retry_after("alice", "1.2.3.4") == 0  # three free failures
    t.failed("alice", "1.2.3.4")
    assert t.retry_after("alice", "9.9.9.9") == 1  # per account, from any address
    clock.now += 1
    t.failed("alice", "1.2.3.4")
    assert t.retry_after("alice", "1.2.3.4") == 2
    for _ in range(10):
        t.failed("alice", "1.2.3.4")
    assert t.retry_after("alice", "1.2.3.4") == 10  # capped
    t.succeeded("alice")
    assert t.retry_after("alice", "5.5.5.5") == 0


def test_one_address_guessing_many_accounts_is_throttled_too() -> None:
    t = LoginThrottle(free_failures=2, clock=Clock())
    for i in range(2 * ADDRESS_FACTOR + 1):
        t.failed(f"user{i}", "6.6.6.6")
    assert t.retry_after("someone-else", "6.6.6.6") >= 1
    assert t.retry_after("someone-else", "7.7.7.7") == 0


def test_memory_is_bounded() -> None:
    t = LoginThrottle(max_keys=100, clock=Clock())
    for i in range(1000):
        t.failed(f"u{i}", f"a{i}")
    assert len(t._states) <= 100


async def test_concurrent_hashes_are_capped() -> None:
    hasher = Argon2Hasher(time_cost=1, memory_cost=1024, max_concurrent=2)
    busy = peak = 0
    lock = threading.Lock()
    real = hasher._ph

    class SlowHasher:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def verify(self, h: str, p: str) -> bool:
            return slow_verify(h, p)

    def slow_verify(h: str, p: str) -> bool:
        nonlocal busy, peak
        with lock:
            busy += 1
            peak = max(peak, busy)
        time.sleep(0.02)
        with lock:
            busy -= 1
        return real.verify(h, p)

    hasher._ph = SlowHasher()  # type: ignore[assignment]
    h = await hasher.hash("password1")
    results = await asyncio.gather(*(hasher.verify(h, "password1") for _ in range(12)))
    assert all(results) and peak == 2
