"""Ports of the timeline module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tinyim.kernel import Caller, PushTarget
from tinyim.modules.timeline.domain import (
    Appended,
    Conversation,
    MessageBody,
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


class NoticeApi(Protocol):
    """Inbound, server-side only: messages the server writes (SYSTEM, FRIEND_REQ), never sent by clients."""

    async def post_notice(
        self, sender_id: int, receiver_ids: Sequence[int], group_id: int, msg_type: int, content: str
    ) -> None: ...


class TimelineStore(Protocol):
    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        """In ONE transaction: take the next seq of every owner, write the body and every index row.

        Seqs are gapless per owner: a seq becomes visible only after every smaller seq of that owner did.
        When (sender, client_msg_id) is stored already nothing is written and the first result comes back
        with duplicate=True.
        """
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
        """Conversations with messages from others above their read mark."""
        ...


class IdGenerator(Protocol):
    def next_id(self) -> int: ...


class MessagingPolicy(Protocol):
    """Who may message whom (the relation module's rules); raises ImError when not allowed."""

    async def check_direct(self, sender_id: int, receiver_id: int) -> None: ...
    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        """Every member of the group (the sender among them); raises ImError unless sender is a member."""
        ...


class PushNotifier(Protocol):
    """Signal online devices. Must not block on slow clients; may drop signals (clients resync)."""

    async def notify(self, targets: Sequence[PushTarget]) -> None: ...
    async def notify_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        """Tell a user's other devices that a conversation was read up to read_seq."""
        ...


class Attachments(Protocol):
    """Files that FILE / IMAGE messages name (served by the files module). Raises ImError unless the
    content names a finished file the sender may use; afterwards every reader may download it."""

    async def attach(
        self, sender_id: int, msg_type: int, content: str, reader_ids: Sequence[int]
    ) -> None: ...
