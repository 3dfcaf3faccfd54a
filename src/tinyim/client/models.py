"""What the SDK hands back: messages, users, groups, conversation items and the events of the session."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    seq_id: int
    msg_id: int
    sender_id: int
    receiver_id: int
    group_id: int
    type: int
    content: str
    create_time: int
    client_msg_id: str
    is_mine: bool
    recalled_by: int = 0  # recalled (by the sender, or a group owner/admin): content is empty

    @property
    def recalled(self) -> bool:
        return bool(self.recalled_by)


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    username: str
    nickname: str


@dataclass(frozen=True, slots=True)
class GroupSummary:
    group_id: int
    name: str
    owner_id: int
    member_count: int
    announcement: str = ""


@dataclass(frozen=True, slots=True)
class Unread:
    peer_id: int
    group_id: int
    unread: int
    last_seq: int
    read_seq: int


@dataclass(frozen=True, slots=True)
class Sent:
    msg_id: int
    seq_id: int
    send_time: int
    duplicate: bool
    client_msg_id: str


# ---------- conversation list, read receipts, recall ----------
@dataclass(frozen=True, slots=True)
class ConversationItem:
    peer_id: int  # 1:1 conversations
    group_id: int  # group conversations
    last_seq: int
    last_msg_id: int
    last_sender_id: int
    last_type: int
    preview: str
    last_time: int  # ms
    unread: int
    read_seq: int
    peer_read_seq: int  # 1:1: how far the peer read, as a seq of your timeline
    pinned: bool
    muted: bool


@dataclass(frozen=True, slots=True)
class RecallResult:
    msg_id: int
    seq_id: int  # the RECALL entry in your timeline (0 when it was recalled before)
    already_recalled: bool


@dataclass(frozen=True, slots=True)
class ReadCount:
    msg_id: int
    read: int
    total: int


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    """A 1:1 peer read your conversation up to read_seq (a seq of your timeline)."""

    peer_id: int
    read_seq: int


@dataclass(frozen=True, slots=True)
class RecallEvent:
    """A message you have was recalled; `seq_id` is the RECALL entry in your timeline."""

    msg_id: int
    recalled_by: int
    peer_id: int
    group_id: int
    seq_id: int


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """Another device of yours pinned/unpinned or muted/unmuted a conversation."""

    peer_id: int
    group_id: int
    pinned: bool
    muted: bool


ClientEvent = ReceiptEvent | RecallEvent | ConversationEvent


# PC client: the device types a client may claim (one live session per user and device type; a login on
# a device type kicks that type's older session, other types stay online).
DEVICE_IDS = ("PC", "Web", "Mobile", "Pad")
