"""The connections of this gateway process, indexed by (user, device type)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from tinyim.infra import audit, metrics
from tinyim.kernel import PushTarget
from tinyim.modules.presence import DeviceSession, GatewayLink, SessionDirectory, StatusView
from tinyim.modules.presence.protocol import status_info
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, encode

from .connection import INLINE_MAX_MESSAGES, Connection

log = logging.getLogger(__name__)


class ConnectionListener(Protocol):
    """Told of each connection's life on this gateway (online status); must not raise."""

    async def attached(self, conn: Connection) -> None: ...
    async def detached(self, conn: Connection) -> None: ...
    async def heartbeat(self, conn: Connection) -> None: ...
    async def activity(self, conn: Connection, cmd: int) -> None: ...


class GatewayHub:
    def __init__(self, gateway_id: str, sessions: SessionDirectory) -> None:
        self.gateway_id = gateway_id
        self._sessions = sessions
        self._by_user: dict[int, dict[str, Connection]] = {}
        self._listeners: list[ConnectionListener] = []  # online status

    def add_listener(self, listener: ConnectionListener) -> None:
        self._listeners.append(listener)

    async def activity(self, conn: Connection, cmd: int) -> None:
        """A request of the user's (online status: the device is in use)."""
        for listener in self._listeners:
            await listener.activity(conn, cmd)

    @property
    def connection_count(self) -> int:
        return sum(len(d) for d in self._by_user.values())

    def connections_of(self, user_id: int) -> dict[str, Connection]:
        return dict(self._by_user.get(user_id, {}))

    async def attach(self, conn: Connection) -> None:
        """Make `conn` THE connection of its (user, device); an older one on this gateway is kicked."""
        devices = self._by_user.setdefault(conn.user_id, {})
        old = devices.get(conn.device_id)
        devices[conn.device_id] = conn
        metrics.WS_CONNECTIONS.set(self.connection_count)
        for listener in self._listeners:  # first: the old connection's departure then changes nothing
            await listener.attached(conn)
        if old is not None and old is not conn:
            reason = "logged in again on another device of this type"
            await old.kick(reason)
            self._audit_kick(old, reason, "same_gateway")
        await self._sessions.bind(self._session(conn))

    async def detach(self, conn: Connection) -> None:
        devices = self._by_user.get(conn.user_id)
        if devices is not None and devices.get(conn.device_id) is conn:
            del devices[conn.device_id]
            if not devices:
                del self._by_user[conn.user_id]
            await self._sessions.unbind(self._session(conn))
        metrics.WS_CONNECTIONS.set(self.connection_count)
        for listener in self._listeners:
            await listener.detached(conn)  # every connection, replaced ones too: they forget it

    async def heartbeat(self, conn: Connection) -> None:
        if self._by_user.get(conn.user_id, {}).get(conn.device_id) is conn:
            await self._sessions.refresh(self._session(conn))
            for listener in self._listeners:
                await listener.heartbeat(conn)

    async def push(self, targets: Sequence[PushTarget]) -> None:
        """One notify call's signals. A user with several (the messages of a batch, a busy group) gets
        one frame per device carrying them all, not a frame per message. A device gets no frame for its
        own message alone (it has it from the ack); when a frame goes to it anyway, its own messages ride
        too: left out, they would be gaps in the frame's seqs, and the device would sync to fill them.
        More messages than a frame carries leave as several frames, each continuing the one before."""
        per_user: dict[int, list[PushTarget]] = {}
        for target in targets:
            if target.user_id in self._by_user:
                per_user.setdefault(target.user_id, []).append(target)
        for user_id, mine in per_user.items():
            mine.sort(key=lambda t: t.max_seq)
            copies = [t.message for t in mine]
            if not all(copies):  # one too large to ride: the seq alone
                parts: list[tuple[int, list[bytes] | None]] = [(mine[-1].max_seq, None)]
            elif len(mine) <= INLINE_MAX_MESSAGES:
                parts = [(mine[-1].max_seq, copies)]
            else:  # more than a frame carries (a busy group's paced push): several, in seq order
                step = INLINE_MAX_MESSAGES
                parts = [
                    (mine[min(k + step, len(mine)) - 1].max_seq, copies[k : k + step])
                    for k in range(0, len(mine), step)
                ]
            for device_id, conn in self._by_user[user_id].items():
                if any(t.except_device != device_id for t in mine):
                    for max_seq, messages in parts:
                        conn.signal_many(max_seq, messages)

    async def push_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        notify = pb.ReadNotify(peer_id=peer_id, group_id=group_id, read_seq=read_seq)
        frame = encode(Cmd.CMD_READ_NOTIFY, notify.SerializeToString())
        for device_id, conn in self._by_user.get(user_id, {}).items():
            if device_id != except_device:
                conn.send_soon(frame)

    async def push_event(self, user_id: int, except_device: str, cmd: int, body: bytes) -> None:
        """A client frame for user_id's devices on this gateway (receipts, conversation changes)."""
        frame = encode(cmd, body)
        for device_id, conn in self._by_user.get(user_id, {}).items():
            if device_id != except_device:
                conn.send_soon(frame)

    # online status and typing: frames for the connected devices, never stored
    async def push_status(self, user_ids: Sequence[int], status: StatusView) -> None:
        frame = encode(Cmd.CMD_STATUS_NOTIFY, pb.StatusNotify(status=status_info(status)).SerializeToString())
        for user_id in user_ids:
            for conn in self._by_user.get(user_id, {}).values():
                conn.send_soon(frame)

    async def push_typing(self, user_id: int, from_user_id: int, stopped: bool) -> None:
        notify = pb.TypingNotify(user_id=from_user_id, stopped=stopped)
        frame = encode(Cmd.CMD_TYPING_NOTIFY, notify.SerializeToString())
        for conn in self._by_user.get(user_id, {}).values():
            conn.send_soon(frame)

    async def kick(
        self, user_id: int, device_id: str, keep_token_id: str, reason: str, origin: str = "this_process"
    ) -> None:
        """`origin`: who asked, for the audit log ("this_process", or "remote" over gRPC: a login, logout
        or admin action handled by another server)."""
        for dev, conn in list(self._by_user.get(user_id, {}).items()):
            if (not device_id or dev == device_id) and conn.token_id != keep_token_id:
                await conn.kick(reason)
                self._audit_kick(conn, reason, origin)
                await self.detach(conn)

    def _audit_kick(self, conn: Connection, reason: str, origin: str) -> None:
        audit.event(
            "kick",
            user_id=conn.user_id,
            device_id=conn.device_id,
            reason=reason,
            gateway=self.gateway_id,
            origin=origin,
        )

    def _session(self, conn: Connection) -> DeviceSession:
        return DeviceSession(conn.user_id, conn.device_id, self.gateway_id, conn.conn_id)


class LocalGatewayLink:
    """GatewayLink for the gateway in this process; other gateways go through `others` (gRPC), if any."""

    def __init__(self, hub: GatewayHub, others: GatewayLink | None = None) -> None:
        self._hub = hub
        self._others = others

    def _remote(self, gateway_id: str) -> GatewayLink | None:
        if self._others is None:
            log.warning("no link to gateway", extra={"gateway": gateway_id})
        return self._others

    async def push(self, gateway_id: str, targets: Sequence[PushTarget]) -> None:
        if gateway_id == self._hub.gateway_id:
            await self._hub.push(targets)
        elif remote := self._remote(gateway_id):
            await remote.push(gateway_id, targets)

    async def kick(
        self, gateway_id: str, user_id: int, device_id: str, keep_token_id: str, reason: str
    ) -> None:
        if gateway_id == self._hub.gateway_id:
            await self._hub.kick(user_id, device_id, keep_token_id, reason)
        elif remote := self._remote(gateway_id):
            await remote.kick(gateway_id, user_id, device_id, keep_token_id, reason)

    async def push_read(
        self, gateway_id: str, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        if gateway_id == self._hub.gateway_id:
            await self._hub.push_read(user_id, except_device, peer_id, group_id, read_seq)
        elif remote := self._remote(gateway_id):
            await remote.push_read(gateway_id, user_id, except_device, peer_id, group_id, read_seq)

    # a client frame for a user's devices (read receipts, conversation changes)
    async def push_event(
        self, gateway_id: str, user_id: int, except_device: str, cmd: int, body: bytes
    ) -> None:
        if gateway_id == self._hub.gateway_id:
            await self._hub.push_event(user_id, except_device, cmd, body)
        elif remote := self._remote(gateway_id):
            await remote.push_event(gateway_id, user_id, except_device, cmd, body)

    # online status and typing
    async def push_status(self, gateway_id: str, user_ids: Sequence[int], status: StatusView) -> None:
        if gateway_id == self._hub.gateway_id:
            await self._hub.push_status(user_ids, status)
        elif remote := self._remote(gateway_id):
            await remote.push_status(gateway_id, user_ids, status)

    async def push_typing(self, gateway_id: str, user_id: int, from_user_id: int, stopped: bool) -> None:
        if gateway_id == self._hub.gateway_id:
            await self._hub.push_typing(user_id, from_user_id, stopped)
        elif remote := self._remote(gateway_id):
            await remote.push_typing(gateway_id, user_id, from_user_id, stopped)
