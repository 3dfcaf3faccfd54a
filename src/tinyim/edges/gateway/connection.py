"""One authenticated client connection: serialised sends, coalesced push signals, a rate limit.

Every send has a deadline: a client that stops reading cannot hold a sender (a push, a kick, the
response loop) for longer than `send_timeout`; past it the connection is aborted. Fire-and-forget
frames are bounded too (`max_queued`). A kick never waits on the old connection's socket.

A connection writes either to a `Wire` (the gateway's own WebSocket protocol: writes never block, the
wire enforces the send deadline itself, so sends need no lock, timer or task) or to a pair of async
callables (`send_bytes`, `close`), serialised by a lock and bounded by `send_timeout` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from tinyim.infra import metrics
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, encode
from tinyim.wire.varint import varint

log = logging.getLogger(__name__)

CLOSE_KICKED = 4001
CLOSE_UNAUTHENTICATED = 4401
CLOSE_IDLE = 4408
CLOSE_POLICY = 1008

SendBytes = Callable[[bytes], Awaitable[None]]
_background: set[asyncio.Task[None]] = set()  # keeps fire-and-forget sends alive until done
Close = Callable[[int, str], Awaitable[None]]
Abort = Callable[[], None]
SYNC_CREDITS_MAX = 4
# messages one push frame carries (the hub sends more as several frames; piled up behind a slow socket,
# more leave only the seq, and the client syncs)
INLINE_MAX_MESSAGES = 32
FAREWELL_SECONDS = 2.0  # how long a kicked or closed connection may take to get its last frames out
_DROPPED_QUEUE_FULL = metrics.PUSH_DROPS.labels(reason="queue_full")
_DROPPED_SEND_TIMEOUT = metrics.PUSH_DROPS.labels(reason="send_timeout")


def push_notify(max_seq: int, inline: list[bytes] | None, in_order: bool = False) -> bytes:
    """MsgPushNotify's body: the seq, and the messages in seq order when they reach exactly max_seq
    (otherwise the client could not use them, and syncs anyway). `in_order`: the caller knows `inline`
    is in seq order and ends at max_seq."""
    if inline and (in_order or len(inline) == 1):
        # the usual case: one message, this signal's own (its seq is max_seq), or a notify call's messages
        # for one device in seq order. Appended as they came (length-delimited fields 2) instead of
        # parsed and serialized again.
        head = pb.MsgPushNotify(max_seq_id=max_seq).SerializeToString()
        return head + b"".join(b"\x12" + varint(len(m)) + m for m in inline)
    notify = pb.MsgPushNotify(max_seq_id=max_seq)
    if inline:
        msgs = sorted((pb.MessageData.FromString(m) for m in inline), key=lambda m: m.seq_id)
        if msgs[-1].seq_id == max_seq:
            notify.msgs.extend(msgs)
    return notify.SerializeToString()


STRUCK_OUT = "too many bad or rate-limited frames"


class Wire(Protocol):
    """A socket that never makes its writer wait: a client that stops reading is its business."""

    def write(self, data: bytes) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def abort(self) -> None: ...


async def _no_send(data: bytes) -> None:
    raise RuntimeError("a connection on a Wire sends through it")


async def _no_close(code: int, reason: str) -> None:
    raise RuntimeError("a connection on a Wire closes through it")


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


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
        "_abort",
        "_close",
        "_inline",
        "_max_queued",
        "_queued",
        "_send_bytes",
        "_send_lock",
        "_send_timeout",
        "_signal_seq",
        "_signal_task",
        "_wire",
        "closed",
        "conn_id",
        "device_id",
        "limiter",
        "strikes",
        "sync_credits",
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
        *,
        abort: Abort | None = None,
        send_timeout: float = 10.0,
        max_queued: int = 64,
    ) -> None:
        self._send_bytes = send_bytes
        self._close = close
        self._abort = abort
        self._send_timeout = send_timeout
        self._max_queued = max_queued
        self._queued = 0
        self._send_lock: asyncio.Lock | None = None  # made on first use: most connections never need it
        self._wire: Wire | None = None
        self._signal_seq = 0
        self._signal_task: asyncio.Task[None] | None = None
        # messages of the signals not yet sent (None: one came without its message; the client syncs)
        self._inline: list[bytes] | None = []
        self.user_id = user_id
        self.device_id = device_id
        self.token_id = token_id
        self.conn_id = conn_id
        self.limiter = limiter
        # Bad or rate-limited frames spend a strike; strikes come back slowly, so an occasional error
        # never adds up to a close, while a flood or a broken client runs out at once.
        self.strikes = strikes
        # Syncs this connection may make without spending its rate limit: one per push signal or send
        # answered (the client syncs because of them), a few at most.
        self.sync_credits = 0
        self.closed = False

    @classmethod
    def on_wire(
        cls,
        wire: Wire,
        user_id: int,
        device_id: str,
        token_id: str,
        conn_id: str,
        limiter: TokenBucket,
        strikes: TokenBucket,
    ) -> Connection:
        """A connection that writes to `wire` at once (the gateway's WebSocket protocol)."""
        conn = cls(_no_send, _no_close, user_id, device_id, token_id, conn_id, limiter, strikes)
        conn._wire = wire
        return conn

    async def strike(self) -> None:
        """A bad or rate-limited frame spends a strike; a connection out of strikes is closed (1008)."""
        if not self.strikes.take():
            await self.close(CLOSE_POLICY, STRUCK_OUT)

    def strike_soon(self) -> None:
        """`strike` for callers that cannot wait: the close, if any, goes out in the background."""
        if not self.strikes.take():
            self.close_soon(CLOSE_POLICY, STRUCK_OUT)

    def grant_sync(self) -> None:
        self.sync_credits = min(self.sync_credits + 1, SYNC_CREDITS_MAX)

    def take_sync_credit(self) -> bool:
        if self.sync_credits > 0:
            self.sync_credits -= 1
            return True
        return False

    async def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self._wire is not None:
            self._wire.write(data)
            return
        try:
            async with asyncio.timeout(self._send_timeout), self._lock():
                if self.closed:
                    return
                await self._send_bytes(data)
        except TimeoutError:
            log.info("client stopped reading; connection aborted", extra={"user": self.user_id})
            metrics.WS_BAD_FRAMES.labels(code="SEND_TIMEOUT").inc()
            _DROPPED_SEND_TIMEOUT.inc()
            self.abort()
        except Exception:  # the peer went away; the receive loop notices and cleans up
            self.closed = True

    def send_soon(self, data: bytes) -> None:
        """Send without making the caller wait on this client (small, rare frames: read notices).
        A client with `max_queued` such frames still unsent is not reading: it is dropped."""
        if self.closed:
            return
        if self._wire is not None:
            self._wire.write(data)
            return
        if self._queued >= self._max_queued:
            _DROPPED_QUEUE_FULL.inc()
            self.abort()
            return
        self._queued += 1
        metrics.PUSH_QUEUED.inc()
        _spawn(self._send_queued(data))

    async def _send_queued(self, data: bytes) -> None:
        try:
            await self.send(data)
        finally:
            self._queued -= 1
            metrics.PUSH_QUEUED.dec()

    def _lock(self) -> asyncio.Lock:
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        return self._send_lock

    def abort(self) -> None:
        """Drop the TCP connection now, whatever is buffered for it (the receive loop then ends)."""
        self.closed = True
        if self._signal_task is not None:
            self._signal_task.cancel()
        abort = self._wire.abort if self._wire is not None else self._abort
        if abort is not None:
            with contextlib.suppress(Exception):
                abort()

    def signal(self, max_seq: int, message: bytes = b"") -> None:
        """Queue a MsgPushNotify; signals that pile up while one is being sent collapse into the highest.
        `message` (the new message as this user's MessageData) rides along while the pile is small; a
        signal without one, or too many, leaves only the seq (the client then syncs, as it always may)."""
        self.signal_many(max_seq, [message] if message else None)

    def signal_many(self, max_seq: int, messages: list[bytes] | None) -> None:
        """`signal` for several new messages at once (one notify call's, for this device): `messages` in
        seq order ending at max_seq, or None when one of them cannot ride (too large)."""
        if self.closed or max_seq <= self._signal_seq:
            return
        self._signal_seq = max_seq
        if messages is not None and len(messages) > INLINE_MAX_MESSAGES:
            messages = None
        if self._wire is not None and (self._signal_task is None or self._signal_task.done()):
            # a Wire never makes the writer wait: write now, no task (its own messages, if any, ride)
            self._wire.write(self._push_frame(max_seq, messages, in_order=True))
            return
        if self._inline is not None:
            if messages and len(self._inline) + len(messages) <= INLINE_MAX_MESSAGES:
                self._inline += messages
            else:
                self._inline = None
        if self._signal_task is None or self._signal_task.done():
            self._signal_task = asyncio.get_running_loop().create_task(self._flush_signals())

    async def _flush_signals(self) -> None:
        sent = 0
        while self._signal_seq > sent and not self.closed:
            sent = self._signal_seq
            inline, self._inline = self._inline, []
            await self.send(self._push_frame(sent, inline))

    def _push_frame(self, max_seq: int, inline: list[bytes] | None, in_order: bool = False) -> bytes:
        """A MsgPushNotify frame (counted); the sync it prompts is granted before it leaves."""
        metrics.PUSHES.inc()
        self.grant_sync()
        return encode(Cmd.CMD_MSG_PUSH_NOTIFY, push_notify(max_seq, inline, in_order))

    async def kick(self, reason: str) -> None:
        """KickNotify + close in the background: the caller (a newer login) never waits on this socket."""
        if self.closed:
            return
        metrics.WS_KICKS.inc()
        self._mark_closed()
        frame = encode(Cmd.CMD_KICK_NOTIFY, pb.KickNotify(reason=reason).SerializeToString())
        if self._wire is not None:
            self._wire.write(frame)
            self._wire.close(CLOSE_KICKED, "kicked")
            return
        _spawn(self._farewell(frame, CLOSE_KICKED, "kicked"))

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        if self._wire is not None:
            self.close_soon(code, reason)
            return
        self._mark_closed()
        await self._farewell(None, code, reason)

    def close_soon(self, code: int, reason: str) -> None:
        """Close without waiting on the client: at once on a Wire, else in the background."""
        if self.closed:
            return
        self._mark_closed()
        if self._wire is not None:
            self._wire.close(code, reason)
        else:
            _spawn(self._farewell(None, code, reason))

    def _mark_closed(self) -> None:
        self.closed = True
        if self._signal_task is not None:
            self._signal_task.cancel()

    async def _farewell(self, frame: bytes | None, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(FAREWELL_SECONDS), self._lock():
                if frame is not None:
                    await self._send_bytes(frame)
                await self._close(code, reason)
        except TimeoutError:
            self.abort()
        except Exception:
            log.debug("close failed", exc_info=True)
