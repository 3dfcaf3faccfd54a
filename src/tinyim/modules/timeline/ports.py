"""Ports of the timeline module."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from tinyim.kernel import Caller, PushTarget
from tinyim.modules.timeline.domain import (
    Appended,
    Conversation,
    ConversationCursor,
    ConversationPage,
    ConversationView,
    MessageBody,
    ReadCount,
    RecallResult,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    TimelineSlot,
    Unread,
)


class TimelineApi(Protocol):
    """Inbound: what the gateway (locally or over gRPC) asks of the msg role."""

    async def send(self, caller: Caller, req: SendRequest) -> SendResult: ...
    async def sync(self, caller: Caller, after_seq: int, limit: int, min_seq: int = 0) -> SyncPage: ...
    async def history(
        self, caller: Caller, conversation: Conversation, before_seq: int, limit: int
    ) -> tuple[list[StoredMessage], bool]: ...
    async def mark_read(self, caller: Caller, conversation: Conversation, read_seq: int) -> int: ...
    async def unread(self, caller: Caller) -> list[Unread]: ...

    # conversation list, pin/mute, recall, group read counts
    async def conversations(self, caller: Caller, limit: int, cursor: str) -> ConversationPage: ...
    async def update_conversation(
        self, caller: Caller, conversation: Conversation, pinned: bool | None, muted: bool | None
    ) -> ConversationView: ...
    async def recall(self, caller: Caller, msg_id: int) -> RecallResult: ...
    async def group_read_counts(
        self, caller: Caller, group_id: int, msg_ids: Sequence[int]
    ) -> list[ReadCount]: ...


class BatchTimelineApi(TimelineApi, Protocol):
    """What a msg node serves: the API, plus a batch of sends at once (the internal SendMsgStream)."""

    async def send_many(self, sends: Sequence[tuple[Caller, SendRequest]]) -> list[SendResult | Exception]:
        """Each send as `send` would handle it, answered in order: its result, or the error that it alone
        failed with (a refusal is an ImError). They share a group commit, without a task each."""
        ...


class NoticeApi(Protocol):
    """Inbound, server-side only: messages the server writes (SYSTEM, FRIEND_REQ), never sent by clients."""

    async def post_notice(
        self,
        sender_id: int,
        receiver_ids: Sequence[int],
        group_id: int,
        msg_type: int,
        content: str,
        dedup_key: str = "",
    ) -> None:
        """dedup_key: posted again with the same key (and sender), the notice is not written twice."""
        ...

    async def message_count(self) -> int:
        """Messages stored (admin API: server stats)."""
        ...


class TimelineStore(Protocol):
    async def count_messages(self) -> int:
        """Message bodies stored (admin API: server stats)."""
        ...

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        """In ONE transaction: take the next seq of every owner, write the body and every index row.

        Seqs are gapless per owner: a seq becomes visible only after every smaller seq of that owner did.
        When (sender, client_msg_id) is stored already nothing is written and the first result comes back
        with duplicate=True.
        """
        ...

    async def append_many(
        self, items: Sequence[tuple[MessageBody, Sequence[TimelineSlot]]]
    ) -> list[Appended | Exception]:
        """Each item as `append` writes it (concurrent items may share a transaction), answered in order:
        its result, or the error that it alone failed with."""
        ...

    async def read(
        self, owner_id: int, after_seq: int, limit: int, min_seq: int = 0
    ) -> tuple[list[StoredMessage], bool]:
        """Up to `limit` messages of owner with seq > after_seq in seq order, and whether more follow.

        May read a replica; when that answer does not reach min_seq (a seq the owner was told of), the
        primary answers instead (DESIGN §5.5: a sync right after a notify sees the message).
        """
        ...

    async def max_seq(self, owner_id: int) -> int: ...

    async def history(
        self, owner_id: int, conversation: Conversation, before_seq: int, limit: int
    ) -> tuple[list[StoredMessage], bool]:
        """Up to `limit` messages of one conversation with seq < before_seq (0 = newest), ascending."""
        ...

    async def mark_read(self, owner_id: int, conversation: Conversation, read_seq: int) -> int:
        """Raise the conversation's read mark to read_seq (never lower it); returns the stored mark."""
        ...

    async def unread(self, owner_id: int) -> list[Unread]:
        """Conversations with unread messages (from the conversation list: see `conversations`)."""
        ...

    # ---------- conversation list, read receipts, recall ----------
    # A conversation's view: last message, preview (`preview_of`), unread count (`counts_as_unread`, only
    # above the read mark; `mark_read` recounts), read marks, pinned, muted. A store may keep it as rows
    # that `append` upserts (1:1 in SQL) or compute it when it is read (groups in SQL: one message would
    # otherwise rewrite every member's row); either way the views are the same.

    async def conversations(
        self, owner_id: int, limit: int, after: ConversationCursor | None
    ) -> list[ConversationView]:
        """Up to `limit` conversations in list order (pinned first, newest first) after the cursor."""
        ...

    async def conversation(self, owner_id: int, conversation: Conversation) -> ConversationView | None: ...

    async def set_flags(
        self, owner_id: int, conversation: Conversation, pinned: bool | None, muted: bool | None
    ) -> ConversationView | None:
        """Change pinned/muted (None keeps a flag) of an existing conversation; None when there is none."""
        ...

    async def propagate_read(self, owner_id: int, peer_id: int, read_seq: int) -> int:
        """1:1 read receipt: owner read the conversation with peer up to read_seq (owner's seqs). Raise the
        peer's `peer_read_seq` to the peer's seq of the latest message both have at or below it; returns
        the new mark, or 0 when it did not move."""
        ...

    async def message(self, owner_id: int, msg_id: int) -> StoredMessage | None:
        """The owner's copy of a message, or None when the owner does not have it."""
        ...

    async def recall(self, msg_id: int, recalled_by: int, event: MessageBody) -> Appended | None:
        """In ONE transaction: clear the message's content and mark it recalled, append `event` (a RECALL
        message) to every timeline that holds the message, in the same conversation, and take the
        message out of the unread counts it was in. None when it was recalled before (nothing written)."""
        ...

    async def read_counts(self, sender_id: int, group_id: int, msg_ids: Sequence[int]) -> list[ReadCount]:
        """For each of msg_ids that sender_id sent to group_id: copies held by others, and how many of
        those are at or below their owner's read mark."""
        ...


Tx = TypeVar("Tx", contravariant=True)  # the store's write transaction (a database connection)


class SeqStatement(NamedTuple):
    """`take_many` as one SQL statement: its text, and how its rows give the seq before each block."""

    sql: str
    read: Callable[[Sequence[Sequence[Any]]], dict[int, int]]


class SeqAllocator(Protocol[Tx]):
    """Outbound, for a database timeline store: every owner's next seqs, taken inside the transaction
    `tx` that writes the messages (after their bodies, so a retried client_msg_id takes none)."""

    # Whether concurrent appends may share one transaction (group commit) through `take_many`.
    batches: bool
    # Each write transaction is cut off after this many seconds (None: never), so that a seq's holder is
    # known to be gone after a while (see `visible`).
    txn_timeout: float | None

    async def take(self, tx: Tx, owners: Sequence[int]) -> dict[int, int]:
        """The next seq of each owner (owners in ascending order)."""
        ...

    async def take_many(self, tx: Tx, counts: Mapping[int, int]) -> dict[int, int]:
        """Reserve counts[owner] consecutive seqs of each owner; the seq just before each owner's block.
        Only called when `batches`."""
        ...

    async def take_many_statement(self, tx: Tx, counts: Mapping[int, int]) -> SeqStatement | None:
        """`take_many` as one statement, for the store to send in the round trip of its bodies; None: the
        store calls `take_many`."""
        ...

    async def collided(self, owners: Sequence[int]) -> bool:
        """An (owner, seq) the allocator handed out exists already: repair the counters and say True (the
        append starts over), or False when that cannot happen with this allocator (the error stands)."""
        ...

    async def abandon(self, taken: Mapping[int, range], taken_at: float) -> None:
        """The seqs of each owner that a transaction took at `taken_at` (time.monotonic()) and that are
        known never to commit (it rolled back): readers may pass them at once instead of waiting at the
        hole (see `visible`). Best effort; an allocator without holes does nothing."""
        ...

    async def visible(
        self, owner_id: int, page: list[StoredMessage], after_seq: int, more: bool
    ) -> tuple[list[StoredMessage], bool]:
        """What a reader may see of the owner's page read after `after_seq`: all of it when seqs commit
        in order; else up to a hole that may still fill (with more=True), passing holes too old to fill
        and seqs abandoned by a rolled-back transaction."""
        ...

    async def max_seq(self, owner_id: int) -> int:
        """The owner's highest seq (from the primary)."""
        ...


class IdGenerator(Protocol):
    def next_id(self) -> int: ...


class InlineEncoder(Protocol):
    """The message as each owner's client MessageData (serialized), to ride in the push signal."""

    def __call__(self, message: StoredMessage, seqs: Mapping[int, int]) -> dict[int, bytes]:
        """`message` as seen by its sender; one encoding per owner in `seqs` (owner -> seq)."""
        ...


class MessagingPolicy(Protocol):
    """Who may message whom (the relation module's rules); raises ImError when not allowed."""

    async def check_direct(self, sender_id: int, receiver_id: int) -> None: ...
    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        """Every member of the group (the sender among them); raises ImError unless sender is a member."""
        ...


@runtime_checkable
class KnownRules(Protocol):
    """A MessagingPolicy that can tell, without a call, whether a check would answer from memory (the
    relation module's rules cache). A batch of sends whose checks are all known runs them in turn, with
    no task each; otherwise they run concurrently, so that the misses' calls overlap."""

    def known(self, sender_id: int, receiver_id: int, group_id: int) -> bool: ...


class GroupRoles(Protocol):
    """A member's role in a group (relation's GroupRole value; 0 = not a member). Recall needs it."""

    async def group_role(self, group_id: int, user_id: int) -> int: ...


class PushNotifier(Protocol):
    """Signal online devices. Must not block on slow clients; may drop signals (clients resync)."""

    async def notify(self, targets: Sequence[PushTarget]) -> None: ...
    async def notify_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        """Tell a user's other devices that a conversation was read up to read_seq."""
        ...

    # conversation list, read receipts
    async def notify_receipt(self, user_id: int, peer_id: int, read_seq: int) -> None:
        """Tell user's devices that peer read their 1:1 conversation up to read_seq (user's seqs)."""
        ...

    async def notify_conversation(self, user_id: int, except_device: str, view: ConversationView) -> None:
        """Tell a user's other devices that a conversation was pinned/unpinned or muted/unmuted."""
        ...


class Attachments(Protocol):
    """Files that FILE / IMAGE messages name (served by the files module). Raises ImError unless the
    content names a finished file the sender may use; afterwards every reader may download it."""

    async def attach(
        self, sender_id: int, msg_type: int, content: str, reader_ids: Sequence[int]
    ) -> None: ...
