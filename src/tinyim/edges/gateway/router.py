"""Command router: a frame's cmd -> its handler; every outcome becomes exactly one response frame."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from tinyim.infra import metrics, tracing
from tinyim.infra.logging import RateLimitedLog
from tinyim.kernel import ImError
from tinyim.modules.files import FileApi
from tinyim.modules.relation import RelationApi
from tinyim.modules.timeline import TimelineApi
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import REQUEST_COMMANDS, Cmd, ErrorCode, Frame, FrameError, encode, parse_body
from tinyim.wire.validate import check_ranges

from ..errors import wire_code
from .connection import Connection
from .handlers import (
    HandlerTable,
    conversation_handlers,  # conversation list, pin/mute, recall, read counts
    file_handlers,
    message_handlers,
    session_handlers,
    social_handlers,
)
from .hub import GatewayHub
from .status import StatusTracker
from .status_handlers import group_admin_handlers, search_handlers, status_handlers

log = logging.getLogger(__name__)
_INTERNAL_LOG = RateLimitedLog(log, interval=10.0)


_CMD_NAMES = {int(c): c.name for c in Cmd}  # a dict: calling the Enum costs ~1 µs on every frame


def _cmd_label(cmd: int) -> str:
    """Metrics and logs name commands (CMD_MSG_SEND_REQ); ids outside the table count as "unknown"."""
    return _CMD_NAMES.get(cmd, "unknown")


def error_frame(code: ErrorCode, message: str, cmd: int) -> bytes:
    resp = pb.ErrorResp(
        code=cast(Any, int(code)), message=message, cmd=cmd
    )  # proto enums are ints on the wire
    return encode(Cmd.CMD_ERROR_RESP, resp.SerializeToString())


class CommandRouter:
    def __init__(
        self,
        timeline: TimelineApi,
        relation: RelationApi,
        hub: GatewayHub,
        status: StatusTracker | None = None,  # online status and typing
        files: FileApi | None = None,  # file transfer
    ) -> None:
        self._hub = hub
        self._handlers: HandlerTable = {
            **session_handlers(hub),
            **message_handlers(timeline),
            **social_handlers(relation),
            **conversation_handlers(timeline),  # conversation list, pin/mute, recall, read counts
            **(file_handlers(files) if files is not None else {}),
            **search_handlers(relation),  # user search
            **group_admin_handlers(relation),  # group owner actions
            **(status_handlers(status) if status is not None else {}),  # online status, typing
        }

    async def handle(self, conn: Connection, frame: Frame) -> bytes:
        """Answer one request frame: its response, or an error frame. Never raises."""
        cmd = frame.cmd
        tracing.new_request()  # follows this request through internal calls and log lines
        label = _cmd_label(cmd)
        metrics.labelled(metrics.WS_FRAMES, label).inc()
        if cmd not in REQUEST_COMMANDS:
            return error_frame(
                ErrorCode.ERR_NOT_A_REQUEST, f"{label} (0x{cmd:04X}) is sent by the server only", cmd
            )
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
        await self._hub.activity(conn, cmd)  # online status: the user is using this device
        started = time.perf_counter()
        try:
            request = parse_body(cmd, frame.body)
            check_ranges(request, cmd)  # ids are range-checked before any store sees them
            response = await handler(conn, request)
            return encode(resp_cmd, response.SerializeToString())
        except FrameError as exc:
            metrics.labelled(metrics.WS_BAD_FRAMES, exc.code.name).inc()
            if exc.code == ErrorCode.ERR_BAD_BODY:
                await conn.strike()
            return error_frame(exc.code, exc.message, cmd)
        except ImError as exc:
            return error_frame(wire_code(exc.code), exc.message, cmd)
        except Exception:
            # Counts as a bad frame (a client that keeps causing these is closed), and the log gets at
            # most one traceback per interval whatever clients do.
            metrics.WS_BAD_FRAMES.labels(code="ERR_INTERNAL").inc()
            _INTERNAL_LOG.exception("request failed", cmd=label, user=conn.user_id)
            await conn.strike()
            return error_frame(ErrorCode.ERR_INTERNAL, "internal error; the request may be retried", cmd)
        finally:
            metrics.labelled(metrics.REQUEST_SECONDS, label).observe(time.perf_counter() - started)
