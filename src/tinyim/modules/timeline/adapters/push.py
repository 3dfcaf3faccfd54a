"""PushNotifier on a router of client frames: read receipts and conversation changes become client push
frames (ReceiptNotify, ConversationNotify) for one user's devices; message signals and read notices pass
through. The router is presence's (wired by the composition root), which finds the user's gateways."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tinyim.kernel import PushTarget
from tinyim.modules.timeline.domain import ConversationView
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd


class FrameRouter(Protocol):
    async def notify(self, targets: Sequence[PushTarget]) -> None: ...
    async def notify_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None: ...
    async def notify_event(self, user_id: int, except_device: str, cmd: int, body: bytes) -> None: ...


class FramePushNotifier:
    def __init__(self, router: FrameRouter) -> None:
        self._router = router

    async def notify(self, targets: Sequence[PushTarget]) -> None:
        await self._router.notify(targets)

    async def notify_read(
        self, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        await self._router.notify_read(user_id, except_device, peer_id, group_id, read_seq)

    async def notify_receipt(self, user_id: int, peer_id: int, read_seq: int) -> None:
        body = pb.ReceiptNotify(peer_id=peer_id, read_seq=read_seq).SerializeToString()
        await self._router.notify_event(user_id, "", Cmd.CMD_RECEIPT_NOTIFY, body)

    async def notify_conversation(self, user_id: int, except_device: str, view: ConversationView) -> None:
        peer_id, group_id = view.conversation.peer_and_group
        body = pb.ConversationNotify(
            peer_id=peer_id, group_id=group_id, pinned=view.pinned, muted=view.muted
        ).SerializeToString()
        await self._router.notify_event(user_id, except_device, Cmd.CMD_CONV_NOTIFY, body)
