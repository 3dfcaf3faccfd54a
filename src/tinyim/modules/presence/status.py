"""Online status and typing: the gateways report their connections' life; watchers are told of changes.

Runs inside every gateway process (presence is a library over Redis, not a role). Every event goes
through one atomic update of the user's record; the update that changes what watchers were last shown
announces it: one StatusNotify per connected device of each watcher, one call per gateway. A gateway
killed with `kill -9` reports nothing: its devices run out at their deadline (`ttl` after their last
heartbeat) and `reap`, which every gateway runs, announces them offline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from tinyim.kernel import INVALID_ARGUMENT, Caller, ImError
from tinyim.modules.presence.domain import PresenceRecord, Status, StatusView, view
from tinyim.modules.presence.ports import (
    Change,
    GatewayLink,
    PresenceStore,
    SessionDirectory,
    StatusAudience,
)

log = logging.getLogger(__name__)

MAX_QUERY = 200


class StatusService:
    def __init__(
        self,
        store: PresenceStore,
        audience: StatusAudience,
        sessions: SessionDirectory,
        gateways: GatewayLink,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._audience = audience
        self._sessions = sessions
        self._gateways = gateways
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # ---------- what gateways report ----------
    async def connected(self, user_id: int, device_id: str, conn_id: str) -> None:
        await self._apply(user_id, lambda r, now: r.device_up(device_id, conn_id, now, self._ttl_ms, False))

    async def heartbeat(self, user_id: int, device_id: str, conn_id: str, idle: bool | None = None) -> None:
        """Push the device's deadline ahead; `idle` as the gateway knows it (None: keep the stored flag).
        Passing it re-creates a record Redis lost exactly as it was."""
        await self._apply(user_id, lambda r, now: r.device_up(device_id, conn_id, now, self._ttl_ms, idle))

    async def idle(self, user_id: int, device_id: str, conn_id: str, idle: bool) -> None:
        await self._apply(user_id, lambda r, now: r.device_up(device_id, conn_id, now, self._ttl_ms, idle))

    async def disconnected(self, user_id: int, device_id: str, conn_id: str) -> None:
        await self._apply(user_id, lambda r, now: r.device_down(device_id, conn_id, now))

    async def reap(self, limit: int = 500) -> int:
        """Prune the devices whose deadline passed; announce who went offline. Returns users pruned."""
        due = await self._store.due(self._now(), limit)
        for user_id in due:
            await self._apply(user_id, lambda r, now: None)  # every update prunes first
        return len(due)

    # ---------- what clients ask ----------
    async def set_status(self, caller: Caller, status: int) -> StatusView:
        if status not in (Status.ONLINE, Status.AWAY):
            raise ImError(INVALID_ARGUMENT, "set your status to online or away")
        away = status == Status.AWAY

        def change(record: PresenceRecord, now: int) -> None:
            record.manual_away = away

        return await self._apply(caller.user_id, change)

    async def query(self, caller: Caller, user_ids: Sequence[int]) -> list[StatusView]:
        """The status of those of user_ids the caller may see (themselves included), in request order."""
        if len(user_ids) > MAX_QUERY:
            raise ImError(INVALID_ARGUMENT, f"ask for at most {MAX_QUERY} users at once")
        wanted = list(dict.fromkeys(user_ids))
        others = [u for u in wanted if u != caller.user_id]
        allowed = set(await self._audience.visible(caller.user_id, others)) if others else set()
        allowed.update(u for u in wanted if u == caller.user_id)
        records = await self._store.records(allowed)
        now = self._now()
        return [view(u, records.get(u), now) for u in wanted if u in allowed]

    async def typing(self, caller: Caller, peer_id: int, stopped: bool) -> None:
        """Tell the peer's connected devices; nothing is stored, nothing waits for an offline peer."""
        if peer_id == caller.user_id:
            raise ImError(INVALID_ARGUMENT, "you cannot type to yourself")
        await self._audience.check_typing(caller.user_id, peer_id)
        online = await self._sessions.lookup([peer_id])
        gateways = {s.gateway_id for s in online.get(peer_id, ())}
        await asyncio.gather(*(self._typing(g, peer_id, caller.user_id, stopped) for g in gateways))

    # ---------- internals ----------
    async def _apply(self, user_id: int, change: Change) -> StatusView:
        status, changed = await self._store.update(user_id, change, self._now())
        if changed:
            await self._announce(status)
        return status

    async def _announce(self, status: StatusView) -> None:
        """To every watcher's connected devices (a user's own devices learn it from StatusSetResp or a
        query: a connection gets no unasked frame about itself)."""
        try:
            online = await self._sessions.lookup(await self._audience.watchers(status.user_id))
        except Exception:
            log.warning("status change not announced", extra={"user": status.user_id}, exc_info=True)
            return
        per_gateway: dict[str, list[int]] = defaultdict(list)
        for user_id, sessions in online.items():
            for gateway_id in {s.gateway_id for s in sessions}:
                per_gateway[gateway_id].append(user_id)
        await asyncio.gather(*(self._push(g, users, status) for g, users in per_gateway.items()))

    async def _push(self, gateway_id: str, user_ids: list[int], status: StatusView) -> None:
        try:
            await self._gateways.push_status(gateway_id, user_ids, status)
        except Exception:
            log.warning("status push to gateway failed", extra={"gateway": gateway_id}, exc_info=True)

    async def _typing(self, gateway_id: str, peer_id: int, from_user_id: int, stopped: bool) -> None:
        try:
            await self._gateways.push_typing(gateway_id, peer_id, from_user_id, stopped)
        except Exception:
            log.warning("typing push to gateway failed", extra={"gateway": gateway_id}, exc_info=True)
