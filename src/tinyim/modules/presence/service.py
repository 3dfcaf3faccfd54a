"""Routing of signals to gateways: look sessions up once per batch, then one call per gateway."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence

from tinyim.kernel import PushTarget
from tinyim.modules.presence.domain import StatusView
from tinyim.modules.presence.ports import GatewayLink, SessionDirectory, SessionLookup

log = logging.getLogger(__name__)


async def _each(gateways: Iterable[str], call: Callable[[str], Awaitable[None]], what: str) -> None:
    """Call every gateway at once (one slow or dead gateway delays no other); failures are logged hints."""

    async def one(gateway_id: str) -> None:
        try:
            await call(gateway_id)
        except Exception:
            log.warning("%s to gateway failed", what, extra={"gateway": gateway_id}, exc_info=True)

    await asyncio.gather(*(one(g) for g in gateways))


class PresenceRouter:
    """Implements the timeline's PushNotifier and auth's SessionKicker over the session directory."""

    def __init__(
        self, sessions: SessionDirectory, gateways: GatewayLink, routes: SessionLookup | None = None
    ) -> None:
        self._sessions = sessions
        self._gateways = gateways
        # message signals only (hints): may come from a route cache; kicks and the rest ask `sessions`
        self._routes = routes or sessions

    async def notify(self, targets: Sequence[PushTarget]) -> None:
        online = await self._routes.lookup({t.user_id for t in targets})
        per_gateway: dict[str, list[PushTarget]] = defaultdict(list)
        for target in targets:
            # A user on two gateways gets a signal through each; offline users cost nothing more, and
            # neither does a gateway that holds only the device a target excepts (the sender's own).
            for gateway_id in {
                s.gateway_id for s in online.get(target.user_id, ()) if s.device_id != target.except_device
            }:
                per_gateway[gateway_id].append(target)
        await _each(per_gateway, lambda g: self._gateways.push(g, per_gateway[g]), "push")

    async def notify_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        online = await self._sessions.lookup([user_id])
        gateways = {s.gateway_id for s in online.get(user_id, ()) if s.device_id != except_device}
        await _each(
            gateways,
            lambda g: self._gateways.push_read(g, user_id, except_device, peer_id, group_id, read_seq),
            "read notify",
        )

    async def notify_event(self, user_id: int, except_device: str, cmd: int, body: bytes) -> None:
        """A client frame (cmd + protobuf body) for every device of user_id but except_device."""
        online = await self._sessions.lookup([user_id])
        gateways = {s.gateway_id for s in online.get(user_id, ()) if s.device_id != except_device}
        await _each(
            gateways, lambda g: self._gateways.push_event(g, user_id, except_device, cmd, body), "event push"
        )

    async def kick(self, user_id: int, device_id: str, keep_token_id: str, reason: str) -> None:
        online = await self._sessions.lookup([user_id])
        gateways = {
            s.gateway_id for s in online.get(user_id, ()) if not device_id or s.device_id == device_id
        }
        # The old token is revoked already, so an unreachable gateway must not fail the login: a dead
        # one's connections are gone; a partitioned one keeps the old connection until it drops,
        # and that token connects nowhere again.
        await _each(
            gateways, lambda g: self._gateways.kick(g, user_id, device_id, keep_token_id, reason), "kick"
        )

    # online status
    async def push_status(self, user_ids: Sequence[int], status: StatusView) -> None:
        """A status frame for these users' connected devices, wherever they are (a hint: failures logged)."""
        online = await self._sessions.lookup(user_ids)
        per_gateway: dict[str, list[int]] = defaultdict(list)
        for user_id, sessions in online.items():
            for gateway_id in {s.gateway_id for s in sessions}:
                per_gateway[gateway_id].append(user_id)
        await _each(
            per_gateway, lambda g: self._gateways.push_status(g, per_gateway[g], status), "status push"
        )
