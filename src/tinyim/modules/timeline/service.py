"""The timeline service: accept a message, write it into every owner's timeline, signal, serve syncs."""

from __future__ import annotations

import logging

from tinyim.infra.snowflake import id_time_ms
from tinyim.kernel import UNIMPLEMENTED, Caller, ImError, PushTarget
from tinyim.modules.timeline.domain import (
    MessageBody,
    SendRequest,
    SendResult,
    SyncPage,
    check_send,
    direct_slots,
)
from tinyim.modules.timeline.ports import IdGenerator, MessagingPolicy, PushNotifier, TimelineStore

log = logging.getLogger(__name__)


class TimelineService:
    def __init__(
        self,
        store: TimelineStore,
        ids: IdGenerator,
        policy: MessagingPolicy,
        notifier: PushNotifier,
        max_content_bytes: int = 16 * 1024,
        sync_page_default: int = 100,
        sync_page_max: int = 200,
    ) -> None:
        self._store = store
        self._ids = ids
        self._policy = policy
        self._notifier = notifier
        self._max_content = max_content_bytes
        self._page_default = sync_page_default
        self._page_max = sync_page_max

    async def send(self, caller: Caller, req: SendRequest) -> SendResult:
        check_send(req, self._max_content)
        if req.group_id:
            raise ImError(UNIMPLEMENTED, "group messages are not served by this version yet")
        await self._policy.check_direct(caller.user_id, req.receiver_id)
        body = MessageBody(
            msg_id=self._ids.next_id(),
            sender_id=caller.user_id,
            group_id=0,
            msg_type=req.msg_type,
            content=req.content,
            client_msg_id=req.client_msg_id,
        )
        appended = await self._store.append(body, direct_slots(caller.user_id, req.receiver_id))
        sender_seq = appended.seqs[caller.user_id]
        if not appended.duplicate:
            # The ack must not wait on, or fail because of, a signal: a lost push only delays delivery.
            targets = [
                PushTarget(owner, seq, caller.device_id if owner == caller.user_id else "")
                for owner, seq in appended.seqs.items()
            ]
            try:
                await self._notifier.notify(targets)
            except Exception:
                log.exception("push notify failed; recipients will catch up on their next sync")
        return SendResult(appended.msg_id, sender_seq, id_time_ms(appended.msg_id), appended.duplicate)

    async def sync(self, caller: Caller, after_seq: int, limit: int) -> SyncPage:
        limit = self._page_default if limit <= 0 else min(limit, self._page_max)
        after_seq = max(0, after_seq)
        messages, has_more = await self._store.read(caller.user_id, after_seq, limit)
        if messages and not has_more:
            max_seq = messages[-1].seq_id
        else:
            max_seq = await self._store.max_seq(caller.user_id)
        return SyncPage(max_seq, messages, has_more)
