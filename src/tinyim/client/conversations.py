"""The conversation list a client builds from its synced timeline ("everything is a message").

    book = ConversationBook(client.user_id)
    for message in client.take_delivered():      # what the first sync brought
        book.add(message, count_unread=False)
    book.seed_unread(await client.unread())     # the server's counts, at this point of the timeline
    async for message in client.messages():     # then every new entry
        book.add(message)

Each conversation (a peer or a group) keeps its last message and an unread count; pending friend requests
(FRIEND_REQ messages) and group join requests (SYSTEM `group_join_request` notices to a group owner) are
kept until a later message settles them. The book can be saved next to the device's local seq, so a client
that syncs only what is new still shows every conversation it knew.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyim.pb import im_protocol_pb2 as pb

from .models import Message, Unread

ConvKey = tuple[int, int]  # (peer_id, 0) for a 1:1 conversation, (0, group_id) for a group


def conversation_key(message: Message) -> ConvKey:
    if message.group_id:
        return (0, message.group_id)
    return (message.receiver_id if message.is_mine else message.sender_id, 0)


def notice_of(message: Message) -> dict[str, Any] | None:
    """The JSON body of a SYSTEM or FRIEND_REQ message (None for other types or a body that is not JSON)."""
    if message.type not in (pb.SYSTEM, pb.FRIEND_REQ):
        return None
    try:
        body = json.loads(message.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def file_of(message: Message) -> dict[str, Any] | None:
    """The JSON body of a FILE or IMAGE message: {task_id, file_name, size, ...} (None otherwise)."""
    if message.type not in (pb.FILE, pb.IMAGE):
        return None
    try:
        body = json.loads(message.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) and "task_id" in body else None


def describe(message: Message, name: Any = str) -> str:
    """One line of text for a message; `name(user_id)` renders a user (default: the id)."""
    if message.type == pb.TEXT:
        return message.content
    info = file_of(message)
    if info is not None:
        kind = "image" if message.type == pb.IMAGE else "file"
        return f"[{kind}] {info.get('file_name', '?')} ({_size(info.get('size', 0))}, task {info['task_id']})"
    body = notice_of(message)
    if body is None:
        return f"[type {message.type}] {message.content}"
    event = body.get("event", "")
    who = name(int(body["user_id"])) if "user_id" in body else name(message.sender_id)
    group = f"group {body.get('name') or body.get('group_id', '')}".strip()
    texts = {
        "friend_request": f"friend request from {name(message.sender_id)}"
        + (f": {body.get('reason')}" if body.get("reason") else ""),
        "friend_accepted": f"{who} accepted the friend request",
        "friend_rejected": f"{who} declined the friend request",
        "friend_added": f"{who} added you back as a friend",
        "group_created": f"{name(message.sender_id)} created {group}",
        "group_join_request": f"{who} asks to join group {body.get('group_id', '')}",
        "group_join_rejected": f"the request to join {group} was declined",
        "member_joined": f"{who} joined group {body.get('group_id', '')}",
        "member_left": f"{who} left group {body.get('group_id', '')}",
        "member_removed": f"{who} was removed from group {body.get('group_id', '')}",
        "removed_from_group": f"you were removed from group {body.get('group_id', '')}",
    }
    return "* " + texts.get(event, f"{event or 'notice'}: {message.content}")


def _size(n: object) -> str:
    size = float(n) if isinstance(n, int | float) else 0.0
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"  # pragma: no cover


@dataclass
class Conversation:
    peer_id: int
    group_id: int
    last: Message | None = None
    read_seq: int = 0
    counted_to: int = 0  # the server's unread count (`seeded`) covers messages up to this seq
    seeded: int = 0
    newer: list[int] = field(default_factory=list)  # seqs of unread messages from others since then

    @property
    def key(self) -> ConvKey:
        return (self.peer_id, self.group_id)

    @property
    def unread(self) -> int:
        return self.seeded + len(self.newer)


@dataclass(frozen=True, slots=True)
class FriendRequest:
    user_id: int
    reason: str
    seq_id: int


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: int
    user_id: int
    seq_id: int


@dataclass
class ConversationBook:
    user_id: int
    conversations: dict[ConvKey, Conversation] = field(default_factory=dict)
    friend_requests: dict[int, FriendRequest] = field(default_factory=dict)
    join_requests: dict[tuple[int, int], JoinRequest] = field(default_factory=dict)

    def get(self, key: ConvKey) -> Conversation:
        conv = self.conversations.get(key)
        if conv is None:
            conv = self.conversations[key] = Conversation(*key)
        return conv

    def add(self, message: Message, *, count_unread: bool = True) -> Conversation:
        """Take one timeline entry: last message, unread count, requests it opens or settles."""
        conv = self.get(conversation_key(message))
        if conv.last is None or message.seq_id > conv.last.seq_id:
            conv.last = message
        # As the server counts: every message from others above the read mark (a reply does not mark
        # the conversation read; a client marks it read when it shows it).
        if (
            not message.is_mine
            and count_unread
            and message.seq_id > max(conv.read_seq, conv.counted_to)
            and message.seq_id not in conv.newer
        ):
            conv.newer.append(message.seq_id)
        self._requests(message)
        return conv

    def seed_unread(self, counts: list[Unread]) -> None:
        """The server's unread counts; messages added later count on top of them only if newer."""
        for conv in self.conversations.values():
            conv.seeded, conv.newer = 0, []
        for u in counts:
            conv = self.get((u.peer_id, u.group_id))
            conv.seeded, conv.newer = u.unread, []
            conv.read_seq = max(conv.read_seq, u.read_seq)
            conv.counted_to = max(conv.counted_to, u.last_seq)

    def mark_read(self, key: ConvKey, read_seq: int) -> None:
        """Read up to read_seq (here or on another device)."""
        conv = self.get(key)
        conv.read_seq = max(conv.read_seq, read_seq)
        conv.newer = [seq for seq in conv.newer if seq > conv.read_seq]
        if conv.read_seq >= conv.counted_to:
            conv.seeded = 0

    def ordered(self) -> list[Conversation]:
        """Newest activity first."""
        return sorted(self.conversations.values(), key=lambda c: c.last.seq_id if c.last else 0, reverse=True)

    @property
    def total_unread(self) -> int:
        return sum(c.unread for c in self.conversations.values())

    def settle_friend(self, user_id: int) -> None:
        self.friend_requests.pop(user_id, None)

    def settle_join(self, group_id: int, user_id: int) -> None:
        self.join_requests.pop((group_id, user_id), None)

    def _requests(self, message: Message) -> None:
        body = notice_of(message)
        if body is None:
            return
        event = body.get("event")
        if message.type == pb.FRIEND_REQ and not message.is_mine:
            reason = str(body.get("reason", ""))
            self.friend_requests[message.sender_id] = FriendRequest(message.sender_id, reason, message.seq_id)
        elif event in ("friend_accepted", "friend_rejected"):
            # Mine: I answered the request of the receiver. Theirs: they accepted mine (we are friends).
            self.settle_friend(message.receiver_id if message.is_mine else message.sender_id)
        elif event == "group_join_request" and not message.is_mine:
            group_id = int(body.get("group_id", 0))
            self.join_requests[(group_id, message.sender_id)] = JoinRequest(
                group_id, message.sender_id, message.seq_id
            )
        elif event == "member_joined":
            self.settle_join(int(body.get("group_id", 0)), int(body.get("user_id", 0)))
        elif event == "group_join_rejected" and message.is_mine:
            self.settle_join(int(body.get("group_id", 0)), message.receiver_id)

    # ---------- persistence (next to the device's local seq) ----------
    def to_json(self) -> str:
        return json.dumps(
            {
                "user_id": self.user_id,
                "conversations": [
                    {**asdict(c), "last": asdict(c.last) if c.last else None}
                    for c in self.conversations.values()
                ],
                "friend_requests": [asdict(r) for r in self.friend_requests.values()],
                "join_requests": [asdict(r) for r in self.join_requests.values()],
            }
        )

    @classmethod
    def from_json(cls, text: str, user_id: int) -> ConversationBook:
        """A saved book of this user (an unreadable or foreign one gives an empty book)."""
        book = cls(user_id)
        try:
            data = json.loads(text)
            if data.get("user_id") != user_id:
                return book
            for c in data["conversations"]:
                last = Message(**c["last"]) if c.get("last") else None
                conv = Conversation(
                    c["peer_id"], c["group_id"], last, c["read_seq"], c["counted_to"], c["seeded"], c["newer"]
                )
                book.conversations[conv.key] = conv
            for r in data["friend_requests"]:
                book.friend_requests[r["user_id"]] = FriendRequest(**r)
            for j in data["join_requests"]:
                book.join_requests[(j["group_id"], j["user_id"])] = JoinRequest(**j)
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls(user_id)
        return book

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, user_id: int) -> ConversationBook:
        try:
            return cls.from_json(path.read_text(), user_id)
        except OSError:
            return cls(user_id)
