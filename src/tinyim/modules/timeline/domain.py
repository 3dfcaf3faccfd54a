"""Timeline (write diffusion): one body per message, one index row per owner with a per-owner seq."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from tinyim.kernel import (
    INVALID_ARGUMENT,
    NOT_RECALLABLE,
    PERMISSION_DENIED,
    RECALL_TOO_LATE,
    ImError,
    id_time_ms,
)


class MsgType(enum.IntEnum):
    TEXT = 0
    IMAGE = 1
    FILE = 2
    SYSTEM = 3
    FRIEND_REQ = 4
    RECALL = 10  # server-written: a message was recalled (content: JSON naming it)


class ConvType(enum.IntEnum):
    """Which kind of id `other_id` of an index row is: user ids and group ids overlap."""

    DIRECT = 0
    GROUP = 1


# Types a client may send; SYSTEM and FRIEND_REQ are written by the server only.
CLIENT_TYPES = frozenset({MsgType.TEXT, MsgType.IMAGE, MsgType.FILE})
CLIENT_MSG_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class SendRequest:
    receiver_id: int
    group_id: int
    msg_type: int
    content: str
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class MessageBody:
    msg_id: int
    sender_id: int
    group_id: int
    msg_type: int
    content: str
    client_msg_id: str = ""

    @property
    def created_ms(self) -> int:
        return id_time_ms(self.msg_id)


@dataclass(frozen=True, slots=True)
class TimelineSlot:
    """One index row to write: the message lands in owner's timeline, in the conversation with other_id."""

    owner_id: int
    other_id: int
    is_sender: bool


@dataclass(frozen=True, slots=True)
class Appended:
    msg_id: int
    seqs: dict[int, int]  # owner -> seq assigned (for a duplicate: only the sender's original seq)
    duplicate: bool = False
    # For a duplicate: what was stored under that client_msg_id, as (other_id, group_id, type, content).
    original: tuple[int, int, int, str] | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as seen in one owner's timeline."""

    seq_id: int
    msg_id: int
    sender_id: int
    receiver_id: int
    group_id: int
    msg_type: int
    content: str
    client_msg_id: str
    is_sender: bool
    recalled_by: int = 0  # who recalled it (its content is gone), 0 = not recalled

    @property
    def created_ms(self) -> int:
        return id_time_ms(self.msg_id)


@dataclass(frozen=True, slots=True)
class SendResult:
    msg_id: int
    seq_id: int  # in the sender's own timeline
    send_time_ms: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class SyncPage:
    max_seq: int
    messages: list[StoredMessage]
    has_more: bool


@dataclass(frozen=True, slots=True)
class Conversation:
    """One of a user's conversations: with a peer (DIRECT) or in a group (GROUP)."""

    conv_type: ConvType
    other_id: int

    @classmethod
    def of(cls, peer_id: int, group_id: int) -> Conversation:
        if bool(peer_id) == bool(group_id):
            raise ImError(INVALID_ARGUMENT, "name exactly one of peer_id or group_id")
        return cls(ConvType.GROUP, group_id) if group_id else cls(ConvType.DIRECT, peer_id)

    @property
    def peer_and_group(self) -> tuple[int, int]:
        """The inverse of `of`: (peer_id, 0) for 1:1, (0, group_id) for a group."""
        return (0, self.other_id) if self.conv_type == ConvType.GROUP else (self.other_id, 0)


@dataclass(frozen=True, slots=True)
class Unread:
    conversation: Conversation
    unread: int
    last_seq: int
    read_seq: int


def check_send(req: SendRequest, max_content_bytes: int) -> None:
    if req.msg_type not in CLIENT_TYPES:
        raise ImError(INVALID_ARGUMENT, f"message type {req.msg_type} cannot be sent by a client")
    if bool(req.receiver_id) == bool(req.group_id):
        raise ImError(INVALID_ARGUMENT, "set exactly one of receiver_id (1:1) or group_id (group)")
    if not req.content:
        raise ImError(INVALID_ARGUMENT, "content is empty")
    if len(req.content.encode()) > max_content_bytes:
        raise ImError(INVALID_ARGUMENT, f"content exceeds {max_content_bytes} bytes")
    if len(req.client_msg_id) > CLIENT_MSG_ID_MAX:
        raise ImError(INVALID_ARGUMENT, f"client_msg_id exceeds {CLIENT_MSG_ID_MAX} characters")


def direct_slots(sender_id: int, receiver_id: int) -> list[TimelineSlot]:
    """1:1: the receiver's copy, and the sender's own copy for their other devices (multi-device sync)."""
    return [TimelineSlot(sender_id, receiver_id, True), TimelineSlot(receiver_id, sender_id, False)]


def group_slots(sender_id: int, group_id: int, member_ids: list[int]) -> list[TimelineSlot]:
    """Write diffusion: one copy per member, in their conversation with the group."""
    return [TimelineSlot(m, group_id, m == sender_id) for m in member_ids]


# ---------- conversation list, read receipts, recall ----------

PREVIEW_CHARS = 60  # characters of the last message kept in the conversation list (migration 0006)
RECALL_WINDOW_MS = 120_000  # a sender recalls within 2 minutes; group owners and admins at any time
CONVERSATION_PAGE_DEFAULT = 20
CONVERSATION_PAGE_MAX = 100
READ_COUNT_MAX_IDS = 100


class RecallTooLate(ImError):
    def __init__(self) -> None:
        super().__init__(RECALL_TOO_LATE, "a message can be recalled by its sender within 2 minutes only")


def conversation_of_slot(body: MessageBody, slot: TimelineSlot) -> Conversation:
    return Conversation(ConvType.GROUP if body.group_id else ConvType.DIRECT, slot.other_id)


def conversation_of_message(m: StoredMessage) -> Conversation:
    """The conversation a timeline entry belongs to, from its owner's point of view."""
    if m.group_id:
        return Conversation(ConvType.GROUP, m.group_id)
    return Conversation(ConvType.DIRECT, m.receiver_id if m.is_sender else m.sender_id)


def counts_as_unread(msg_type: int, is_sender: bool) -> bool:
    """Messages from others count; the owner's own and RECALL entries never do (nor, once recalled, the
    recalled message itself)."""
    return not is_sender and msg_type != MsgType.RECALL


def preview_of(content: str) -> str:
    return content[:PREVIEW_CHARS]


@dataclass(frozen=True, slots=True)
class ConversationView:
    """One row of a user's conversation list."""

    conversation: Conversation
    last_seq: int
    last_msg_id: int
    last_sender_id: int
    last_msg_type: int
    preview: str
    unread: int
    read_seq: int
    peer_read_seq: int  # 1:1: the peer's read mark, as a seq of the owner's timeline
    pinned: bool
    muted: bool

    @property
    def last_time_ms(self) -> int:
        return id_time_ms(self.last_msg_id) if self.last_msg_id else 0

    @property
    def order_key(self) -> tuple[int, int, int, int]:
        """Descending list order: pinned first, newest first; ties (no messages yet) by conversation."""
        return (
            int(self.pinned),
            self.last_seq,
            -int(self.conversation.conv_type),
            -self.conversation.other_id,
        )


@dataclass(frozen=True, slots=True)
class ConversationCursor:
    """Where a page of the conversation list ended (keyset: everything that sorts after this)."""

    pinned: bool
    last_seq: int
    conv_type: int
    other_id: int

    @classmethod
    def after(cls, view: ConversationView) -> ConversationCursor:
        c = view.conversation
        return cls(view.pinned, view.last_seq, int(c.conv_type), c.other_id)

    def encode(self) -> str:
        return f"{int(self.pinned)}.{self.last_seq}.{self.conv_type}.{self.other_id}"

    @classmethod
    def decode(cls, text: str) -> ConversationCursor | None:
        if not text:
            return None
        try:
            pinned, last_seq, conv_type, other_id = (int(p) for p in text.split("."))
        except ValueError:
            raise ImError(INVALID_ARGUMENT, "cursor is not a next_cursor of this list") from None
        if pinned not in (0, 1) or conv_type not in (0, 1) or min(last_seq, other_id) < 0:
            raise ImError(INVALID_ARGUMENT, "cursor is not a next_cursor of this list")
        return cls(bool(pinned), last_seq, conv_type, other_id)

    @property
    def order_key(self) -> tuple[int, int, int, int]:
        return (int(self.pinned), self.last_seq, -self.conv_type, -self.other_id)

    def passes(self, view: ConversationView) -> bool:
        """Whether `view` comes after this cursor in list order."""
        return view.order_key < self.order_key


@dataclass(frozen=True, slots=True)
class ConversationPage:
    items: list[ConversationView]
    next_cursor: str  # empty: no more


@dataclass(frozen=True, slots=True)
class RecallResult:
    msg_id: int
    seq_id: int  # the RECALL entry in the caller's timeline; 0 when it was recalled before
    already_recalled: bool = False


@dataclass(frozen=True, slots=True)
class ReadCount:
    msg_id: int
    read: int
    total: int


def recall_content(msg_id: int, recalled_by: int) -> str:
    # the id as a string: JavaScript numbers lose 64-bit ids
    return json.dumps({"event": "recall", "msg_id": str(msg_id), "by": recalled_by}, separators=(",", ":"))


def check_recall(
    original: StoredMessage,
    caller_id: int,
    now_ms: int,
    is_group_admin: bool,
    window_ms: int = RECALL_WINDOW_MS,
) -> None:
    """May caller recall `original` (their own copy of it)? Raises ImError when not."""
    if original.msg_type not in CLIENT_TYPES:
        raise ImError(NOT_RECALLABLE, "only messages people sent can be recalled")
    if is_group_admin:
        return
    if original.sender_id != caller_id:
        raise ImError(PERMISSION_DENIED, "only the sender (or a group owner or admin) can recall a message")
    if now_ms - original.created_ms > window_ms:
        raise RecallTooLate()
