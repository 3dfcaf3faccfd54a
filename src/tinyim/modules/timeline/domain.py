"""Timeline (write diffusion): one body per message, one index row per owner with a per-owner seq."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tinyim.infra.snowflake import id_time_ms
from tinyim.kernel import INVALID_ARGUMENT, ImError


class MsgType(enum.IntEnum):
    TEXT = 0
    IMAGE = 1
    FILE = 2
    SYSTEM = 3
    FRIEND_REQ = 4


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
