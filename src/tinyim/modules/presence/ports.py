"""Ports of presence: where each (user, device) is connected, and how to reach a gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tinyim.kernel import PushTarget
from tinyim.modules.presence.domain import PresenceRecord, StatusView


@dataclass(frozen=True, slots=True)
class DeviceSession:
    user_id: int
    device_id: str
    gateway_id: str
    conn_id: str  # tells a newer connection of the same device from an older one


class SessionLookup(Protocol):
    """Where users' devices are connected (the session table, or a cache of it)."""

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]: ...


class SessionDirectory(Protocol):
    """The session routing table (spec: `im:session:{uid}`, one field per device)."""

    async def bind(self, session: DeviceSession) -> None: ...
    async def unbind(self, session: DeviceSession) -> None:
        """Remove the entry only if it still names this connection."""
        ...

    async def refresh(self, session: DeviceSession) -> None:
        """Heartbeat: keep (or re-create) the entry."""
        ...

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]: ...


class GatewayLink(Protocol):
    """Calls into one gateway by id: in-process for the local gateway, gRPC for others."""

    async def push(self, gateway_id: str, targets: Sequence[PushTarget]) -> None: ...
    async def kick(
        self, gateway_id: str, user_id: int, device_id: str, keep_token_id: str, reason: str
    ) -> None: ...
    async def push_read(
        self, gateway_id: str, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None: ...

    # a client frame (cmd, protobuf body) for a user's devices: read receipts, conversation changes
    async def push_event(
        self, gateway_id: str, user_id: int, except_device: str, cmd: int, body: bytes
    ) -> None: ...
    # online status and typing: for devices connected now, never stored
    async def push_status(self, gateway_id: str, user_ids: Sequence[int], status: StatusView) -> None: ...
    async def push_typing(self, gateway_id: str, user_id: int, from_user_id: int, stopped: bool) -> None: ...


# ---------- online status ----------
Change = Callable[[PresenceRecord, int], None]


class PresenceStore(Protocol):
    """Status records, one per user (Redis `im:presence:{uid}` + the `im:presence:due` zset, or memory)."""

    async def update(self, user_id: int, change: Change, now_ms: int) -> tuple[StatusView, bool]:
        """Atomically: load the record, prune expired devices, apply `change(record, now_ms)`, store it.
        Returns the user's status now, and True when it differs from what watchers were last shown
        (the record then remembers it as shown: of concurrent updates, exactly one reports a change)."""
        ...

    async def records(self, user_ids: Iterable[int]) -> Mapping[int, PresenceRecord]: ...

    async def due(self, now_ms: int, limit: int) -> list[int]:
        """Users with a device whose deadline has passed (to prune: gateways that died)."""
        ...


class StatusAudience(Protocol):
    """Who may see whose status and who may type to whom (the relation module's rules)."""

    async def watchers(self, user_id: int) -> list[int]:
        """Everyone who may see user_id's status: friends both ways, no block either way."""
        ...

    async def visible(self, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
        """Which of user_ids viewer may see."""
        ...

    async def check_typing(self, sender_id: int, peer_id: int) -> None:
        """Raises ImError unless sender may message peer."""
        ...
