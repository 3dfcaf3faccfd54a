"""In-memory timeline store: the unit tests' fake and the reference for the contract suite."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tinyim.modules.timeline.domain import (
    Appended,
    Conversation,
    ConvType,
    MessageBody,
    StoredMessage,
    TimelineSlot,
    Unread,
)


def conversation_of(m: StoredMessage, owner_id: int) -> Conversation:
    if m.group_id:
        return Conversation(ConvType.GROUP, m.group_id)
    return Conversation(ConvType.DIRECT, m.receiver_id if m.is_sender else m.sender_id)


class InMemoryTimelineStore:
    def __init__(self) -> None:
        self.bodies: dict[int, MessageBody] = {}
        self.timelines: dict[int, list[StoredMessage]] = {}
        self.by_client_id: dict[tuple[int, str], tuple[int, int]] = {}  # (sender, cmid) -> (msg_id, seq)
        self.appends = 0  # transactions that wrote something
        self.read_marks: dict[tuple[int, Conversation], int] = {}
        self._lock = asyncio.Lock()

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        async with self._lock:
            key = (body.sender_id, body.client_msg_id)
            if body.client_msg_id and key in self.by_client_id:
                msg_id, seq = self.by_client_id[key]
                first = next(m for m in self.timelines[body.sender_id] if m.seq_id == seq)
                other = first.group_id or first.receiver_id
                original = (other, first.group_id, first.msg_type, first.content)
                return Appended(msg_id, {body.sender_id: seq}, duplicate=True, original=original)
            seqs: dict[int, int] = {}
            self.bodies[body.msg_id] = body
            for slot in slots:
                timeline = self.timelines.setdefault(slot.owner_id, [])
                seq = (timeline[-1].seq_id if timeline else 0) + 1
                receiver = 0 if body.group_id else (slot.other_id if slot.is_sender else slot.owner_id)
                timeline.append(
                    StoredMessage(
                        seq,
                        body.msg_id,
                        body.sender_id,
                        receiver,
                        body.group_id,
                        body.msg_type,
                        body.content,
                        body.client_msg_id,
                        slot.is_sender,
                    )
                )
                seqs[slot.owner_id] = seq
            if body.client_msg_id:
                self.by_client_id[key] = (body.msg_id, seqs[body.sender_id])
            self.appends += 1
            return Appended(body.msg_id, seqs)

    async def read(
        self, owner_id: int, after_seq: int, limit: int, min_seq: int = 0
    ) -> tuple[list[StoredMessage], bool]:
        newer = [m for m in self.timelines.get(owner_id, []) if m.seq_id > after_seq]
        return newer[:limit], len(newer) > limit

    async def max_seq(self, owner_id: int) -> int:
        timeline = self.timelines.get(owner_id)
        return timeline[-1].seq_id if timeline else 0

    async def history(
        self, owner_id: int, conversation: Conversation, before_seq: int, limit: int
    ) -> tuple[list[StoredMessage], bool]:
        older = [
            m
            for m in self.timelines.get(owner_id, [])
            if conversation_of(m, owner_id) == conversation and (before_seq == 0 or m.seq_id < before_seq)
        ]
        return older[-limit:], len(older) > limit

    async def mark_read(self, owner_id: int, conversation: Conversation, read_seq: int) -> int:
        key = (owner_id, conversation)
        self.read_marks[key] = max(self.read_marks.get(key, 0), read_seq)
        return self.read_marks[key]

    async def unread(self, owner_id: int) -> list[Unread]:
        counts: dict[Conversation, list[int]] = {}
        for m in self.timelines.get(owner_id, []):
            conv = conversation_of(m, owner_id)
            if not m.is_sender and m.seq_id > self.read_marks.get((owner_id, conv), 0):
                counts.setdefault(conv, []).append(m.seq_id)
        return [
            Unread(conv, len(seqs), max(seqs), self.read_marks.get((owner_id, conv), 0))
            for conv, seqs in sorted(counts.items(), key=lambda kv: (kv[0].conv_type, kv[0].other_id))
        ]
