"""Friends, blacklist and groups: states and rules. No I/O.

Friendship is two directed rows (spec: 双向存储). A adds B -> (A,B) and (B,A) NORMAL. A deletes B -> (A,B)
is marked DELETED; B still lists A but can no longer message A. Blocking is kept apart from friendship.
"""

from __future__ import annotations

import enum
import json
import unicodedata
import uuid
from dataclasses import dataclass

from tinyim.kernel import BLOCKED, INVALID_ARGUMENT, NOT_FRIENDS, ImError, UserProfile, check_display_text

GROUP_LIMIT = 500
GROUP_NAME_MAX = 64
REASON_MAX = 255


class RelationStatus(enum.IntEnum):
    NORMAL = 1
    # 2 is the spec's "blocked": never stored, blocking lives in the blacklist table (migration 0002)
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


NOTICE_KEY_PREFIX = "relation:"


@dataclass(frozen=True, slots=True)
class PendingNotice:
    """A notice written to the outbox in the transaction of the change it tells of, delivered after
    commit. `key` is stable across redeliveries: the timeline stores it as the message's client_msg_id
    (per sender), so a notice delivered twice is written once."""

    key: str
    sender_id: int
    receiver_ids: tuple[int, ...]  # a 1:1 notice: one receiver; a group notice: the members
    group_id: int  # 0: a 1:1 notice
    content: str
    friend_request: bool = False

    @staticmethod
    def to_user(
        sender_id: int, receiver_id: int, content: str, friend_request: bool = False
    ) -> PendingNotice:
        return PendingNotice(_notice_key(), sender_id, (receiver_id,), 0, content, friend_request)

    @staticmethod
    def to_group(
        sender_id: int, group_id: int, member_ids: list[int] | tuple[int, ...], content: str
    ) -> PendingNotice:
        return PendingNotice(_notice_key(), sender_id, tuple(member_ids), group_id, content)


def _notice_key() -> str:
    # random, not the outbox row id: SQLite may reuse the id of a deleted last row
    return NOTICE_KEY_PREFIX + uuid.uuid4().hex


# ---------- user search ----------
SEARCH_LIMIT_DEFAULT = 20
SEARCH_LIMIT_MAX = 50
NICKNAME_PREFIX_MAX = 64


@dataclass(frozen=True, slots=True)
class SearchPage:
    users: list[UserProfile]
    next_cursor: str  # "" = no more


@dataclass(frozen=True, slots=True)
class SearchQuery:
    username: str
    nickname_prefix: str
    limit: int
    after_user_id: int


def search_query(username: str, nickname_prefix: str, limit: int, cursor: str) -> SearchQuery:
    """Exactly one of username / nickname_prefix; limit 0 = default, capped; cursor from the last page."""
    username, nickname_prefix = username.strip(), nickname_prefix.strip()
    if bool(username) == bool(nickname_prefix):
        raise ImError(INVALID_ARGUMENT, "search by exactly one of username or nickname_prefix")
    if nickname_prefix:
        nickname_prefix = check_display_text(nickname_prefix, "nickname prefix", NICKNAME_PREFIX_MAX)
    elif len(username) > 64:
        raise ImError(INVALID_ARGUMENT, "username is too long")
    if limit < 0:
        raise ImError(INVALID_ARGUMENT, "limit must not be negative")
    after = 0
    if cursor:
        if not cursor.startswith("u") or not cursor[1:].isdigit() or len(cursor) > 21:
            raise ImError(INVALID_ARGUMENT, "cursor is not one this server handed out")
        after = int(cursor[1:])
    return SearchQuery(username, nickname_prefix, min(limit or SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX), after)


def search_cursor(last_user_id: int) -> str:
    return f"u{last_user_id}"


# ---------- group owner actions ----------
ANNOUNCEMENT_MAX = 255


def check_announcement(text: object) -> str:
    """An announcement: trimmed, at most ANNOUNCEMENT_MAX characters, line breaks allowed, "" clears it."""
    if not isinstance(text, str):
        raise ImError(INVALID_ARGUMENT, "announcement must be a string")
    text = text.strip()
    if len(text) > ANNOUNCEMENT_MAX:
        raise ImError(INVALID_ARGUMENT, f"announcement exceeds {ANNOUNCEMENT_MAX} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in "\n\t" for ch in text):
        raise ImError(INVALID_ARGUMENT, "announcement must not contain control characters")
    return text
