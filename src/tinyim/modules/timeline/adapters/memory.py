"""In-memory timeline store: the unit tests' fake and the reference for the contract suite."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from tinyim.modules.timeline.domain import (
    Appended,
    Conversation,
    ConversationCursor,
    ConversationView,
    ConvType,
    MessageBody,
    ReadCount,
    StoredMessage,
    TimelineSlot,
    Unread,
    conversation_of_message,
    conversation_of_slot,
    counts_as_unread,
    preview_of,
)


def conversation_of(m: StoredMessage, owner_id: int) -> Conversation:
    return conversation_of_message(m)


class InMemoryTimelineStore:
    def __init__(self) -> None:
        self.bodies: dict[int, MessageBody] = {}
        self.timelines: dict[int, list[StoredMessage]] = {}
        self.by_client_id: dict[tuple[int, str], tuple[int, int]] = {}  # (sender, cmid) -> (msg_id, seq)
        self.appends = 0  # transactions that wrote something
        self.read_marks: dict[tuple[int, Conversation], int] = {}
        self.conversation_rows: dict[tuple[int, Conversation], ConversationView] = {}
        self.recalled: dict[int, int] = {}  # msg_id -> recalled_by
        self._lock = asyncio.Lock()

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        async with self._lock:
            return self._append(body, slots)

    async def append_many(
        self, items: Sequence[tuple[MessageBody, Sequence[TimelineSlot]]]
    ) -> list[Appended | Exception]:
        results: list[Appended | Exception] = []
        async with self._lock:
            for body, slots in items:
                try:
                    results.append(self._append(body, slots))
                except Exception as exc:
                    results.append(exc)
        return results

    def _append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        key = (body.sender_id, body.client_msg_id)
        if body.client_msg_id and key in self.by_client_id:
            msg_id, seq = self.by_client_id[key]
            if not seq:  # a notice that left its sender no copy: nothing to compare a retry with
                return Appended(msg_id, {}, duplicate=True)
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
            self._touch_conversation(body, slot, seq)
        if body.client_msg_id:
            self.by_client_id[key] = (body.msg_id, seqs.get(body.sender_id, 0))
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
        row = self.conversation_rows.get(key)
        if row is None:
            return 0
        if read_seq > row.read_seq:
            self.read_marks[key] = read_seq
            self.conversation_rows[key] = dataclasses.replace(
                row, read_seq=read_seq, unread=self._count_unread(owner_id, conversation, read_seq)
            )
        return self.conversation_rows[key].read_seq

    async def unread(self, owner_id: int) -> list[Unread]:
        rows = [r for (o, _), r in self.conversation_rows.items() if o == owner_id and r.unread > 0]
        return [
            Unread(r.conversation, r.unread, r.last_seq, r.read_seq)
            for r in sorted(rows, key=lambda r: (r.conversation.conv_type, r.conversation.other_id))
        ]

    # ---------- conversation list, read receipts, recall ----------
    def _touch_conversation(self, body: MessageBody, slot: TimelineSlot, seq: int) -> None:
        conversation = conversation_of_slot(body, slot)
        key = (slot.owner_id, conversation)
        row = self.conversation_rows.get(key) or ConversationView(
            conversation, 0, 0, 0, 0, "", 0, 0, 0, False, False
        )
        unread = row.unread + int(counts_as_unread(body.msg_type, slot.is_sender) and seq > row.read_seq)
        if seq > row.last_seq:
            row = dataclasses.replace(
                row,
                last_seq=seq,
                last_msg_id=body.msg_id,
                last_sender_id=body.sender_id,
                last_msg_type=body.msg_type,
                preview=preview_of(body.content),
            )
        self.conversation_rows[key] = dataclasses.replace(row, unread=unread)

    def _count_unread(self, owner_id: int, conversation: Conversation, read_seq: int) -> int:
        return sum(
            1
            for m in self.timelines.get(owner_id, [])
            if m.seq_id > read_seq
            and conversation_of_message(m) == conversation
            and counts_as_unread(m.msg_type, m.is_sender)
            and not m.recalled_by
        )

    async def conversations(
        self, owner_id: int, limit: int, after: ConversationCursor | None
    ) -> list[ConversationView]:
        rows = [r for (o, _), r in self.conversation_rows.items() if o == owner_id]
        rows = [r for r in rows if after is None or after.passes(r)]
        return sorted(rows, key=lambda r: r.order_key, reverse=True)[:limit]

    async def conversation(self, owner_id: int, conversation: Conversation) -> ConversationView | None:
        return self.conversation_rows.get((owner_id, conversation))

    async def set_flags(
        self, owner_id: int, conversation: Conversation, pinned: bool | None, muted: bool | None
    ) -> ConversationView | None:
        key = (owner_id, conversation)
        row = self.conversation_rows.get(key)
        if row is None:
            return None
        row = dataclasses.replace(
            row,
            pinned=row.pinned if pinned is None else pinned,
            muted=row.muted if muted is None else muted,
        )
        self.conversation_rows[key] = row
        return row

    async def propagate_read(self, owner_id: int, peer_id: int, read_seq: int) -> int:
        direct = Conversation(ConvType.DIRECT, peer_id)
        theirs = {m.msg_id: m.seq_id for m in self.timelines.get(peer_id, [])}
        shared = [
            theirs[m.msg_id]
            for m in self.timelines.get(owner_id, [])
            if m.seq_id <= read_seq and conversation_of_message(m) == direct and m.msg_id in theirs
        ]
        key = (peer_id, Conversation(ConvType.DIRECT, owner_id))
        row = self.conversation_rows.get(key)
        if not shared or row is None or row.peer_read_seq >= max(shared):
            return 0
        self.conversation_rows[key] = dataclasses.replace(row, peer_read_seq=max(shared))
        return max(shared)

    async def message(self, owner_id: int, msg_id: int) -> StoredMessage | None:
        return next((m for m in self.timelines.get(owner_id, []) if m.msg_id == msg_id), None)

    async def recall(self, msg_id: int, recalled_by: int, event: MessageBody) -> Appended | None:
        async with self._lock:
            original = self.bodies.get(msg_id)
            if original is None or msg_id in self.recalled:
                return None
            self.recalled[msg_id] = recalled_by
            self.bodies[msg_id] = dataclasses.replace(original, content="")
            slots: list[TimelineSlot] = []
            for owner, timeline in self.timelines.items():
                for k, m in enumerate(timeline):
                    if m.msg_id == msg_id:
                        timeline[k] = dataclasses.replace(m, content="", recalled_by=recalled_by)
                        other = m.group_id or (m.receiver_id if m.is_sender else m.sender_id)
                        slots.append(TimelineSlot(owner, other, owner == recalled_by))
                        key = (owner, conversation_of_message(m))
                        row = self.conversation_rows[key]
                        if counts_as_unread(m.msg_type, m.is_sender) and m.seq_id > row.read_seq:
                            self.conversation_rows[key] = dataclasses.replace(row, unread=row.unread - 1)
            return self._append(event, slots)

    async def read_counts(self, sender_id: int, group_id: int, msg_ids: Sequence[int]) -> list[ReadCount]:
        out = []
        for msg_id in dict.fromkeys(msg_ids):
            body = self.bodies.get(msg_id)
            if body is None or body.sender_id != sender_id or body.group_id != group_id:
                continue
            copies = [
                (owner, m)
                for owner, timeline in self.timelines.items()
                for m in timeline
                if m.msg_id == msg_id and not m.is_sender
            ]
            read = sum(
                1
                for owner, m in copies
                if self.conversation_rows[(owner, conversation_of_message(m))].read_seq >= m.seq_id
            )
            out.append(ReadCount(msg_id, read, len(copies)))
        return out

    # admin API: server stats
    async def count_messages(self) -> int:
        return len(self.bodies)
