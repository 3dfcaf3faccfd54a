"""The SDK's transport and session: HTTP login and token renewal, the WebSocket, frames, pipelined
requests, heartbeats, and reconnecting (re-dispatch, reconnect; the client resyncs when told).

A `Session` knows nothing of timelines or conversations: pushes go to its `SessionEvents` (the `Client`
facade in `sdk.py`), which also hears of every login, reconnect and heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any, Protocol

import httpx
from google.protobuf.message import Message as ProtoMessage
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import PUSH_COMMANDS, Cmd, FrameError, decode, encode, parse_body

from .errors import ConnectionLost, Kicked, ServerError
from .options import ClientOptions

log = logging.getLogger(__name__)
# A sync page holds up to 200 messages of up to 16 KiB each (plus framing): answers may be this large.
MAX_SERVER_FRAME = 32 << 20
LOGIN_TIMEOUT = 60.0  # logins queue for the server's password hasher under a burst


async def register(base_url: str, username: str, password: str, nickname: str) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        resp = await http.post(
            "/api/register", json={"username": username, "password": password, "nickname": nickname}
        )
    raise_for(resp)
    return int(resp.json()["user_id"])


def raise_for(resp: httpx.Response) -> None:
    if resp.status_code >= 400:
        try:
            body = resp.json()
            raise ServerError(body.get("error", resp.status_code), body.get("message", resp.text))
        except ValueError:
            raise ServerError(resp.status_code, resp.text) from None


class SessionEvents(Protocol):
    """What a session tells the client built on it."""

    def on_session(self) -> None:
        """Logged in or renewed: user_id is known."""

    def on_frame(self, cmd: int, body: ProtoMessage) -> None:
        """A push from the server (never an answer), other than a kick."""

    def on_reconnected(self) -> None:
        """A new connection after a drop: what was pushed meanwhile is lost, sync."""

    def on_heartbeat(self) -> None:
        """A heartbeat was answered."""


class _Pacer:
    """Client-side token bucket that keeps this client below the server's per-connection rate limit
    (the server says it at login; until then a conservative default)."""

    SHARE = 0.8  # of the server's rate; half of its burst

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, burst
        self._tokens, self._last = burst, time.monotonic()

    def configure(self, server_rate: float, server_burst: float) -> None:
        if server_rate > 0 and server_burst >= 1:
            self._rate = server_rate * self.SHARE
            self._burst = max(1.0, server_burst / 2)
            self._tokens = min(self._tokens, self._burst)

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)


class Session:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        device_id: str,
        options: ClientOptions,
        events: SessionEvents,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.device_id = device_id
        self._password = password
        self._events = events
        self._reconnect = options.reconnect
        self._heartbeat_interval = options.heartbeat_interval
        self._timeout = options.request_timeout
        self._backoff = (options.backoff_initial, options.backoff_max)

        self.user_id = 0
        self.token = ""
        self.token_expires_at = 0
        # Renews the token after it expires (rotated on every use); the password is needed only once
        # this is gone (expired or revoked).
        self.refresh_token = ""
        self.ws_url = ""
        self.kicked = asyncio.Event()
        self.kick_reason = ""
        self.connected = asyncio.Event()
        self.connects = 0  # how many times a WebSocket was established (reconnects = connects - 1)
        self.closing = False

        self._ws: ClientConnection | None = None
        self._pending: deque[asyncio.Future[tuple[int, ProtoMessage]]] = deque()
        self._send_lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._pacer = _Pacer(40.0, 100.0)

    @property
    def backoff(self) -> tuple[float, float]:
        """(first, longest) delay between retries, in seconds."""
        return self._backoff

    # ---------- login (HTTP) ----------
    async def login(self) -> None:
        """Log in with the password (HTTP). Throttled (429) attempts wait the server's Retry-After."""
        body = {"username": self.username, "password": self._password, "device_id": self.device_id}
        self._take_session(await self._post_session("/api/login", body))

    async def _post_session(self, path: str, body: dict[str, str]) -> dict[str, Any]:
        # Password checks queue on the server under a burst of logins: give them longer than a request.
        deadline = time.monotonic() + max(self._timeout, LOGIN_TIMEOUT)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=max(self._timeout, LOGIN_TIMEOUT)
        ) as http:
            unavailable = 0
            while True:
                resp = await http.post(path, json=body)
                if resp.status_code == 429:  # throttled: the server says when
                    wait = float(resp.headers.get("retry-after", "0") or 0)
                elif resp.status_code == 503:  # the auth role is busy or restarting: back off and retry
                    unavailable += 1
                    wait = min(self._backoff[1], self._backoff[0] * 2**unavailable) * (0.5 + random.random())
                else:
                    wait = 0
                if not wait or time.monotonic() + wait > deadline:
                    break
                await asyncio.sleep(wait)
        raise_for(resp)
        return dict(resp.json())

    async def _renew(self) -> None:
        """A new token: from the refresh token if there is one (no password hash on the server), else
        (or if it was refused) with the password."""
        if self.refresh_token:
            try:
                self._take_session(
                    await self._post_session("/api/refresh", {"refresh_token": self.refresh_token})
                )
                return
            except ServerError as exc:
                if exc.code != "unauthenticated":
                    raise
                self.refresh_token = ""
        if not self._password:
            self.kick_reason = "session expired: log in again"
            self.kicked.set()
            raise Kicked(self.kick_reason)
        await self.login()

    def _take_session(self, body: dict[str, Any]) -> None:
        self.user_id = int(body["user_id"])
        self.token = body["token"]
        self.token_expires_at = int(body["expires_at"])
        self.refresh_token = str(body.get("refresh_token", ""))
        self.ws_url = body["gateway"]["ws_url"]
        limits = body.get("limits") or {}
        self._pacer.configure(float(limits.get("rate_per_second", 0)), float(limits.get("rate_burst", 0)))
        self._events.on_session()

    async def logout(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout) as http:
            resp = await http.post("/api/logout", headers={"Authorization": f"Bearer {self.token}"})
        raise_for(resp)

    # ---------- the connection ----------
    async def open(self) -> None:
        """Log in unless a token is held, connect; afterwards a background task keeps the connection."""
        if not self.token:
            await self.login()
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise())

    async def close(self) -> None:
        self.closing = True
        for task in (self._supervisor, self._beater):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._ws is not None:
            await self._ws.close()
        self._fail_pending(ConnectionLost("client closed"))

    async def drop_connection(self) -> None:
        """Close the WebSocket as a network failure would; the session reconnects by itself."""
        if self._ws is not None:
            await self._ws.close()

    @property
    def connection_state(self) -> str:
        """One of connected, reconnecting, kicked (logged in elsewhere), closed, offline (not started)."""
        if self.kicked.is_set():
            return "kicked"
        if self.closing:
            return "closed"
        if self.connected.is_set():
            return "connected"
        return "reconnecting" if self.connects else "offline"

    async def request(self, cmd: int, body: ProtoMessage) -> ProtoMessage:
        """Send one request frame and wait for its answer (responses come back in request order)."""
        if self.kicked.is_set():
            raise Kicked(self.kick_reason)
        ws = self._ws
        if ws is None or not self.connected.is_set():
            raise ConnectionLost("not connected")
        await self._pacer.acquire()
        if ws is not self._ws or not self.connected.is_set():
            raise ConnectionLost("connection lost")
        future: asyncio.Future[tuple[int, ProtoMessage]] = asyncio.get_running_loop().create_future()
        async with self._send_lock:
            self._pending.append(future)
            try:
                await ws.send(encode(cmd, body.SerializeToString()))
            except WebSocketException as exc:
                # The socket is gone even if the reader has not noticed yet: drop it now, so the
                # supervisor reconnects and callers wait for that instead of retrying on it.
                with contextlib.suppress(ValueError):
                    self._pending.remove(future)  # never sent: no answer will come
                self._drop(ws)
                raise ConnectionLost(str(exc)) from None
        resp_cmd, resp = await asyncio.wait_for(future, self._timeout)
        if resp_cmd == Cmd.CMD_ERROR_RESP:
            assert isinstance(resp, pb.ErrorResp)
            raise ServerError(int(resp.code), resp.message, resp.cmd)
        return resp

    async def heartbeat(self) -> int:
        resp = await self.request(Cmd.CMD_HEARTBEAT_REQ, pb.HeartbeatReq())
        assert isinstance(resp, pb.HeartbeatResp)
        return resp.server_time

    async def wait_connected(self, deadline: float) -> None:
        """Until connected (Kicked if the session ends, TimeoutError at `deadline`, monotonic)."""
        remaining = max(0.0, deadline - time.monotonic())
        async with asyncio.timeout(remaining):
            await asyncio.sleep(0)  # always yield: the reader and the supervisor must get to run
            while not self.connected.is_set():
                if self.kicked.is_set():
                    raise Kicked(self.kick_reason)
                await asyncio.sleep(0.05)

    async def _connect(self) -> None:
        url = f"{self.ws_url}?token={self.token}&device_id={self.device_id}"
        ws = await connect(url, compression=None, max_size=MAX_SERVER_FRAME, open_timeout=self._timeout)
        self._ws = ws
        self.connects += 1
        self.connected.set()
        self._reader = asyncio.create_task(self._read(ws))
        self._beater = asyncio.create_task(self._heartbeats(ws))

    async def _supervise(self) -> None:
        """Keep a connection: after a drop, back off with jitter, re-dispatch, reconnect and resync."""
        delay = self._backoff[0]
        while not self.closing:
            assert self._reader is not None and self._beater is not None
            await self._reader
            self._beater.cancel()
            self.connected.clear()
            self._fail_pending(
                Kicked(self.kick_reason) if self.kicked.is_set() else ConnectionLost("connection lost")
            )
            if self.kicked.is_set() or not self._reconnect or self.closing:
                return
            while not self.closing:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._backoff[1])
                try:
                    await self._redispatch()
                    await self._connect()
                    delay = self._backoff[0]
                    self._events.on_reconnected()
                    break
                except InvalidStatus as exc:
                    if exc.response.status_code >= 500:  # the gateway could not check it: try again
                        log.debug("reconnect refused for now: %s", exc)
                    elif time.time() < self.token_expires_at - 30:
                        # A live token refused: revoked by a newer login of this device type. Do not
                        # log in again (that would kick the newer session in turn).
                        self.kick_reason = "session revoked"
                        self.kicked.set()
                        return
                    else:  # expired: renewed with the refresh token (or the password) next time
                        self.token = ""
                except Kicked:
                    return
                except (OSError, WebSocketException, TimeoutError, httpx.HTTPError, ServerError) as exc:
                    log.debug("reconnect failed: %s", exc)

    async def _redispatch(self) -> None:
        if not self.token or time.time() >= self.token_expires_at - 30:
            await self._renew()
            return
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout) as http:
            resp = await http.get("/api/allocate_gateway", headers={"Authorization": f"Bearer {self.token}"})
        raise_for(resp)
        self.ws_url = resp.json()["ws_url"]

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                if isinstance(data, str):
                    continue
                try:
                    frame = decode(data, MAX_SERVER_FRAME)
                    body = parse_body(frame.cmd, frame.body)
                except FrameError as exc:
                    log.warning("bad frame from server: %s", exc.message)
                    continue
                if frame.cmd == Cmd.CMD_KICK_NOTIFY:
                    assert isinstance(body, pb.KickNotify)
                    self.kick_reason = body.reason
                    self.kicked.set()
                elif frame.cmd in PUSH_COMMANDS:  # never an answer: sync signals, read marks, status…
                    self._events.on_frame(frame.cmd, body)
                elif self._pending:
                    future = self._pending.popleft()
                    if not future.done():
                        future.set_result((frame.cmd, body))
        except WebSocketException:
            pass

    async def _heartbeats(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self._heartbeat_interval)
                await self.heartbeat()
                self._events.on_heartbeat()

    def _drop(self, ws: ClientConnection) -> None:
        """Give up on `ws` at once: no more requests on it; its reader ends and the supervisor takes over."""
        if ws is self._ws:
            self.connected.clear()
        with contextlib.suppress(Exception):
            ws.transport.abort()

    def _fail_pending(self, exc: Exception) -> None:
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(exc)
