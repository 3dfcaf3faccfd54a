"""GatewayLink over gRPC: one call to the gateway that holds the connections (GatewayService).

The gateway is found by id in the registry. A gateway that is gone (expired, or refusing connections)
costs nothing more than a log line: push is only a hint, and its clients resync when they reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import grpc

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.rpc import Channels, node_call
from tinyim.kernel import PushTarget
from tinyim.modules.presence.domain import StatusView
from tinyim.modules.presence.protocol import status_info
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb

log = logging.getLogger(__name__)


class GrpcGatewayLink:
    def __init__(self, directory: NodeDirectory, channels: Channels, deadline_seconds: float = 2.0) -> None:
        self._directory = directory
        self._channels = channels
        self._deadline = deadline_seconds

    async def _call(
        self, gateway_id: str, call: Callable[[ipb_grpc.GatewayServiceAsyncStub, float], Awaitable[object]]
    ) -> None:
        node = await self._directory.node("gateway", gateway_id)
        if node is None:
            log.info("gateway %s is not registered; signal dropped", gateway_id)
            return
        try:
            await node_call(self._channels, node, ipb_grpc.GatewayServiceStub, call, self._deadline)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self._directory.suspect(node)
            raise

    async def push(self, gateway_id: str, targets: Sequence[PushTarget]) -> None:
        batch = [
            ipb.PushTarget(
                user_id=t.user_id, max_seq_id=t.max_seq, except_device=t.except_device, message=t.message
            )
            for t in targets
        ]
        await self._call(
            gateway_id, lambda s, t: s.PushNotify(ipb.PushNotifyInternalReq(batch=batch), timeout=t)
        )

    async def kick(
        self, gateway_id: str, user_id: int, device_id: str, keep_token_id: str, reason: str
    ) -> None:
        req = ipb.KickUserInternalReq(
            user_id=user_id, reason=reason, device_id=device_id, keep_token_id=keep_token_id
        )
        await self._call(gateway_id, lambda s, t: s.KickUser(req, timeout=t))

    async def push_read(
        self, gateway_id: str, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        notify = pb.ReadNotify(peer_id=peer_id, group_id=group_id, read_seq=read_seq)
        req = ipb.PushReadInternalReq(user_id=user_id, except_device=except_device, notify=notify)
        await self._call(gateway_id, lambda s, t: s.PushRead(req, timeout=t))

    # a client frame for a user's devices (read receipts, conversation changes)
    async def push_event(
        self, gateway_id: str, user_id: int, except_device: str, cmd: int, body: bytes
    ) -> None:
        req = ipb.PushEventReq(user_id=user_id, except_device=except_device, cmd=cmd, body=body)
        await self._call(gateway_id, lambda s, t: s.PushEvent(req, timeout=t))

    # online status and typing
    async def push_status(self, gateway_id: str, user_ids: Sequence[int], status: StatusView) -> None:
        req = ipb.PushStatusInternalReq(user_ids=list(user_ids), status=status_info(status))
        await self._call(gateway_id, lambda s, t: s.PushStatus(req, timeout=t))

    async def push_typing(self, gateway_id: str, user_id: int, from_user_id: int, stopped: bool) -> None:
        notify = pb.TypingNotify(user_id=from_user_id, stopped=stopped)
        await self._call(
            gateway_id,
            lambda s, t: s.PushTyping(ipb.PushTypingInternalReq(user_id=user_id, notify=notify), timeout=t),
        )
