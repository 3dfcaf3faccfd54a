"""Login throttling and the cap on concurrent password hashes."""

from __future__ import annotations

import asyncio
import threading
import time

from tinyim.edges.dispatch.throttle import (
    ADDRESS_FACTOR,
    InMemoryFailureStore,
    LoginThrottle,
    account_key,
    address_key,
)
from tinyim.modules.auth.adapters.crypto import Argon2Hasher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_backoff_doubles_after_the_free_failures_and_success_clears_the_account() -> None:
    clock = Clock()
    t = LoginThrottle(InMemoryFailureStore(clock=clock), free_failures=3, max_backoff=10)
    for _ in range(3):
        assert await t.retry_after("alice", "1.2.3.4") == 0
        await t.failed("alice", "1.2.3.4")
    assert await t.retry_after("alice", "1.2.3.4") == 0  # three free failures
    await t.failed("alice", "1.2.3.4")
    assert await t.retry_after("alice", "9.9.9.9") == 1  # per account, from any address
    assert await t.retry_after("ALICE", "9.9.9.9") == 1  # whatever the case of the name
    clock.now += 1
    await t.failed("alice", "1.2.3.4")
    assert await t.retry_after("alice", "1.2.3.4") == 2
    for _ in range(10):
        await t.failed("alice", "1.2.3.4")
    assert await t.retry_after("alice", "1.2.3.4") == 10  # capped
    await t.succeeded("alice")
    assert await t.retry_after("alice", "5.5.5.5") == 0


async def test_failures_are_forgotten_an_hour_after_the_last_one() -> None:
    clock = Clock()
    t = LoginThrottle(InMemoryFailureStore(clock=clock), free_failures=2, max_backoff=10, forget_after=3600)
    for _ in range(2):
        await t.failed("bob", "1.1.1.1")
    clock.now += 3599
    await t.failed("bob", "1.1.1.1")  # third within the hour: blocked
    assert await t.retry_after("bob", "2.2.2.2") == 1
    clock.now += 3601
    await t.failed("bob", "1.1.1.1")  # the count started again: a free failure
    assert await t.retry_after("bob", "2.2.2.2") == 0


async def test_one_address_guessing_many_accounts_is_throttled_too() -> None:
    t = LoginThrottle(InMemoryFailureStore(clock=Clock()), free_failures=2)
    for i in range(2 * ADDRESS_FACTOR + 1):
        await t.failed(f"user{i}", "6.6.6.6")
    assert await t.retry_after("someone-else", "6.6.6.6") >= 1
    assert await t.retry_after("someone-else", "7.7.7.7") == 0


def test_an_ipv6_host_is_one_address_per_64_and_keys_are_bounded() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:10.0.0.1") == address_key("10.0.0.1")
    assert len(account_key("x" * 4000)) == len(account_key("y")) and account_key(7) != account_key("7")
    assert account_key("\ud800") != account_key("\ud801")  # lone surrogates hash, not crash


async def test_memory_is_bounded() -> None:
    store = InMemoryFailureStore(max_keys=100, clock=Clock())
    t = LoginThrottle(store)
    for i in range(1000):
        await t.failed(f"u{i}", f"a{i}")
    assert len(store) <= 100


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
