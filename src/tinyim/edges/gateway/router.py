"""Command router: a frame's cmd -> a handler that translates protobuf <-> module calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from google.protobuf.message import Message

from tinyim.infra import metrics
from tinyim.kernel import Caller, ImError
from tinyim.modules.timeline import SendRequest, StoredMessage, TimelineApi
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import REQUEST_COMMANDS, Cmd, ErrorCode, Frame, FrameError, encode, parse_body

from ..errors import wire_code
from .connection import Connection
from .hub import GatewayHub

log = logging.getLogger(__name__)

Handler = Callable[[Connection, Message], Awaitable[tuple[int, Message]]]


def error_frame(code: ErrorCode, message: str, cmd: int) -> bytes:
    resp = pb.ErrorResp(
        code=cast(Any, int(code)), message=message, cmd=cmd
    )  # proto enums are ints on the wire
    return encode(Cmd.CMD_ERROR_RESP, resp.SerializeToString())


def message_data(m: StoredMessage) -> pb.MessageData:
    return pb.MessageData(
        msg_id=m.msg_id,
        seq_id=m.seq_id,
        sender_id=m.sender_id,
        receiver_id=m.receiver_id,
        group_id=m.group_id,
        type=cast(Any, m.msg_type),
        content=m.content,
        create_time=m.created_ms,
        client_msg_id=m.client_msg_id,
    )


class CommandRouter:
    def __init__(self, timeline: TimelineApi, hub: GatewayHub) -> None:
        self._timeline = timeline
        self._hub = hub
        self._handlers: dict[int, tuple[Handler, int]] = {
            Cmd.CMD_HEARTBEAT_REQ: (self._heartbeat, Cmd.CMD_HEARTBEAT_RESP),
            Cmd.CMD_MSG_SEND_REQ: (self._send, Cmd.CMD_MSG_SEND_RESP),
            Cmd.CMD_MSG_SYNC_REQ: (self._sync, Cmd.CMD_MSG_SYNC_RESP),
        }

    async def handle(self, conn: Connection, frame: Frame) -> bytes:
        """Answer one request frame: its response, or an error frame. Never raises."""
        cmd = frame.cmd
        metrics.WS_FRAMES.labels(cmd=f"0x{cmd:04X}").inc()
        if cmd not in REQUEST_COMMANDS:
            return error_frame(ErrorCode.ERR_NOT_A_REQUEST, f"0x{cmd:04X} is sent by the server only", cmd)
        entry = self._handlers.get(cmd)
        if entry is None:
            if cmd == Cmd.CMD_LOGIN_REQ:
                return error_frame(
                    ErrorCode.ERR_INVALID_ARGUMENT, "this connection is authenticated already", cmd
                )
            return error_frame(
                ErrorCode.ERR_UNIMPLEMENTED, f"{Cmd(cmd).name} is not served by this version", cmd
            )
        handler, resp_cmd = entry
        started = time.perf_counter()
        try:
            request = parse_body(cmd, frame.body)
            result_cmd, response = await handler(conn, request)
            return encode(result_cmd, response.SerializeToString())
        except FrameError as exc:
            metrics.WS_BAD_FRAMES.labels(code=exc.code.name).inc()
            return error_frame(exc.code, exc.message, cmd)
        except ImError as exc:
            return error_frame(wire_code(exc.code), exc.message, cmd)
        except Exception:
            log.exception("request failed", extra={"cmd": f"0x{cmd:04X}", "user": conn.user_id})
            return error_frame(ErrorCode.ERR_INTERNAL, "internal error; the request may be retried", cmd)
        finally:
            metrics.REQUEST_SECONDS.labels(cmd=f"0x{resp_cmd:04X}").observe(time.perf_counter() - started)

    async def _heartbeat(self, conn: Connection, _req: Message) -> tuple[int, Message]:
        await self._hub.heartbeat(conn)
        return Cmd.CMD_HEARTBEAT_RESP, pb.HeartbeatResp(server_time=int(time.time() * 1000))

    async def _send(self, conn: Connection, req: Message) -> tuple[int, Message]:
        assert isinstance(req, pb.MsgSendReq)
        result = await self._timeline.send(
            Caller(conn.user_id, conn.device_id),
            SendRequest(req.receiver_id, req.group_id, int(req.type), req.content, req.client_msg_id),
        )
        metrics.MESSAGES_SENT.inc(0 if result.duplicate else 1)
        return Cmd.CMD_MSG_SEND_RESP, pb.MsgSendResp(
            msg_id=result.msg_id,
            seq_id=result.seq_id,
            send_time=result.send_time_ms,
            duplicate=result.duplicate,
        )

    async def _sync(self, conn: Connection, req: Message) -> tuple[int, Message]:
        assert isinstance(req, pb.MsgSyncReq)
        # req.user_id is ignored on purpose: a session reads its own timeline only.
        page = await self._timeline.sync(Caller(conn.user_id, conn.device_id), req.local_max_seq, req.limit)
        return Cmd.CMD_MSG_SYNC_RESP, pb.MsgSyncResp(
            max_seq=page.max_seq, msgs=[message_data(m) for m in page.messages], has_more=page.has_more
        )
