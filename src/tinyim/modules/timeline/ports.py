"""Ports of the timeline module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tinyim.kernel import Caller, PushTarget
from tinyim.modules.timeline.domain import (
    Appended,
    MessageBody,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    TimelineSlot,
)


class TimelineApi(Protocol):
    """Inbound: what the gateway (locally or over gRPC) asks of the msg role."""

    async def send(self, caller: Caller, req: SendRequest) -> SendResult: ...
    async def sync(self, caller: Caller, after_seq: int, limit: int) -> SyncPage: ...


class TimelineStore(Protocol):
    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        """In ONE transaction: take the next seq of every owner, write the body and every index row.

        Seqs are gapless per owner: a seq becomes visible only after every smaller seq of that owner did.
        When (sender, client_msg_id) is stored already nothing is written and the first result comes back
        with duplicate=True.
        """
        ...

    async def read(self, owner_id: int, after_seq: int, limit: int) -> tuple[list[StoredMessage], bool]:
        """Up to `limit` messages of owner with seq > after_seq in seq order, and whether more follow."""
        ...

    async def max_seq(self, owner_id: int) -> int: ...


class IdGenerator(Protocol):
    def next_id(self) -> int: ...


class MessagingPolicy(Protocol):
    """Who may message whom (the relation module's rules); raises ImError when not allowed."""

    async def check_direct(self, sender_id: int, receiver_id: int) -> None: ...


class PushNotifier(Protocol):
    """Signal online devices that their timeline grew. Must not block on slow clients; may drop signals."""

    async def notify(self, targets: Sequence[PushTarget]) -> None: ...
