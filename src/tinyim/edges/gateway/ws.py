"""The WebSocket endpoint `/ws?token=…&device_id=…` (or a LoginReq as the first frame)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket

from tinyim.infra import metrics
from tinyim.kernel import ImError
from tinyim.modules.auth import AuthApi, TokenClaims
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode, FrameError, decode, encode, parse_body

from .connection import (
    CLOSE_IDLE,
    CLOSE_UNAUTHENTICATED,
    Connection,
    TokenBucket,
)
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


def _transport_abort(websocket: WebSocket) -> Callable[[], None] | None:
    """The listener's hook that drops the TCP connection at once (see tinyim.infra.listener)."""
    transport = websocket.scope.get("extensions", {}).get("tinyim.transport") or {}
    abort = transport.get("abort")
    return abort if callable(abort) else None


class WebSocketGateway:
    def __init__(self, auth: AuthApi, hub: GatewayHub, router: CommandRouter, limits: GatewayLimits) -> None:
        self._auth = auth
        self._hub = hub
        self._router = router
        self._limits = limits

    async def endpoint(self, websocket: WebSocket) -> None:
        token = websocket.query_params.get("token")
        device = websocket.query_params.get("device_id")
        if token is not None:
            claims = await self._verify(token, device)
            if claims is None:
                await websocket.close(code=CLOSE_UNAUTHENTICATED)  # before accept: the handshake is refused
                return
            await websocket.accept()
        else:
            await websocket.accept()
            claims = await self._login_frame(websocket, device)
            if claims is None:
                return
        await self._serve(websocket, claims)

    async def _verify(self, token: str, device: str | None) -> TokenClaims | None:
        try:
            claims = await self._auth.verify_token(token)
        except ImError:
            return None
        if device is not None and device != claims.device_id:
            return None
        return claims

    async def _login_frame(self, websocket: WebSocket, device: str | None) -> TokenClaims | None:
        """No token in the URL: the first frame must be a LoginReq, within login_timeout."""
        try:
            message = await asyncio.wait_for(websocket.receive(), self._limits.login_timeout)
            data = message.get("bytes")
            if data is None:
                raise FrameError(ErrorCode.ERR_UNAUTHENTICATED, "the first frame must be a binary LoginReq")
            frame = decode(data, self._limits.max_frame_body)
            if frame.cmd != Cmd.CMD_LOGIN_REQ:
                raise FrameError(
                    ErrorCode.ERR_UNAUTHENTICATED, "the first frame must be a LoginReq", frame.cmd
                )
            req = parse_body(frame.cmd, frame.body)
            assert isinstance(req, pb.LoginReq)
            claims = await self._verify(req.token, req.device_id or device)
            if claims is None or (req.user_id and req.user_id != claims.user_id):
                await self._refuse(websocket, "invalid or revoked token")
                return None
        except TimeoutError:
            await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="no LoginReq in time")
            return None
        except FrameError as exc:
            await websocket.send_bytes(error_frame(exc.code, exc.message, exc.cmd))
            await websocket.close(code=CLOSE_UNAUTHENTICATED)
            return None
        except Exception:  # the client vanished mid-handshake
            return None
        resp = pb.LoginResp(
            success=True,
            server_time=int(time.time() * 1000),
            session_id=claims.token_id,
            user_id=claims.user_id,
        )
        await websocket.send_bytes(encode(Cmd.CMD_LOGIN_RESP, resp.SerializeToString()))
        return claims

    async def _refuse(self, websocket: WebSocket, why: str) -> None:
        resp = pb.LoginResp(success=False, err_msg=why, server_time=int(time.time() * 1000))
        await websocket.send_bytes(encode(Cmd.CMD_LOGIN_RESP, resp.SerializeToString()))
        await websocket.close(code=CLOSE_UNAUTHENTICATED)

    async def _serve(self, websocket: WebSocket, claims: TokenClaims) -> None:
        limits = self._limits
        conn = Connection(
            websocket.send_bytes,
            lambda code, reason: websocket.close(code=code, reason=reason),
            claims.user_id,
            claims.device_id,
            claims.token_id,
            secrets.token_hex(8),
            TokenBucket(limits.rate_per_second, limits.rate_burst),
            TokenBucket(STRIKE_REFILL_PER_SECOND, limits.max_bad_frames),
            abort=_transport_abort(websocket),
            send_timeout=limits.send_timeout,
            max_queued=limits.max_queued_sends,
        )
        await self._hub.attach(conn)
        try:
            while not conn.closed:
                try:
                    message = await asyncio.wait_for(websocket.receive(), limits.heartbeat_timeout)
                except TimeoutError:
                    await conn.close(CLOSE_IDLE, "no heartbeat")
                    break
                if message["type"] == "websocket.disconnect":
                    conn.closed = True
                    break
                await conn.send(await self._answer(conn, message.get("bytes")))
        except Exception:
            log.debug("connection ended", exc_info=True)
        finally:
            conn.closed = True
            await self._hub.detach(conn)

    async def _strike(self, conn: Connection) -> None:
        await conn.strike()

    async def _answer(self, conn: Connection, data: bytes | None) -> bytes:
        if data is None:
            await self._strike(conn)
            return error_frame(ErrorCode.ERR_BAD_FRAME, "text frames are not accepted; send binary frames", 0)
        try:
            frame = decode(data, self._limits.max_frame_body)
        except FrameError as exc:
            await self._strike(conn)
            metrics.WS_BAD_FRAMES.labels(code=exc.code.name).inc()
            return error_frame(exc.code, exc.message, exc.cmd)
        # A sync the server itself prompted (a push signal, a send's answer) does not count like a send.
        prompted = frame.cmd == Cmd.CMD_MSG_SYNC_REQ and conn.take_sync_credit()
        if not prompted and not conn.limiter.take():
            await self._strike(conn)
            metrics.WS_BAD_FRAMES.labels(code="ERR_RATE_LIMITED").inc()
            return error_frame(ErrorCode.ERR_RATE_LIMITED, "too many requests; slow down", frame.cmd)
        answer = await self._router.handle(conn, frame)
        if frame.cmd == Cmd.CMD_MSG_SEND_REQ:
            conn.grant_sync()  # the sender syncs to cover its own message
        return answer
