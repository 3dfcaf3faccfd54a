"""One authenticated client connection: serialised sends, coalesced push signals, a rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from tinyim.infra import metrics
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, encode

log = logging.getLogger(__name__)

CLOSE_KICKED = 4001
CLOSE_UNAUTHENTICATED = 4401
CLOSE_IDLE = 4408
CLOSE_POLICY = 1008

SendBytes = Callable[[bytes], Awaitable[None]]
_background: set[asyncio.Task[None]] = set()  # keeps fire-and-forget sends alive until done
Close = Callable[[int, str], Awaitable[None]]


class TokenBucket:
    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate, self._burst = rate, float(burst)
        self._tokens, self._last = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Connection:
    __slots__ = (
        "_close",
        "_send_bytes",
        "_send_lock",
        "_signal_seq",
        "_signal_task",
        "closed",
        "conn_id",
        "device_id",
        "limiter",
        "strikes",
        "token_id",
        "user_id",
    )

    def __init__(
        self,
        send_bytes: SendBytes,
        close: Close,
        user_id: int,
        device_id: str,
        token_id: str,
        conn_id: str,
        limiter: TokenBucket,
        strikes: TokenBucket,
    ) -> None:
        self._send_bytes = send_bytes
        self._close = close
        self._send_lock = asyncio.Lock()
        self._signal_seq = 0
        self._signal_task: asyncio.Task[None] | None = None
        self.user_id = user_id
        self.device_id = device_id
        self.token_id = token_id
        self.conn_id = conn_id
        self.limiter = limiter
        # Bad or rate-limited frames spend a strike; strikes come back slowly, so an occasional error
        # never adds up to a close, while a flood or a broken client runs out at once.
        self.strikes = strikes
        self.closed = False

    async def send(self, data: bytes) -> None:
        if self.closed:
            return
        async with self._send_lock:
            try:
                await self._send_bytes(data)
            except Exception:  # the peer went away; the receive loop notices and cleans up
                self.closed = True

    def send_soon(self, data: bytes) -> None:
        """Send without making the caller wait on this client (small, rare frames: read notices)."""
        if not self.closed:
            task = asyncio.get_running_loop().create_task(self.send(data))
            _background.add(task)
            task.add_done_callback(_background.discard)

    def signal(self, max_seq: int) -> None:
        """Queue a MsgPushNotify; signals that pile up while one is being sent collapse into the highest."""
        if self.closed or max_seq <= self._signal_seq:
            return
        self._signal_seq = max_seq
        if self._signal_task is None or self._signal_task.done():
            self._signal_task = asyncio.get_running_loop().create_task(self._flush_signals())

    async def _flush_signals(self) -> None:
        sent = 0
        while self._signal_seq > sent and not self.closed:
            sent = self._signal_seq
            metrics.PUSHES.inc()
            await self.send(
                encode(Cmd.CMD_MSG_PUSH_NOTIFY, pb.MsgPushNotify(max_seq_id=sent).SerializeToString())
            )

    async def kick(self, reason: str) -> None:
        if self.closed:
            return
        metrics.WS_KICKS.inc()
        await self.send(encode(Cmd.CMD_KICK_NOTIFY, pb.KickNotify(reason=reason).SerializeToString()))
        await self.close(CLOSE_KICKED, "kicked")

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._signal_task is not None:
            self._signal_task.cancel()
        async with self._send_lock:
            with contextlib.suppress(Exception):
                await self._close(code, reason)
