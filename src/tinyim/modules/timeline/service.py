"""The timeline service: accept a message, write it into every owner's timeline, signal, serve syncs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from tinyim.kernel import (
    CLIENT_MSG_ID_REUSED,
    INVALID_ARGUMENT,
    NOT_FOUND,
    AfterCommit,
    Caller,
    ImError,
    PushTarget,
    id_time_ms,
    outcomes,
)
from tinyim.modules.timeline.dispatcher import PushDispatcher
from tinyim.modules.timeline.domain import (
    CONVERSATION_PAGE_DEFAULT,
    CONVERSATION_PAGE_MAX,
    READ_COUNT_MAX_IDS,
    RECALL_WINDOW_MS,
    Appended,
    Conversation,
    ConversationCursor,
    ConversationPage,
    ConversationView,
    MessageBody,
    MsgType,
    ReadCount,
    RecallResult,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    TimelineSlot,
    Unread,
    check_recall,
    check_send,
    direct_slots,
    group_slots,
    recall_content,
)
from tinyim.modules.timeline.ports import (
    Attachments,
    GroupRoles,
    IdGenerator,
    InlineEncoder,
    KnownRules,
    MessagingPolicy,
    PushNotifier,
    TimelineStore,
)

GROUP_ADMIN_ROLES = frozenset({2, 3})  # relation's GroupRole.ADMIN and OWNER


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


log = logging.getLogger(__name__)


_NOT_YET = RuntimeError("not answered")  # a place held in send_many's results until the write returns

INLINE_MAX_CONTENT_BYTES = 2048  # a message up to this size rides in its push signal (no sync needed)


class TimelineWriter:
    """Writes a message into timelines and signals the owners; shared by client sends and server notices."""

    def __init__(
        self,
        store: TimelineStore,
        ids: IdGenerator,
        notifier: PushNotifier,
        inline: InlineEncoder | None = None,
        inline_max_bytes: int = INLINE_MAX_CONTENT_BYTES,
        on_push_drop: Callable[[int], None] = lambda _n: None,
        on_push_failure: Callable[[], None] = lambda: None,
        fanout_min: int = 0,
        fanout_rate: float = 0.0,
    ) -> None:
        self._store = store
        self._ids = ids
        # Signals leave after the commit, through a queue: the ack never waits on (or fails by) a push.
        # A big fan-out's (fanout_min owners or more) are paced to fanout_rate owners per second: a busy
        # group's members get several messages per frame.
        self._pushes = PushDispatcher(
            notifier,
            on_drop=on_push_drop,
            on_failure=on_push_failure,
            fanout_min=fanout_min,
            fanout_rate=fanout_rate,
        )
        self._inline = inline  # None: signals carry only the seq (every device syncs)
        self._inline_max = inline_max_bytes

    def next_id(self) -> int:
        return self._ids.next_id()

    async def write(self, body: MessageBody, slots: Sequence[TimelineSlot], sender_device: str) -> Appended:
        appended = await self._store.append(body, slots)
        if not appended.duplicate:
            await self.signal(appended, body, sender_device)
        return appended

    async def write_many(
        self, items: Sequence[tuple[MessageBody, Sequence[TimelineSlot], str]]
    ) -> list[Appended | Exception]:
        """`write` for each (body, slots, sender_device) at once: one group commit, answered in order."""
        results = await self._store.append_many([(body, slots) for body, slots, _ in items])
        for (body, _, sender_device), appended in zip(items, results, strict=True):
            if not isinstance(appended, Exception) and not appended.duplicate:
                await self.signal(appended, body, sender_device)
        return results

    async def signal(self, appended: Appended, body: MessageBody, sender_device: str) -> None:
        """Signal every owner a message was appended for (the sender's own device excepted, unless the
        message's pushes are paced)."""
        inline = self._inline_messages(appended, body)
        # The sending device knows its message from the ack, so its push leaves it out, unless the message
        # is paced (a big group's): then the ack can overtake the paced push of the messages before it,
        # the device cannot take its own message yet, and without it in a push it would have to sync.
        known = "" if self._pushes.paced(len(appended.seqs)) else sender_device
        targets = [
            PushTarget(owner, seq, known if owner == body.sender_id else "", inline.get(owner, b""))
            for owner, seq in appended.seqs.items()
        ]
        self._pushes.submit(targets)

    async def pushes_sent(self) -> None:
        """Wait until every signal queued so far was handed to the notifier."""
        await self._pushes.drained()

    def _inline_messages(self, appended: Appended, body: MessageBody) -> dict[int, bytes]:
        """Each owner's copy of a small message, to ride in the push (a device one behind needs no sync)."""
        if self._inline is None:
            return {}
        # 4 bytes is UTF-8's widest character: most messages are known small without encoding them
        if len(body.content) * 4 > self._inline_max and len(body.content.encode()) > self._inline_max:
            return {}
        receiver_id = 0
        if not body.group_id:  # the 1:1 peer that received it: the owner who is not the sender
            receiver_id = next((o for o in appended.seqs if o != body.sender_id), 0)
        as_sent = StoredMessage(
            0, body.msg_id, body.sender_id, receiver_id, body.group_id, body.msg_type, body.content,
            body.client_msg_id, True,
        )  # fmt: skip
        return self._inline(as_sent, appended.seqs)

    async def post_notice(
        self,
        sender_id: int,
        receiver_ids: Sequence[int],
        group_id: int,
        msg_type: int,
        content: str,
        dedup_key: str = "",
    ) -> None:
        """A server-written message (SYSTEM, FRIEND_REQ); the sender gets no copy unless listed. With a
        dedup_key (stored as the message's client_msg_id, per sender, as a client send's) a notice posted
        again is not written again: one body per notice, however many receivers."""
        if group_id:
            slots = group_slots(sender_id, group_id, list(receiver_ids))
        else:
            slots = [TimelineSlot(r, sender_id, False) for r in receiver_ids]
        if slots:
            body = MessageBody(self.next_id(), sender_id, group_id, msg_type, content, dedup_key)
            await self.write(body, slots, "")

    async def message_count(self) -> int:
        return await self._store.count_messages()


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
        roles: GroupRoles | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        recall_window_ms: int = RECALL_WINDOW_MS,
        attachments: Attachments | None = None,
        after_commit: AfterCommit | None = None,
    ) -> None:
        # read notices and receipts leave after the answer: a slow gateway delays no read mark
        self._after_commit = after_commit or AfterCommit()
        self._roles = roles  # group roles for recall by owners and admins (relation serves them)
        self._clock = clock  # ms since the epoch; tests inject one to step past the recall window
        self._recall_window_ms = recall_window_ms
        self._attachments = attachments  # FILE / IMAGE messages name a file (files module)
        self._store = store
        self._writer = writer
        self._policy = policy
        # a batch of sends checks in turn when the policy knows every answer (see KnownRules)
        self._known = policy.known if isinstance(policy, KnownRules) else None
        self._notifier = notifier
        self._max_content = max_content_bytes
        self._page_default = sync_page_default
        self._page_max = sync_page_max

    async def send(self, caller: Caller, req: SendRequest) -> SendResult:
        body, slots = await self._prepare(caller, req)
        appended = await self._writer.write(body, slots, sender_device=caller.device_id)
        return self._sent(caller, req, appended)

    async def send_many(self, sends: Sequence[tuple[Caller, SendRequest]]) -> list[SendResult | Exception]:
        """The sends of a gateway's batch: each checked, all written together, each answered alone."""
        results: list[SendResult | Exception] = []
        writes: list[tuple[MessageBody, Sequence[TimelineSlot], str]] = []
        pending: list[tuple[int, Caller, SendRequest]] = []  # (index in results, the send)
        for (caller, req), prepared in zip(sends, await self._prepare_all(sends), strict=True):
            if isinstance(prepared, Exception):  # refused (or the check failed): this send only
                results.append(prepared)
                continue
            body, slots = prepared
            pending.append((len(results), caller, req))
            results.append(_NOT_YET)
            writes.append((body, slots, caller.device_id))
        try:
            written = await self._writer.write_many(writes)
        except Exception as exc:  # not one send's failure (a bug): every send of the batch gets it
            written = [exc] * len(writes)
        for (index, caller, req), appended in zip(pending, written, strict=True):
            if isinstance(appended, Exception):
                results[index] = appended
                continue
            try:
                results[index] = self._sent(caller, req, appended)
            except ImError as exc:  # its client_msg_id was used for another message
                results[index] = exc
        return results

    async def _prepare_all(
        self, sends: Sequence[tuple[Caller, SendRequest]]
    ) -> list[tuple[MessageBody, list[TimelineSlot]] | Exception]:
        """Every send checked: in turn when each check answers from memory (no task per send), else all
        at once, so that the calls of a cold cache (after a start, or as entries expire) overlap instead
        of adding up."""
        if all(self._answers_at_once(caller, req) for caller, req in sends):
            return [await self._prepare_or_error(caller, req) for caller, req in sends]
        return await outcomes(self._prepare(caller, req) for caller, req in sends)

    def _answers_at_once(self, caller: Caller, req: SendRequest) -> bool:
        if self._known is None or not self._known(caller.user_id, req.receiver_id, req.group_id):
            return False
        return self._attachments is None or req.msg_type not in (MsgType.FILE, MsgType.IMAGE)

    async def _prepare_or_error(
        self, caller: Caller, req: SendRequest
    ) -> tuple[MessageBody, list[TimelineSlot]] | Exception:
        try:
            return await self._prepare(caller, req)
        except Exception as exc:
            return exc

    async def _prepare(self, caller: Caller, req: SendRequest) -> tuple[MessageBody, list[TimelineSlot]]:
        """Check a send (size, relation, attachment) and give it its body and timeline slots."""
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
        return body, slots

    def _sent(self, caller: Caller, req: SendRequest, appended: Appended) -> SendResult:
        if appended.duplicate:
            asked = (req.group_id or req.receiver_id, req.group_id, req.msg_type, req.content)
            # no original: the id was a server notice's, which left the sender no copy
            if appended.original != asked:
                raise ImError(
                    CLIENT_MSG_ID_REUSED,
                    "this client_msg_id was already used for a different message; use a new one",
                )
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
        # other devices see it now, or on their next unread query if the notice is lost
        user_id, device_id = caller.user_id, caller.device_id
        self._after_commit.defer(
            "read notice",
            lambda: self._notifier.notify_read(user_id, device_id, peer_id, group_id, stored),
        )
        if peer_id and stored:
            # read receipt: the peer's devices learn how far their messages were read (in their seqs)
            peer_mark = await self._store.propagate_read(caller.user_id, peer_id, stored)
            if peer_mark:
                self._after_commit.defer(
                    "read receipt", lambda: self._notifier.notify_receipt(peer_id, user_id, peer_mark)
                )
        return stored

    async def unread(self, caller: Caller) -> list[Unread]:
        return await self._store.unread(caller.user_id)

    def _limit(self, limit: int) -> int:
        return self._page_default if limit <= 0 else min(limit, self._page_max)

    # ---------- conversation list, pin/mute, recall, group read counts ----------
    async def conversations(self, caller: Caller, limit: int, cursor: str) -> ConversationPage:
        limit = CONVERSATION_PAGE_DEFAULT if limit <= 0 else min(limit, CONVERSATION_PAGE_MAX)
        after = ConversationCursor.decode(cursor)
        rows = await self._store.conversations(caller.user_id, limit + 1, after)
        items = rows[:limit]
        more = len(rows) > limit
        return ConversationPage(items, ConversationCursor.after(items[-1]).encode() if more else "")

    async def update_conversation(
        self, caller: Caller, conversation: Conversation, pinned: bool | None, muted: bool | None
    ) -> ConversationView:
        view = await self._store.set_flags(caller.user_id, conversation, pinned, muted)
        if view is None:
            raise ImError(NOT_FOUND, "no such conversation: it has no message yet")
        if pinned is not None or muted is not None:  # other devices see it now, or in their next list
            user_id, device_id = caller.user_id, caller.device_id
            self._after_commit.defer(
                "conversation notice", lambda: self._notifier.notify_conversation(user_id, device_id, view)
            )
        return view

    async def recall(self, caller: Caller, msg_id: int) -> RecallResult:
        original = await self._store.message(caller.user_id, msg_id)
        if original is None:
            raise ImError(NOT_FOUND, "no such message in your timeline")
        if original.recalled_by:
            return RecallResult(msg_id, 0, already_recalled=True)
        admin = False
        if original.group_id and (original.sender_id != caller.user_id or self._too_late(original)):
            admin = await self._group_role(original.group_id, caller.user_id) in GROUP_ADMIN_ROLES
        check_recall(original, caller.user_id, self._clock(), admin, self._recall_window_ms)
        event = MessageBody(
            msg_id=self._writer.next_id(),
            sender_id=caller.user_id,
            group_id=original.group_id,
            msg_type=MsgType.RECALL,
            content=recall_content(msg_id, caller.user_id),
        )
        appended = await self._store.recall(msg_id, caller.user_id, event)
        if appended is None:
            return RecallResult(msg_id, 0, already_recalled=True)
        await self._writer.signal(appended, event, caller.device_id)
        return RecallResult(msg_id, appended.seqs.get(caller.user_id, 0))

    async def group_read_counts(
        self, caller: Caller, group_id: int, msg_ids: Sequence[int]
    ) -> list[ReadCount]:
        if not group_id:
            raise ImError(INVALID_ARGUMENT, "group_id is required")
        if len(msg_ids) > READ_COUNT_MAX_IDS:
            raise ImError(INVALID_ARGUMENT, f"at most {READ_COUNT_MAX_IDS} msg_ids per request")
        return await self._store.read_counts(caller.user_id, group_id, msg_ids)

    def _too_late(self, original: StoredMessage) -> bool:
        return self._clock() - original.created_ms > self._recall_window_ms

    async def _group_role(self, group_id: int, user_id: int) -> int:
        return 0 if self._roles is None else await self._roles.group_role(group_id, user_id)
