"""Online status as one gateway sees it: its connections' connects, heartbeats, requests and idleness.

A connection is idle once the user has sent no request for `away_after` seconds (heartbeats, syncs and
status queries are sent by clients on their own and do not count); the first request after that makes it
active again. Only these transitions, connects, disconnects and heartbeats reach the status records.
A background loop finds idle connections and reaps devices of dead gateways (every gateway runs it).
Failures of the status backend are logged and never break a connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tinyim.kernel import RATE_LIMITED, Caller, ImError
from tinyim.modules.presence import StatusService, StatusView
from tinyim.wire import Cmd

from .connection import Connection, TokenBucket

log = logging.getLogger(__name__)

# Requests a client makes by itself, not because its user did something.
PASSIVE_COMMANDS = frozenset(
    {Cmd.CMD_HEARTBEAT_REQ, Cmd.CMD_MSG_SYNC_REQ, Cmd.CMD_STATUS_QUERY_REQ, Cmd.CMD_UNREAD_REQ}
)


@dataclass(slots=True)
class _Tracked:
    last_active: float
    idle: bool
    typing: TokenBucket
    written: float  # when this connection's device was last written to its status record


class StatusTracker:
    """The gateway's ConnectionListener for online status, and the per-connection typing rate limit."""

    def __init__(
        self,
        status: StatusService,
        away_after_seconds: float,
        typing_per_second: float = 1.0,
        typing_burst: int = 5,
        refresh_every: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._status = status
        self._away_after = away_after_seconds
        # A heartbeat re-writes the device (pushing its deadline a TTL ahead) only this long after the
        # last write: a third of the TTL keeps the deadline ahead for any client the gateway keeps open.
        self._refresh_every = refresh_every
        self._typing = (typing_per_second, typing_burst)
        self._clock = clock
        self._conns: dict[Connection, _Tracked] = {}

    @property
    def sweep_interval(self) -> float:
        return max(0.2, min(1.0, self._away_after / 4))

    # ---------- ConnectionListener ----------
    async def attached(self, conn: Connection) -> None:
        now = self._clock()
        self._conns[conn] = _Tracked(now, False, TokenBucket(*self._typing), now)
        await self._safely(self._status.connected(conn.user_id, conn.device_id, conn.conn_id))

    async def detached(self, conn: Connection) -> None:
        if self._conns.pop(conn, None) is not None:
            await self._safely(self._status.disconnected(conn.user_id, conn.device_id, conn.conn_id))

    async def heartbeat(self, conn: Connection) -> None:
        tracked = self._conns.get(conn)
        now = self._clock()
        if tracked is not None and now - tracked.written >= self._refresh_every:
            tracked.written = now
            heartbeat = self._status.heartbeat(conn.user_id, conn.device_id, conn.conn_id, tracked.idle)
            await self._safely(heartbeat)

    async def activity(self, conn: Connection, cmd: int) -> None:
        tracked = self._conns.get(conn)
        if tracked is None or cmd in PASSIVE_COMMANDS:
            return
        tracked.last_active = self._clock()
        if tracked.idle:
            tracked.idle, tracked.written = False, tracked.last_active
            await self._safely(self._status.idle(conn.user_id, conn.device_id, conn.conn_id, False))

    # ---------- background ----------
    async def sweep(self) -> None:
        """Mark connections idle past away_after; prune devices whose gateway died."""
        now = self._clock()
        for conn, tracked in list(self._conns.items()):
            if not tracked.idle and now - tracked.last_active >= self._away_after:
                tracked.idle, tracked.written = True, now
                await self._safely(self._status.idle(conn.user_id, conn.device_id, conn.conn_id, True))
        await self._safely(self._status.reap())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("status sweep failed")

    # ---------- requests ----------
    async def set_status(self, conn: Connection, status: int) -> StatusView:
        return await self._status.set_status(Caller(conn.user_id, conn.device_id), status)

    async def query(self, conn: Connection, user_ids: Sequence[int]) -> list[StatusView]:
        return await self._status.query(Caller(conn.user_id, conn.device_id), user_ids)

    async def typing(self, conn: Connection, peer_id: int, stopped: bool) -> None:
        tracked = self._conns.get(conn)
        if tracked is not None and not tracked.typing.take():
            raise ImError(RATE_LIMITED, "too many typing notices; send one every few seconds")
        await self._status.typing(Caller(conn.user_id, conn.device_id), peer_id, stopped)

    async def _safely(self, call: Awaitable[object]) -> None:
        try:
            await call
        except Exception:
            log.warning("online status update failed", exc_info=True)
