"""The messaging rules behind a cache: every 1:1 send asks "may a message b?" and every group send "who
are the members?"; the answers change rarely, so they are kept in the process that asks.

Correctness comes from invalidation, not from the TTL: the relation service announces every change of a
pair (friends, delete, block, unblock) or of a group's members (join, leave, remove, dissolve) on a change
feed, in this process at once and in every other process through Redis. Three rules keep the cache sound:
- only answers that allow are kept (a refusal is asked again: it is rare, and a block must not linger);
- a change bumps an epoch, and an answer fetched while the epoch moved is not kept (it may predate the
  change);
- while the feed is not live (Redis connection lost), the cache is bypassed and emptied: changes it did not
  hear of would otherwise be served. The TTL only bounds what a lost message could leave behind.

One question at a time per pair or group: sends that miss while the same question is already on its way
wait for its answer instead of asking too (when a cache entry expires, every send of a busy pair would
otherwise ask at once). If that answer was not kept (a refusal, a failure, a change that raced it), each
of them asks for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")
TTL_SECONDS = 60.0
TTL_SPREAD = 0.2  # an entry lives 80-100 % of the TTL: entries filled together (a start) expire apart
MAX_ENTRIES = 100_000


class MessagingRules(Protocol):
    """What the timeline asks for every send (relation's RelationApi serves it, locally or over gRPC)."""

    async def check_direct(self, sender_id: int, receiver_id: int) -> None: ...
    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]: ...


class CachedMessagingRules:
    """timeline.MessagingPolicy: the rules, answered from memory while nothing changed."""

    def __init__(
        self,
        rules: MessagingRules,
        live: Callable[[], bool] = lambda: True,
        ttl_seconds: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        spread: Callable[[], float] = random.random,
    ) -> None:
        self._rules = rules
        self._live = live  # False while changes may go unheard (the feed is down): no cache then
        self._ttl = ttl_seconds
        self._spread = spread  # 0.0-1.0: where in the last TTL_SPREAD of the TTL an entry expires
        self._max = max_entries
        self._clock = clock
        self._epoch = 0
        self._allowed: dict[tuple[int, int], float] = {}  # (sender, receiver) -> expiry
        self._members: dict[int, tuple[list[int], frozenset[int], float]] = {}  # group -> members, expiry
        # the questions on their way: done when answered, whatever the answer
        self._asking: dict[tuple[int, int] | int, asyncio.Future[None]] = {}
        self.hits = 0
        self.misses = 0

    def known(self, sender_id: int, receiver_id: int, group_id: int) -> bool:
        """timeline.KnownRules: whether the check of this send (1:1 when group_id is 0) would answer
        from memory, without a call."""
        if not self._live():
            return False
        now = self._clock()
        if group_id:
            cached = self._members.get(group_id)
            return cached is not None and sender_id in cached[1] and cached[2] > now
        expiry = self._allowed.get((sender_id, receiver_id))
        return expiry is not None and expiry > now

    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        key = (sender_id, receiver_id)
        if self.known(sender_id, receiver_id, 0) or (
            await self._waited_for(key) and self.known(sender_id, receiver_id, 0)
        ):
            self.hits += 1  # from memory, or the same question asked by another send just before
            return
        self.misses += 1
        epoch = self._epoch
        with self._question(key):
            await self._rules.check_direct(sender_id, receiver_id)  # raises when not allowed
            if epoch == self._epoch and self._live():
                self._keep(self._allowed, key, self._expiry())

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        if self.known(sender_id, 0, group_id) or (
            await self._waited_for(group_id) and self.known(sender_id, 0, group_id)
        ):
            self.hits += 1
            return self._members[group_id][0]
        self.misses += 1  # a sender not in the cached list may have just joined: ask
        epoch = self._epoch
        with self._question(group_id):
            members = await self._rules.group_recipients(sender_id, group_id)
            if epoch == self._epoch and self._live():
                self._keep(self._members, group_id, (members, frozenset(members), self._expiry()))
        return members

    def _expiry(self) -> float:
        return self._clock() + self._ttl * (1.0 - TTL_SPREAD * self._spread())

    async def _waited_for(self, key: tuple[int, int] | int) -> bool:
        """Wait for the same question already on its way, if any (True: there was one)."""
        asked = self._asking.get(key)
        if asked is None:
            return False
        await asyncio.wait({asked})  # not cancelled with this caller: the others still wait on it
        return True

    @contextlib.contextmanager
    def _question(self, key: tuple[int, int] | int) -> Iterator[None]:
        """This send asks `key`: sends that miss meanwhile wait for it (only the first asker registers)."""
        if key in self._asking:  # asking for itself after an answer that was not kept
            yield
            return
        asked = self._asking[key] = asyncio.get_running_loop().create_future()
        try:
            yield
        finally:
            del self._asking[key]
            asked.set_result(None)

    # ---------- told by the change feed ----------
    def pair_changed(self, a: int, b: int) -> None:
        self._epoch += 1
        self._allowed.pop((a, b), None)
        self._allowed.pop((b, a), None)

    def group_changed(self, group_id: int) -> None:
        self._epoch += 1
        self._members.pop(group_id, None)

    def clear(self) -> None:
        self._epoch += 1
        self._allowed.clear()
        self._members.clear()

    def _keep(self, table: dict[K, V], key: K, value: V) -> None:
        if len(table) >= self._max:
            table.pop(next(iter(table)))  # the oldest entry: dicts keep insertion order
        table[key] = value
