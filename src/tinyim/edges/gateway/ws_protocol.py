"""The chat WebSocket `/ws` on a lean asyncio protocol: websockets' sans-I/O `ServerProtocol`.

uvicorn's HTTP protocol hands every upgrade of `/ws` over (tinyim.infra.listener.mount_websocket), so
HTTP stays on Starlette, on the same port, under the same listener limits. Per connection there is this
protocol object, the sans-I/O frame parser and the Connection: callbacks drive it, a task exists only
while something is awaited (the token or LoginReq check, a request being handled, the detach at the
end), and deadlines (login, heartbeat, close handshake) are a float each, checked by one sweeper per
process instead of a timer per connection. That is what keeps an idle connection to a few KiB (bench
w1) where the ASGI path held a task, its coroutine stack, a receive queue and a scope per connection.
The handshake runs on a throwaway `ServerProtocol`: its parser would keep the request's headers alive
for the connection's life; frames then go through a plain server-side `Protocol`.

Requests are pipelined (pipeline.AnswerQueue): up to `pipeline_depth` in flight, answered in order;
reading stops while the window is full. No compression. Writes never wait: the transport's buffer is
the send queue. A client that keeps it above the high-water mark for `send_timeout` (it stopped
reading), or gets more than `max_queued_sends` frames meanwhile, is aborted, as is one that does not
answer a close within CLOSE_HANDSHAKE_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

from tinyim.infra import metrics
from tinyim.infra.listener import release
from tinyim.modules.auth import TokenClaims
from tinyim.wire import Cmd

from .connection import CLOSE_IDLE, CLOSE_UNAUTHENTICATED, Connection
from .pipeline import AnswerQueue
from .ws import WebSocketGateway

log = logging.getLogger(__name__)
# websockets logs every connection's opening and closing at INFO: one line each per client is noise.
_PROTOCOL_LOG = logging.getLogger("tinyim.edges.gateway.websockets")
_PROTOCOL_LOG.setLevel(logging.WARNING)

CLOSE_HANDSHAKE_SECONDS = 2.0  # a client that does not answer our close frame in time is cut off
CLOSE_GOING_AWAY = 1012  # the server restarts (what uvicorn sends on shutdown)
CLOSE_INTERNAL = 1011
_background: set[asyncio.Task[None]] = set()

# where a connection is; CLOSED once the TCP connection is gone
CONNECTING, LOGIN, AUTHENTICATING, OPEN, CLOSED = range(5)
_TEXT = None  # a text message, in the backlog: refused when its turn comes
_NEVER = float("inf")


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _binary_frame_header(length: int) -> bytes:
    """RFC 6455 §5.2 for one unmasked, final, binary frame (the only kind the server sends): cheaper
    than the library's frame serializer, which copies the body twice."""
    if length < 126:
        return bytes((0x82, length))
    if length < 65536:
        return struct.pack("!BBH", 0x82, 126, length)
    return struct.pack("!BBQ", 0x82, 127, length)


# Requests that may run beside the earlier ones of their connection (they read nothing those could write).
_SIDE_BY_SIDE = frozenset({Cmd.CMD_MSG_SEND_REQ, Cmd.CMD_HEARTBEAT_REQ})


class ChatEndpoint:
    """What every chat socket of this process shares; `upgrade` is mounted on the listener."""

    __slots__ = ("_sweeper", "connections", "gateway", "loop", "sockets")

    def __init__(self, gateway: WebSocketGateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.get_running_loop()
        self.connections: set[Any] = set()  # uvicorn's open connections: it shuts them down on exit
        self.sockets: set[ChatSocket] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def upgrade(self, transport: asyncio.Transport, head: bytes, connections: set[Any]) -> None:
        self.connections = connections
        socket = ChatSocket(self, transport)
        transport.set_protocol(socket)
        connections.add(socket)
        self.sockets.add(socket)
        if self._sweeper is None:
            self._sweeper = self.loop.create_task(self._sweep())
        socket.start(head)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _sweep(self) -> None:
        """Every socket's deadline, a few times per the shortest timeout (at most once a second)."""
        limits = self.gateway.limits
        shortest = min(limits.heartbeat_timeout, limits.login_timeout, CLOSE_HANDSHAKE_SECONDS)
        interval = min(1.0, max(0.05, shortest / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            for socket in [s for s in self.sockets if s.deadline <= now]:
                try:
                    socket.expired(now)
                except Exception:
                    log.exception("deadline handling failed")


class ChatSocket(asyncio.Protocol):
    """One chat WebSocket; the `Wire` its Connection writes to."""

    __slots__ = (
        "_backlog",
        "_conn",
        "_device",
        "_endpoint",
        "_partial",
        "_queue",
        "_stalled",
        "_state",
        "_transport",
        "_unread",
        "_ws",
        "deadline",
    )

    def __init__(self, endpoint: ChatEndpoint, transport: asyncio.Transport) -> None:
        self._endpoint = endpoint
        self._transport = transport
        self._ws: Protocol = ServerProtocol(max_size=self._max_size(), logger=_PROTOCOL_LOG)  # handshake
        self._state = CONNECTING
        self._conn: Connection | None = None
        self._queue: AnswerQueue | None = None  # made with the first request
        self._backlog: list[bytes | None] | None = None  # messages read while none may start
        self._partial: list[Frame] | None = None  # a fragmented message so far
        self._stalled: asyncio.TimerHandle | None = None  # send deadline while the client is not reading
        self._unread = 0  # frames written since it stopped reading
        self._device: str | None = None
        # when the login, the heartbeat or our close frame's answer is due (loop time; the sweeper checks)
        self.deadline = _NEVER

    def _max_size(self) -> int:
        return self._endpoint.gateway.limits.max_frame_body + 9

    # -- the handshake ------------------------------------------------------------------------------

    def start(self, head: bytes) -> None:
        """The upgrade request, as the HTTP protocol read it: answer it or check its token first."""
        handshake = self._ws
        handshake.receive_data(head)
        events = handshake.events_received()
        request = events[0] if events and isinstance(events[0], Request) else None
        if request is None:  # not a valid request: websockets answered it
            self._flush()
            return
        query = dict(parse_qsl(urlsplit(request.path).query))
        token, self._device = query.get("token"), query.get("device_id")
        if token is None:  # the first frame must be a LoginReq
            if self._accept(request):
                self._state = LOGIN
                self.deadline = self._endpoint.loop.time() + self._endpoint.gateway.limits.login_timeout
            return
        self._transport.pause_reading()  # frames wait until the connection is attached
        _spawn(self._open_with_token(request, token))

    async def _open_with_token(self, request: Request, token: str) -> None:
        try:
            claims = await self._endpoint.gateway.verify(token, self._device)
        except Exception:  # the check itself failed (auth down, pool exhausted): not the token's fault
            log.warning("token check failed", exc_info=True)
            self._refuse(request, 503, "try again later")
            return
        if claims is None:  # refused before the handshake completes: nothing else happens
            self._refuse(request, 403, "invalid or revoked token")
        elif self._state != CLOSED and self._accept(request):
            await self._attach(claims)

    def _refuse(self, request: Request, status: int, why: str) -> None:
        handshake = self._ws
        if self._state == CLOSED or not isinstance(handshake, ServerProtocol):
            return
        handshake.send_response(handshake.reject(status, why + "\n"))
        self._flush()
        self._log_request(request, str(status))

    def _accept(self, request: Request) -> bool:
        handshake = self._ws
        assert isinstance(handshake, ServerProtocol)
        response = handshake.accept(request)
        handshake.send_response(response)
        self._flush()
        accepted = response.status_code == 101
        self._log_request(request, "[accepted]" if accepted else str(response.status_code))
        if accepted:  # frames from now on; nothing was read past the request (reading waits for us)
            self._ws = Protocol(Side.SERVER, max_size=self._max_size(), logger=_PROTOCOL_LOG)
        return accepted

    def _log_request(self, request: Request, outcome: str) -> None:
        if log.isEnabledFor(logging.INFO):  # the token in the URL is redacted by the log handler
            peer = self._transport.get_extra_info("peername")
            client = f"{peer[0]}:{peer[1]}" if peer else "-"
            log.info('%s - "WebSocket %s" %s', client, request.path, outcome)

    async def _login(self, data: bytes | None) -> None:
        """No token in the URL: the first message is a LoginReq."""
        try:
            answer, claims = await self._endpoint.gateway.login(data, self._device)
        except Exception:
            log.warning("login check failed", exc_info=True)
            self.close(CLOSE_INTERNAL, "internal error")
            return
        if self._state == CLOSED:
            return
        self.write(answer)
        if claims is None:
            self.close(CLOSE_UNAUTHENTICATED, "")
            return
        await self._attach(claims)

    async def _attach(self, claims: TokenClaims) -> None:
        """Make the connection THE one of its (user, device) on this gateway, then serve it."""
        gateway = self._endpoint.gateway
        self._state = AUTHENTICATING
        conn = self._conn = gateway.connection(self, claims)
        try:
            await gateway.hub.attach(conn)
        except Exception:
            log.warning("attach failed", exc_info=True)
            conn.close_soon(CLOSE_INTERNAL, "internal error")
        if self._state == CLOSED or conn.closed:  # gone or refused meanwhile: connection_lost skipped it
            conn.closed = True
            await gateway.hub.detach(conn)
            return
        self._state = OPEN
        self.deadline = self._endpoint.loop.time() + gateway.limits.heartbeat_timeout
        self._pump()

    # -- asyncio.Protocol -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        self._flush()

    def eof_received(self) -> bool | None:
        return None  # the client is done: close our side too

    def pause_writing(self) -> None:
        """The client stopped reading: it gets `send_timeout` to catch up, or is cut off."""
        if self._stalled is None:
            timeout = self._endpoint.gateway.limits.send_timeout
            self._stalled = self._endpoint.loop.call_later(timeout, self._stalled_out)

    def resume_writing(self) -> None:
        self._unread = 0
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def connection_lost(self, exc: Exception | None) -> None:
        attached = self._state == OPEN
        self._state = CLOSED
        self.deadline = _NEVER
        self.resume_writing()
        release(self._transport)
        self._endpoint.connections.discard(self)
        self._endpoint.sockets.discard(self)
        if self._queue is not None:
            self._queue.cancel()
        conn = self._conn
        if conn is not None:
            conn.closed = True
            if attached:  # else _attach is still running and detaches it itself
                _spawn(self._endpoint.gateway.hub.detach(conn))

    def shutdown(self) -> None:
        """uvicorn is shutting down: say so to the client (1012) and let it go."""
        if self._conn is not None:
            self._conn.close_soon(CLOSE_GOING_AWAY, "server shutting down")
        self.close(CLOSE_GOING_AWAY, "server shutting down")

    # -- the Wire a Connection writes to --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._ws.state is not State.OPEN:  # closing or closed: nothing more goes to this client
            return
        if self._stalled is not None:
            self._unread += 1
            if self._unread > self._endpoint.gateway.limits.max_queued_sends:
                self._stalled_out()
                return
        header = _binary_frame_header(len(data))
        if len(data) < 4096:
            self._transport.write(header + data)
        else:  # no copy of a big body
            self._transport.write(header)
            self._transport.write(data)

    def close(self, code: int, reason: str) -> None:
        """Send a close frame; the client has CLOSE_HANDSHAKE_SECONDS to answer it."""
        if self._ws.state is not State.OPEN:
            if self._ws.state is State.CONNECTING:
                self.abort()
            return
        self._ws.send_close(code, reason)
        self._flush()
        self.deadline = self._endpoint.loop.time() + CLOSE_HANDSHAKE_SECONDS

    def abort(self) -> None:
        self._transport.abort()

    # -- messages -----------------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        """Data frames make messages; websockets answers pings and closes itself."""
        opcode = frame.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
            if frame.fin:
                self._deliver(bytes(frame.data) if opcode is Opcode.BINARY else _TEXT)  # no copy: it is bytes
            else:
                self._partial = [frame]
        elif opcode is Opcode.CONT and self._partial is not None:
            self._partial.append(frame)
            if frame.fin:
                parts, self._partial = self._partial, None
                binary = parts[0].opcode is Opcode.BINARY
                self._deliver(b"".join(p.data for p in parts) if binary else _TEXT)

    def _deliver(self, data: bytes | None) -> None:
        if self._state == LOGIN:  # the first message: the login; the next ones wait for its outcome
            self._state = AUTHENTICATING
            self.deadline = _NEVER
            self._transport.pause_reading()
            _spawn(self._login(data))
        elif self._state == OPEN and self._backlog is None and not self._full():
            self._handle(data)
        elif self._state != CLOSED:
            if self._backlog is None:
                self._backlog = []
            self._backlog.append(data)
            self._transport.pause_reading()  # backpressure: nothing more until the window has room

    def _handle(self, data: bytes | None) -> None:
        conn = self._conn
        assert conn is not None
        if conn.closed:  # kicked or closing: later frames are not served
            return
        gateway = self._endpoint.gateway
        self.deadline = self._endpoint.loop.time() + gateway.limits.heartbeat_timeout
        admitted = gateway.admit(conn, data)
        queue = self._queue
        if queue is None:
            queue = self._queue = AnswerQueue(gateway.limits.pipeline_depth, self.write, self._pump)
        if isinstance(admitted, bytes):
            if not conn.closed:  # out of strikes: only the close frame goes out
                queue.answer(admitted)
        else:
            # sends (and heartbeats) run side by side; anything else waits for the requests before it
            queue.start(gateway.handle(conn, admitted), after_earlier=admitted.cmd not in _SIDE_BY_SIDE)

    def _full(self) -> bool:
        return self._queue is not None and self._queue.full

    def _pump(self) -> None:
        """Start what waited for room in the window, then read again."""
        if self._state != OPEN:
            return
        backlog = self._backlog
        while backlog and not self._full():
            self._handle(backlog.pop(0))
        if not backlog:
            self._backlog = None
            self._transport.resume_reading()

    # -- deadlines ----------------------------------------------------------------------------------

    def expired(self, now: float) -> None:
        """The deadline passed (the sweeper calls this)."""
        self.deadline = _NEVER
        if self._ws.state is not State.OPEN:  # our close frame went unanswered
            self.abort()
        elif self._state == LOGIN:
            self.close(CLOSE_UNAUTHENTICATED, "no LoginReq in time")
        elif self._state == OPEN and self._conn is not None:
            if self._queue is not None and len(self._queue) > 0:  # still answering it: not silent
                self.deadline = now + self._endpoint.gateway.limits.heartbeat_timeout
            else:
                self._conn.close_soon(CLOSE_IDLE, "no heartbeat")

    def _stalled_out(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        log.info("client stopped reading; connection aborted", extra={"user": self._user()})
        metrics.WS_BAD_FRAMES.labels(code="SEND_TIMEOUT").inc()
        if self._conn is not None:
            self._conn.abort()
        else:
            self.abort()

    def _user(self) -> int:
        return self._conn.user_id if self._conn is not None else 0

    def _flush(self) -> None:
        for data in self._ws.data_to_send():
            if data:
                self._transport.write(data)
            else:  # websockets: the server ends the TCP connection now
                self._transport.close()
