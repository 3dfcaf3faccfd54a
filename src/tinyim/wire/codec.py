"""Frame codec. One WebSocket binary message = exactly one frame = 9 + length bytes.

| magic b"IM" (2) | version 1 (1) | cmd uint16 BE (2) | length uint32 BE (4) | body (length) |

`decode` never raises anything but FrameError, whatever the input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tinyim.wire.commands import KNOWN_COMMANDS, ErrorCode

MAGIC = b"IM"
VERSION = 1
_HEADER = struct.Struct(">2sBHI")
HEADER_SIZE = _HEADER.size  # 9
DEFAULT_MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    cmd: int
    body: bytes


class FrameError(Exception):
    """A frame that cannot be accepted; `cmd` is the header's cmd when it could be read, else 0."""

    def __init__(self, code: ErrorCode, message: str, cmd: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.cmd = cmd


def encode(cmd: int, body: bytes = b"") -> bytes:
    if not 0 <= cmd <= 0xFFFF:
        raise ValueError(f"cmd {cmd} does not fit in uint16")
    return _HEADER.pack(MAGIC, VERSION, cmd, len(body)) + body


def decode(data: bytes, max_body: int = DEFAULT_MAX_BODY) -> Frame:
    if len(data) < HEADER_SIZE:
        raise FrameError(
            ErrorCode.ERR_BAD_FRAME, f"frame of {len(data)} bytes is shorter than the 9-byte header"
        )
    magic, version, cmd, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError(ErrorCode.ERR_BAD_FRAME, "bad magic: frames start with b'IM'")
    if version != VERSION:
        raise FrameError(ErrorCode.ERR_BAD_FRAME, f"unsupported protocol version {version}", cmd)
    if length > max_body:
        raise FrameError(ErrorCode.ERR_FRAME_TOO_LARGE, f"body of {length} bytes exceeds {max_body}", cmd)
    if len(data) != HEADER_SIZE + length:
        raise FrameError(
            ErrorCode.ERR_BAD_FRAME,
            f"length field says {length} but the body has {len(data) - HEADER_SIZE}",
            cmd,
        )
    if cmd not in KNOWN_COMMANDS:
        raise FrameError(ErrorCode.ERR_UNKNOWN_CMD, f"unknown cmd 0x{cmd:04X}", cmd)
    return Frame(cmd, bytes(data[HEADER_SIZE:]))
