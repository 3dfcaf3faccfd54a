"""What every module shares: the caller's identity and the error type that edges translate for clients.

Error codes are plain strings here so domain code stays free of protobuf; the gateway maps them to
`ErrorCode` and the HTTP edge to status codes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

INVALID_ARGUMENT: Final = "invalid_argument"
NOT_FOUND: Final = "not_found"
CONFLICT: Final = "conflict"
UNAUTHENTICATED: Final = "unauthenticated"
PERMISSION_DENIED: Final = "permission_denied"
NOT_FRIENDS: Final = "not_friends"
BLOCKED: Final = "blocked"
UNAVAILABLE: Final = "unavailable"
UNIMPLEMENTED: Final = "unimplemented"
ALREADY_EXISTS: Final = "already_exists"
NOT_MEMBER: Final = "not_member"
GROUP_FULL: Final = "group_full"
# conversations, receipts, recall
RECALL_TOO_LATE: Final = "recall_too_late"
NOT_RECALLABLE: Final = "not_recallable"
# user search, typing: too many requests of one kind in a window
RATE_LIMITED: Final = "rate_limited"
# reliability: a client_msg_id reused for a different message
CLIENT_MSG_ID_REUSED: Final = "client_msg_id_reused"


# Message ids (snowflake): 41 bits of milliseconds since ID_EPOCH_MS, 10 bits worker id, 12 bits sequence.
# The layout lives here so domain code can read an id's creation time; infra.snowflake makes the ids.
ID_EPOCH_MS: Final = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ID_WORKER_BITS: Final = 10
ID_SEQUENCE_BITS: Final = 12


def id_time_ms(message_id: int) -> int:
    """The creation time (ms since the Unix epoch) embedded in a message id."""
    return (message_id >> (ID_WORKER_BITS + ID_SEQUENCE_BITS)) + ID_EPOCH_MS


class ImError(Exception):
    """A request that cannot be served, with a code a client can branch on and a message it can show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_display_text(value: object, what: str, max_len: int) -> str:
    """A name people see (nickname, group name): trimmed, 1..max_len characters, no control characters."""
    if not isinstance(value, str):
        raise ImError(INVALID_ARGUMENT, f"{what} must be a string")
    value = value.strip()
    if not 1 <= len(value) <= max_len:
        raise ImError(INVALID_ARGUMENT, f"{what} must be 1-{max_len} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise ImError(INVALID_ARGUMENT, f"{what} must not contain control characters")
    return value


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, as established by the session (never taken from a request body)."""

    user_id: int
    device_id: str


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A signal for one user's devices: 'your timeline now reaches max_seq'. `except_device` already knows.
    `message` is the new message as the owner's client `MessageData` (serialized), when it is small enough
    to ride in the push: a device just one seq behind applies it without a sync."""

    user_id: int
    max_seq: int
    except_device: str = ""
    message: bytes = b""


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What anyone may see of a user."""

    user_id: int
    username: str
    nickname: str


# user search: what a user lets others do with their profile
@dataclass(frozen=True, slots=True)
class Privacy:
    hide_from_nickname_search: bool = False
