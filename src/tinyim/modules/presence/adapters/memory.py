"""In-process session directory: enough for one process; the Redis one serves many."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tinyim.modules.presence.ports import DeviceSession


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
