"""Range checks on a parsed request, before any module or store sees it.

Ids, seqs, sizes and offsets are 64-bit on the wire (uint64) but signed BIGINT in every store: a value
at or above 2**63 is refused here as an invalid argument, in every field of every request (nested
messages and repeated fields included), so no command can carry one to a database driver.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tinyim.wire.codec import FrameError
from tinyim.wire.commands import ErrorCode

INT64_MAX = 2**63 - 1
_WIDE = frozenset({FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64})


def check_ranges(msg: Message, cmd: int = 0) -> None:
    for field, value in msg.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for sub in value if _repeated(field) else (value,):
                check_ranges(sub, cmd)
        elif field.type in _WIDE:
            for v in value if _repeated(field) else (value,):
                if v > INT64_MAX:
                    raise FrameError(
                        ErrorCode.ERR_INVALID_ARGUMENT, f"{field.name} must be below 2^63, got {v}", cmd
                    )


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
