"""Ports of presence: where each (user, device) is connected, and how to reach a gateway."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tinyim.kernel import PushTarget


@dataclass(frozen=True, slots=True)
class DeviceSession:
    user_id: int
    device_id: str
    gateway_id: str
    conn_id: str  # tells a newer connection of the same device from an older one


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
