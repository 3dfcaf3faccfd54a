"""Friends, blacklist and groups: states and rules. No I/O.

Friendship is two directed rows (spec: 双向存储). A adds B -> (A,B) and (B,A) NORMAL. A deletes B -> (A,B)
is marked DELETED; B still lists A but can no longer message A. Blocking is kept apart from friendship.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from tinyim.kernel import BLOCKED, INVALID_ARGUMENT, NOT_FRIENDS, ImError, check_display_text

GROUP_LIMIT = 500
GROUP_NAME_MAX = 64
REASON_MAX = 255


class RelationStatus(enum.IntEnum):
    NORMAL = 1
    BLOCKED = 2  # the spec's value; blocking lives in the blacklist table instead
    DELETED = 3


class RequestStatus(enum.IntEnum):
    PENDING = 0
    ACCEPTED = 1
    REJECTED = 2


class GroupRole(enum.IntEnum):
    MEMBER = 1
    ADMIN = 2
    OWNER = 3


@dataclass(frozen=True, slots=True)
class PairState:
    """Everything the messaging rule needs to know about two users."""

    a_to_b: RelationStatus | None
    b_to_a: RelationStatus | None
    a_blocks_b: bool
    b_blocks_a: bool

    @property
    def friends(self) -> bool:
        return self.a_to_b == RelationStatus.NORMAL and self.b_to_a == RelationStatus.NORMAL


@dataclass(frozen=True, slots=True)
class FriendRequest:
    from_user_id: int
    to_user_id: int
    reason: str
    status: RequestStatus


@dataclass(frozen=True, slots=True)
class Group:
    group_id: int
    name: str
    owner_id: int
    announcement: str
    member_count: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    role: GroupRole


def check_direct_message(state: PairState) -> None:
    """The 1:1 messaging rule (state is sender=a, receiver=b). Kept here and only here."""
    if state.b_blocks_a:
        raise ImError(BLOCKED, "this user does not accept your messages")
    if state.a_blocks_b:
        raise ImError(BLOCKED, "you blocked this user; unblock them to send")
    if not state.friends:
        raise ImError(NOT_FRIENDS, "you are not friends: send a friend request first")


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > REASON_MAX:
        raise ImError(INVALID_ARGUMENT, f"reason exceeds {REASON_MAX} characters")
    return reason


def check_group_name(name: str) -> str:
    return check_display_text(name, "group name", GROUP_NAME_MAX)


def notice(event: str, **fields: object) -> str:
    """Body of a SYSTEM / FRIEND_REQ message: JSON a client renders ("everything is a message")."""
    return json.dumps({"event": event, **fields}, ensure_ascii=False, separators=(",", ":"))
