"""The chat gateway's request path: authenticate a connection (`?token=…` in the URL, or a LoginReq as
its first frame), admit each frame (decode, rate limit, strikes) and route it.

The socket side (`/ws` on a lean asyncio protocol: handshake, timers, pipelining) is ws_protocol.py.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from tinyim.infra import metrics
from tinyim.kernel import ImError
from tinyim.modules.auth import AuthApi, TokenClaims
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode, Frame, FrameError, decode, encode, parse_body

from .connection import Connection, TokenBucket, Wire
from .hub import GatewayHub
from .router import CommandRouter, error_frame

log = logging.getLogger(__name__)
STRIKE_REFILL_PER_SECOND = 0.2  # one bad frame forgiven every 5 s


@dataclass(frozen=True)
class GatewayLimits:
    heartbeat_timeout: float
    login_timeout: float
    max_frame_body: int
    rate_per_second: float
    rate_burst: int
    max_bad_frames: int
    send_timeout: float = 10.0  # a send to a client that stopped reading
    max_queued_sends: int = 64
    pipeline_depth: int = 8  # requests of one connection in flight at once (answered in order)


class WebSocketGateway:
    def __init__(self, auth: AuthApi, hub: GatewayHub, router: CommandRouter, limits: GatewayLimits) -> None:
        self._auth = auth
        self.hub = hub
        self._router = router
        self.limits = limits

    async def verify(self, token: str, device: str | None) -> TokenClaims | None:
        """The claims of a live token, if it is one (and names `device`, when given)."""
        try:
            claims = await self._auth.verify_token(token)
        except ImError:
            return None
        if device is not None and device != claims.device_id:
            return None
        return claims

    async def login(self, data: bytes | None, device: str | None) -> tuple[bytes, TokenClaims | None]:
        """The first frame of a connection without a token in its URL must be a LoginReq: the answer
        to it (LoginResp or ErrorResp), and the claims when the login succeeded (else: close, 4401)."""
        try:
            if data is None:
                raise FrameError(ErrorCode.ERR_UNAUTHENTICATED, "the first frame must be a binary LoginReq")
            frame = decode(data, self.limits.max_frame_body)
            if frame.cmd != Cmd.CMD_LOGIN_REQ:
                raise FrameError(
                    ErrorCode.ERR_UNAUTHENTICATED, "the first frame must be a LoginReq", frame.cmd
                )
            req = parse_body(frame.cmd, frame.body)
            assert isinstance(req, pb.LoginReq)
        except FrameError as exc:
            return error_frame(exc.code, exc.message, exc.cmd), None
        claims = await self.verify(req.token, req.device_id or device)
        now = int(time.time() * 1000)
        if claims is None or (req.user_id and req.user_id != claims.user_id):
            refused = pb.LoginResp(success=False, err_msg="invalid or revoked token", server_time=now)
            return encode(Cmd.CMD_LOGIN_RESP, refused.SerializeToString()), None
        resp = pb.LoginResp(success=True, server_time=now, session_id=claims.token_id, user_id=claims.user_id)
        return encode(Cmd.CMD_LOGIN_RESP, resp.SerializeToString()), claims

    def connection(self, wire: Wire, claims: TokenClaims) -> Connection:
        limits = self.limits
        return Connection.on_wire(
            wire,
            claims.user_id,
            claims.device_id,
            claims.token_id,
            secrets.token_hex(8),
            TokenBucket(limits.rate_per_second, limits.rate_burst),
            TokenBucket(STRIKE_REFILL_PER_SECOND, limits.max_bad_frames),
        )

    def admit(self, conn: Connection, data: bytes | None) -> Frame | bytes:
        """The checks that need no I/O, in arrival order: the frame to handle, or its error answer
        (a strike spent; a connection out of strikes is being closed)."""
        if data is None:
            conn.strike_soon()
            return error_frame(ErrorCode.ERR_BAD_FRAME, "text frames are not accepted; send binary frames", 0)
        try:
            frame = decode(data, self.limits.max_frame_body)
        except FrameError as exc:
            conn.strike_soon()
            metrics.WS_BAD_FRAMES.labels(code=exc.code.name).inc()
            return error_frame(exc.code, exc.message, exc.cmd)
        # A sync the server itself prompted (a push signal, a send's answer) does not count like a send.
        prompted = frame.cmd == Cmd.CMD_MSG_SYNC_REQ and conn.take_sync_credit()
        if not prompted and not conn.limiter.take():
            conn.strike_soon()
            metrics.WS_BAD_FRAMES.labels(code="ERR_RATE_LIMITED").inc()
            return error_frame(ErrorCode.ERR_RATE_LIMITED, "too many requests; slow down", frame.cmd)
        return frame

    async def handle(self, conn: Connection, frame: Frame) -> bytes:
        """The answer to an admitted frame (never raises)."""
        answer = await self._router.handle(conn, frame)
        if frame.cmd == Cmd.CMD_MSG_SEND_REQ:
            conn.grant_sync()  # the sender syncs to cover its own message
        return answer

    async def _answer(self, conn: Connection, data: bytes | None) -> bytes:
        """One frame's whole way: admitted, then handled."""
        admitted = self.admit(conn, data)
        return admitted if isinstance(admitted, bytes) else await self.handle(conn, admitted)
