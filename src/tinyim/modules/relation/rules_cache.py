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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")
TTL_SECONDS = 60.0
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
    ) -> None:
        self._rules = rules
        self._live = live  # False while changes may go unheard (the feed is down): no cache then
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._epoch = 0
        self._allowed: dict[tuple[int, int], float] = {}  # (sender, receiver) -> expiry
        self._members: dict[int, tuple[list[int], frozenset[int], float]] = {}  # group -> members, expiry
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
        expiry = self._allowed.get(key)
        if expiry is not None and expiry > self._clock() and self._live():
            self.hits += 1
            return
        self.misses += 1
        epoch = self._epoch
        await self._rules.check_direct(sender_id, receiver_id)  # raises when not allowed
        if epoch == self._epoch and self._live():
            self._keep(self._allowed, key, self._clock() + self._ttl)

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        cached = self._members.get(group_id)
        if cached is not None and sender_id in cached[1] and cached[2] > self._clock() and self._live():
            self.hits += 1
            return cached[0]
        self.misses += 1  # a sender not in the cached list may have just joined: ask
        epoch = self._epoch
        members = await self._rules.group_recipients(sender_id, group_id)
        if epoch == self._epoch and self._live():
            self._keep(self._members, group_id, (members, frozenset(members), self._clock() + self._ttl))
        return members

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
