"""In-memory timeline store: the unit tests' fake and the reference for the contract suite."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tinyim.modules.timeline.domain import Appended, MessageBody, StoredMessage, TimelineSlot


class InMemoryTimelineStore:
    def __init__(self) -> None:
        self.bodies: dict[int, MessageBody] = {}
        self.timelines: dict[int, list[StoredMessage]] = {}
        self.by_client_id: dict[tuple[int, str], tuple[int, int]] = {}  # (sender, cmid) -> (msg_id, seq)
        self.appends = 0  # transactions that wrote something
        self._lock = asyncio.Lock()

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        async with self._lock:
            key = (body.sender_id, body.client_msg_id)
            if body.client_msg_id and key in self.by_client_id:
                msg_id, seq = self.by_client_id[key]
                return Appended(msg_id, {body.sender_id: seq}, duplicate=True)
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

    async def read(self, owner_id: int, after_seq: int, limit: int) -> tuple[list[StoredMessage], bool]:
        newer = [m for m in self.timelines.get(owner_id, []) if m.seq_id > after_seq]
        return newer[:limit], len(newer) > limit

    async def max_seq(self, owner_id: int) -> int:
        timeline = self.timelines.get(owner_id)
        return timeline[-1].seq_id if timeline else 0
