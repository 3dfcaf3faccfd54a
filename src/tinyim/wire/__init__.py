"""The client wire format: a 9-byte header (magic, version, cmd, length) and a protobuf body."""

from tinyim.wire.codec import HEADER_SIZE, MAGIC, VERSION, Frame, FrameError, decode, encode
from tinyim.wire.commands import (
    PUSH_COMMANDS,
    REQUEST_COMMANDS,
    Cmd,
    ErrorCode,
    message_class,
    parse_body,
)

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "PUSH_COMMANDS",
    "REQUEST_COMMANDS",
    "VERSION",
    "Cmd",
    "ErrorCode",
    "Frame",
    "FrameError",
    "decode",
    "encode",
    "message_class",
    "parse_body",
]
