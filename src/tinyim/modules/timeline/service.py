"""The timeline service: accept a message, write it into every owner's timeline, signal, serve syncs."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tinyim.infra.snowflake import id_time_ms
from tinyim.kernel import INVALID_ARGUMENT, Caller, ImError, PushTarget
from tinyim.modules.timeline.domain import (
    Appended,
    Conversation,
    MessageBody,
    MsgType,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    TimelineSlot,
    Unread,
    check_send,
    direct_slots,
    group_slots,
)
from tinyim.modules.timeline.ports import (
    Attachments,
    IdGenerator,
    MessagingPolicy,
    PushNotifier,
    TimelineStore,
)

log = logging.getLogger(__name__)


class TimelineWriter:
    """Writes a message into timelines and signals the owners; shared by client sends and server notices."""

    def __init__(self, store: TimelineStore, ids: IdGenerator, notifier: PushNotifier) -> None:
        self._store = store
        self._ids = ids
        self._notifier = notifier

    def next_id(self) -> int:
        return self._ids.next_id()

    async def write(self, body: MessageBody, slots: Sequence[TimelineSlot], sender_device: str) -> Appended:
        appended = await self._store.append(body, slots)
        if not appended.duplicate:
            # The ack must not wait on, or fail because of, a signal: a lost push only delays delivery.
            targets = [
                PushTarget(owner, seq, sender_device if owner == body.sender_id else "")
                for owner, seq in appended.seqs.items()
            ]
            try:
                await self._notifier.notify(targets)
            except Exception:
                log.exception("push notify failed; recipients will catch up on their next sync")
        return appended

    async def post_notice(
        self, sender_id: int, receiver_ids: Sequence[int], group_id: int, msg_type: int, content: str
    ) -> None:
        """A server-written message (SYSTEM, FRIEND_REQ); the sender gets no copy unless listed."""
        if group_id:
            slots = group_slots(sender_id, group_id, list(receiver_ids))
        else:
            slots = [TimelineSlot(r, sender_id, False) for r in receiver_ids]
        if slots:
            await self.write(MessageBody(self.next_id(), sender_id, group_id, msg_type, content), slots, "")


class TimelineService:
    def __init__(
        self,
        store: TimelineStore,
        writer: TimelineWriter,
        policy: MessagingPolicy,
        notifier: PushNotifier,
        max_content_bytes: int = 16 * 1024,
        sync_page_default: int = 100,
        sync_page_max: int = 200,
        attachments: Attachments | None = None,
    ) -> None:
        self._attachments = attachments  # FILE / IMAGE messages name a file (files module)
        self._store = store
        self._writer = writer
        self._policy = policy
        self._notifier = notifier
        self._max_content = max_content_bytes
        self._page_default = sync_page_default
        self._page_max = sync_page_max

    async def send(self, caller: Caller, req: SendRequest) -> SendResult:
        check_send(req, self._max_content)
        if req.group_id:
            members = await self._policy.group_recipients(caller.user_id, req.group_id)
            slots = group_slots(caller.user_id, req.group_id, members)
        else:
            await self._policy.check_direct(caller.user_id, req.receiver_id)
            slots = direct_slots(caller.user_id, req.receiver_id)
        if self._attachments is not None and req.msg_type in (MsgType.FILE, MsgType.IMAGE):
            readers = [slot.owner_id for slot in slots]
            await self._attachments.attach(caller.user_id, req.msg_type, req.content, readers)
        body = MessageBody(
            msg_id=self._writer.next_id(),
            sender_id=caller.user_id,
            group_id=req.group_id,
            msg_type=req.msg_type,
            content=req.content,
            client_msg_id=req.client_msg_id,
        )
        appended = await self._writer.write(body, slots, sender_device=caller.device_id)
        return SendResult(
            appended.msg_id, appended.seqs[caller.user_id], id_time_ms(appended.msg_id), appended.duplicate
        )

    async def sync(self, caller: Caller, after_seq: int, limit: int, min_seq: int = 0) -> SyncPage:
        limit = self._limit(limit)
        after_seq = max(0, after_seq)
        messages, has_more = await self._store.read(caller.user_id, after_seq, limit, min_seq)
        if messages and not has_more:
            max_seq = messages[-1].seq_id
        else:
            max_seq = await self._store.max_seq(caller.user_id)
        return SyncPage(max_seq, messages, has_more)

    async def history(
        self, caller: Caller, conversation: Conversation, before_seq: int, limit: int
    ) -> tuple[list[StoredMessage], bool]:
        return await self._store.history(caller.user_id, conversation, max(0, before_seq), self._limit(limit))

    async def mark_read(self, caller: Caller, conversation: Conversation, read_seq: int) -> int:
        if read_seq <= 0 or read_seq > await self._store.max_seq(caller.user_id):
            raise ImError(INVALID_ARGUMENT, "read_seq must be a seq of your timeline")
        stored = await self._store.mark_read(caller.user_id, conversation, read_seq)
        peer_id, group_id = conversation.peer_and_group
        try:
            await self._notifier.notify_read(caller.user_id, caller.device_id, peer_id, group_id, stored)
        except Exception:
            log.exception("read notify failed; other devices see it on their next unread query")
        return stored

    async def unread(self, caller: Caller) -> list[Unread]:
        return await self._store.unread(caller.user_id)

    def _limit(self, limit: int) -> int:
        return self._page_default if limit <= 0 else min(limit, self._page_max)
