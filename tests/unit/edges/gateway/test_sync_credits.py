"""The gateway's rate limit does not count syncs it prompted itself (a push signal, a send's answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.presence.test_presence_and_hub import FakeSocket
from tinyim.edges.gateway.connection import Connection, TokenBucket
from tinyim.edges.gateway.ws import GatewayLimits, WebSocketGateway
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode, decode, encode
from tinyim.wire.codec import Frame


class EchoRouter:
    async def handle(self, conn: Connection, frame: Frame) -> bytes:
        return encode(Cmd.CMD_HEARTBEAT_RESP, b"")


def _gateway() -> WebSocketGateway:
    limits = GatewayLimits(60, 5, 65536, rate_per_second=0.001, rate_burst=2, max_bad_frames=100)
    return WebSocketGateway(auth=Any, hub=Any, router=EchoRouter(), limits=limits)  # type: ignore[arg-type]


def _rate_limited(answer: bytes) -> bool:
    frame = decode(answer)
    return frame.cmd == Cmd.CMD_ERROR_RESP and int(pb.ErrorResp.FromString(frame.body).code) == int(
        ErrorCode.ERR_RATE_LIMITED
    )


async def test_prompted_syncs_pass_when_the_limit_is_spent() -> None:
    gateway, sock = _gateway(), FakeSocket()
    conn = Connection(
        sock.send, sock.close, 1, "PC", "t", "c", TokenBucket(0.001, 2), TokenBucket(0.001, 100)
    )
    send = encode(Cmd.CMD_MSG_SEND_REQ, pb.MsgSendReq(receiver_id=2, content="x").SerializeToString())
    sync = encode(Cmd.CMD_MSG_SYNC_REQ, pb.MsgSyncReq().SerializeToString())
    assert not _rate_limited(await gateway._answer(conn, send))
    assert not _rate_limited(await gateway._answer(conn, send))
    # the limit is spent; each answered send earned one sync
    assert not _rate_limited(await gateway._answer(conn, sync))
    assert not _rate_limited(await gateway._answer(conn, sync))
    assert _rate_limited(await gateway._answer(conn, sync))  # a third, unprompted, is counted
    conn.signal(5)  # a push signal earns one more
    await asyncio.sleep(0.01)
    assert not _rate_limited(await gateway._answer(conn, sync))
    assert _rate_limited(await gateway._answer(conn, send))  # sends are always counted
