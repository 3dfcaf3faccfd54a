"""Online status: one record per user, aggregated over their devices. No I/O.

A device counts while its deadline lies ahead (connect and every heartbeat push it `ttl` into the future;
a clean disconnect removes it; a device whose gateway died simply runs out). The user is
- OFFLINE with no device counting,
- AWAY when they said so (kept until they say otherwise) or when every counting device is idle,
- ONLINE otherwise.
`shown` is what watchers were last told, so each change is announced once, by whoever made it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(enum.IntEnum):
    """The values of `UserStatus` in im_protocol.proto."""

    OFFLINE = 0
    ONLINE = 1
    AWAY = 2


@dataclass(frozen=True, slots=True)
class DevicePresence:
    conn_id: str  # the connection that holds this device type now
    seen_ms: int  # last connect, heartbeat or activity report
    deadline_ms: int
    idle: bool = False


@dataclass(slots=True)
class PresenceRecord:
    devices: dict[str, DevicePresence] = field(default_factory=dict)
    manual_away: bool = False
    last_seen_ms: int = 0  # when a device of this user was last known to be connected
    shown: Status = Status.OFFLINE

    def status(self, now_ms: int) -> Status:
        live = [d for d in self.devices.values() if d.deadline_ms > now_ms]
        if not live:
            return Status.OFFLINE
        if self.manual_away or all(d.idle for d in live):
            return Status.AWAY
        return Status.ONLINE

    def seen(self) -> int:
        return max([self.last_seen_ms, *(d.seen_ms for d in self.devices.values())])

    def next_deadline(self) -> int | None:
        """When this record next needs pruning (None: no device left)."""
        return min((d.deadline_ms for d in self.devices.values()), default=None)

    # ---------- changes (applied by the store inside one atomic update) ----------
    def device_up(self, device_id: str, conn_id: str, now_ms: int, ttl_ms: int, idle: bool | None) -> None:
        """A connect (idle=False), a heartbeat (idle=None: keep the flag) or an idle report."""
        old = self.devices.get(device_id)
        if idle is None:  # a heartbeat re-creating a lost entry: the device is connected, not idle
            idle = False if old is None or old.conn_id != conn_id else old.idle
        self.devices[device_id] = DevicePresence(conn_id, now_ms, now_ms + ttl_ms, idle)

    def device_down(self, device_id: str, conn_id: str, now_ms: int) -> None:
        """A clean disconnect; ignored when a newer connection holds the device type by now."""
        old = self.devices.get(device_id)
        if old is not None and old.conn_id == conn_id:
            del self.devices[device_id]
            self.last_seen_ms = max(self.last_seen_ms, now_ms)

    def prune(self, now_ms: int) -> None:
        """Forget devices whose deadline passed (their gateway died or lost them): last seen at the
        last sign of life."""
        for device_id, d in list(self.devices.items()):
            if d.deadline_ms <= now_ms:
                del self.devices[device_id]
                self.last_seen_ms = max(self.last_seen_ms, d.seen_ms)


@dataclass(frozen=True, slots=True)
class StatusView:
    """What a watcher is shown: last_seen_ms is when the user was last connected (0: never)."""

    user_id: int
    status: Status
    last_seen_ms: int


def view(user_id: int, record: PresenceRecord | None, now_ms: int) -> StatusView:
    if record is None:
        return StatusView(user_id, Status.OFFLINE, 0)
    return StatusView(user_id, record.status(now_ms), record.seen())
