"""In-process session directory: enough for one process; the Redis one serves many."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from tinyim.modules.presence.domain import PresenceRecord, StatusView, view
from tinyim.modules.presence.ports import Change, DeviceSession


class InMemorySessionDirectory:
    def __init__(self) -> None:
        self.entries: dict[int, dict[str, DeviceSession]] = {}

    async def bind(self, session: DeviceSession) -> None:
        self.entries.setdefault(session.user_id, {})[session.device_id] = session

    async def unbind(self, session: DeviceSession) -> None:
        devices = self.entries.get(session.user_id, {})
        if devices.get(session.device_id) == session:
            del devices[session.device_id]
            if not devices:
                self.entries.pop(session.user_id, None)

    async def refresh(self, session: DeviceSession) -> None:
        await self.bind(session)

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]:
        return {uid: list(self.entries[uid].values()) for uid in user_ids if uid in self.entries}


class InMemoryPresenceStore:
    """Online status records of one process (the Redis one is shared by every gateway)."""

    def __init__(self) -> None:
        self.records_by_user: dict[int, PresenceRecord] = {}

    async def update(self, user_id: int, change: Change, now_ms: int) -> tuple[StatusView, bool]:
        record = self.records_by_user.setdefault(user_id, PresenceRecord())
        record.prune(now_ms)
        change(record, now_ms)
        status = record.status(now_ms)
        changed, record.shown = status != record.shown, status
        return view(user_id, record, now_ms), changed

    async def records(self, user_ids: Iterable[int]) -> Mapping[int, PresenceRecord]:
        found = ((u, self.records_by_user.get(u)) for u in user_ids)
        return {u: copy.deepcopy(r) for u, r in found if r is not None}

    async def due(self, now_ms: int, limit: int) -> list[int]:
        due = []
        for user_id, record in self.records_by_user.items():
            deadline = record.next_deadline()
            if deadline is not None and deadline <= now_ms:
                due.append(user_id)
                if len(due) == limit:
                    break
        return due
