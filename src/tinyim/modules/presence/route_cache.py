"""Where a message's signals go, from memory: every commit of a msg process asks the session table which
gateways hold its owners' devices; the answer changes only when a device connects or leaves, so the
process that pushes keeps it.

Used for message signals only (a push is a hint: a route a moment out of date delays a device until its
next sync, it loses nothing). Kicks, read marks and status ask the session table itself. The rules are
those of the messaging-rules cache (`relation.rules_cache`):
- correctness comes from invalidation: a bind or unbind announces the user on a change feed (Redis pub/sub,
  published in the same round trip as the change), and every listening process forgets that user;
- a change bumps an epoch, and an answer fetched while the epoch moved is not kept (it may predate it);
- while the feed is not live (not subscribed yet, or the connection was lost) the cache is bypassed and
  emptied; the TTL only bounds what a lost message could leave behind (and how long a device whose
  gateway died keeps being signalled there: its entry's own deadline is checked only on a fetch).
Users without a session are kept too (as "offline"): a big group's offline members cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from tinyim.modules.presence.ports import DeviceSession, SessionDirectory

TTL_SECONDS = 2.0
MAX_ENTRIES = 100_000
_OFFLINE: tuple[DeviceSession, ...] = ()


class CachedRoutes:
    """The session table's `lookup`, answered from memory while no change was announced."""

    def __init__(
        self,
        sessions: SessionDirectory,
        live: Callable[[], bool],
        ttl_seconds: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._live = live  # False while changes may go unheard: no cache then
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._epoch = 0
        self._routes: dict[int, tuple[tuple[DeviceSession, ...], float]] = {}  # user -> sessions, expiry
        self.hits = 0
        self.misses = 0

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]:
        if not self._live():
            return await self._sessions.lookup(user_ids)
        now = self._clock()
        found: dict[int, list[DeviceSession]] = {}
        missing: list[int] = []
        asked = dict.fromkeys(user_ids)
        for uid in asked:
            cached = self._routes.get(uid)
            if cached is not None and cached[1] > now:
                if cached[0]:
                    found[uid] = list(cached[0])
            else:
                missing.append(uid)
        self.hits += len(asked) - len(missing)
        if not missing:
            return found
        self.misses += len(missing)
        epoch = self._epoch
        fetched = await self._sessions.lookup(missing)
        keep = epoch == self._epoch and self._live()
        expiry = self._clock() + self._ttl
        for uid in missing:
            sessions = fetched.get(uid)
            if sessions:
                found[uid] = list(sessions)
            if keep:
                self._keep(uid, (tuple(sessions) if sessions else _OFFLINE, expiry))
        return found

    # ---------- told by the change feed ----------
    def user_changed(self, user_id: int) -> None:
        self._epoch += 1
        self._routes.pop(user_id, None)

    def clear(self) -> None:
        self._epoch += 1
        self._routes.clear()

    def _keep(self, user_id: int, entry: tuple[tuple[DeviceSession, ...], float]) -> None:
        self._routes.pop(user_id, None)  # re-inserted last: the oldest entries are the first to go
        if len(self._routes) >= self._max:
            self._routes.pop(next(iter(self._routes)))
        self._routes[user_id] = entry
