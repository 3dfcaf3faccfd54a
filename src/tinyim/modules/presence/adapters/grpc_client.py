"""GatewayLink over gRPC: one call to the gateway that holds the connections (GatewayService).

The gateway is found by id in the registry. A gateway that is gone (expired, or refusing connections)
costs nothing more than a log line: push is only a hint, and its clients resync when they reconnect.

Message signals (the hot path: one batch per commit and gateway) go on one long-lived PushStream per
gateway, written and never answered one by one: no per-call set-up. A write that fails (the gateway died,
the stream broke, it did not take the batch within the deadline) raises like a failed call; the next
push to that gateway opens a new stream.

A stream is written only once the gateway meant has answered its opening (it sends its id in headers at
once): a channel that reconnected to an address another process has taken over since (a container
restarted and the addresses were handed out again) gets UNIMPLEMENTED from another role, or another
gateway's id, and a batch written there would vanish while its recipients, connected to the real
gateway, wait for a signal that never comes. So such an opening renews the channel (resolving the name
again) and tries once more. A second UNIMPLEMENTED means a gateway of an earlier release, which gets
PushNotify calls from then on, and only that gateway (a rolling upgrade runs both releases side by
side); a second wrong id fails the push (logged, as pushes may be lost).

The unary calls (kicks, read receipts, events, status, PushNotify) name the gateway meant in their
metadata: another gateway at that address refuses them as UNIMPLEMENTED, and the call renews the channel
and goes once more (`node_call`), instead of kicking or signalling nobody there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.registry import Node
from tinyim.infra.rpc import Channels, node_call
from tinyim.kernel import UNAVAILABLE, ImError, PushTarget
from tinyim.modules.presence.domain import StatusView
from tinyim.modules.presence.protocol import addressed_to, answering_gateway, status_info
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]
# a call on the stub, given its deadline and the metadata that names the gateway meant
_UnaryCall = Callable[["ipb_grpc.GatewayServiceAsyncStub", float, Metadata], Awaitable[object]]


def _result(task: asyncio.Future[T]) -> T | None:
    """A finished task's result; None when it is not done, was cancelled or failed."""
    if not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()


class _PushStream:
    def __init__(self, call: grpc.aio.StreamUnaryCall[ipb.PushNotifyInternalReq, ipb.Ack]) -> None:
        self.call = call
        self.lock = asyncio.Lock()  # grpc.aio allows one write in progress per call
        # the gateway's headers (or the call's end): a task, so that giving up waiting leaves the call be
        self.answered = asyncio.ensure_future(call.initial_metadata())


PUSH_REQUEST_MAX_BYTES = 1 << 20  # far under gRPC's 4 MiB receive limit; a busy big group's push can pass it


def push_requests(
    targets: Sequence[PushTarget], max_bytes: int = PUSH_REQUEST_MAX_BYTES
) -> list[ipb.PushNotifyInternalReq]:
    """The targets as PushNotify requests of at most ~max_bytes each, in order (a request past gRPC's
    receive limit would be refused whole: every member of a big group would have to sync)."""
    requests: list[ipb.PushNotifyInternalReq] = []
    batch: list[ipb.PushTarget] = []
    size = 0
    for t in targets:
        cost = len(t.message) + len(t.except_device) + 32  # the fields' tags, lengths and varints
        if batch and size + cost > max_bytes:
            requests.append(ipb.PushNotifyInternalReq(batch=batch))
            batch, size = [], 0
        batch.append(
            ipb.PushTarget(
                user_id=t.user_id, max_seq_id=t.max_seq, except_device=t.except_device, message=t.message
            )
        )
        size += cost
    if batch:
        requests.append(ipb.PushNotifyInternalReq(batch=batch))
    return requests


class GrpcGatewayLink:
    def __init__(
        self,
        directory: NodeDirectory,
        channels: Channels,
        deadline_seconds: float = 2.0,
        push_stream: bool = True,
    ) -> None:
        self._directory = directory
        self._channels = channels
        self._deadline = deadline_seconds
        self._push_stream = push_stream  # message signals on PushStream (False: PushNotify calls)
        self._streams: dict[tuple[str, str], _PushStream] = {}  # (node id, target) -> its push stream
        self._without_streams: set[tuple[str, str]] = set()  # gateways of an earlier release

    async def _call(self, gateway_id: str, call: _UnaryCall) -> None:
        """One unary call, addressed to the gateway (another one at its address refuses it)."""
        node = await self._directory.node("gateway", gateway_id)
        if node is None:
            log.info("gateway %s is not registered; signal dropped", gateway_id)
            return
        metadata = addressed_to(node.node_id)
        try:
            await node_call(
                self._channels,
                node,
                ipb_grpc.GatewayServiceStub,
                lambda stub, timeout: call(stub, timeout, metadata),
                self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self._directory.suspect(node)
            raise

    async def push(self, gateway_id: str, targets: Sequence[PushTarget]) -> None:
        for request in push_requests(targets):
            await self._push(gateway_id, request)

    async def _push(self, gateway_id: str, request: ipb.PushNotifyInternalReq) -> None:
        if self._push_stream:
            node = await self._directory.node("gateway", gateway_id)
            if node is None:
                log.info("gateway %s is not registered; signal dropped", gateway_id)
                return
            if (node.node_id, node.grpc_target) not in self._without_streams and await self._stream_push(
                node, request
            ):
                return
        await self._call(gateway_id, lambda s, t, m: s.PushNotify(request, timeout=t, metadata=m))

    async def _stream_push(self, node: Node, request: ipb.PushNotifyInternalReq) -> bool:
        """Write the batch on the node's push stream; False: the gateway has no PushStream (use calls)."""
        key = (node.node_id, node.grpc_target)
        stream = self._streams.get(key)
        if stream is not None and stream.call.done():
            self._streams.pop(key, None)
            await self._ended(node, stream)
            stream = None
        if stream is None:
            opened = await self._open_stream(node)
            if opened is None:
                return False
            stream = self._streams[key] = opened
        try:
            async with stream.lock, asyncio.timeout(self._deadline):
                await stream.call.write(request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError):
            self._streams.pop(key, None)
            stream.call.cancel()
            if stream.call.done():
                await self._ended(node, stream)
            raise
        return True

    async def _open_stream(self, node: Node) -> _PushStream | None:
        """A push stream the gateway has answered (see the module's docstring); None: it has none."""
        for attempt in (1, 2):
            stub = ipb_grpc.GatewayServiceStub(self._channels.get(node.grpc_target))
            stream = _PushStream(stub.PushStream())
            await asyncio.wait({stream.answered}, timeout=self._deadline)
            if not stream.answered.done():
                # no headers within the deadline (a busy gateway, or a release that sends them only at
                # the end): written to, as before
                return stream
            headers = _result(stream.answered)
            answering = answering_gateway(headers)
            if answering == node.node_id:
                return stream
            if answering is not None:  # another gateway took the address: never write there
                stream.call.cancel()
                if attempt == 2:
                    raise ImError(UNAVAILABLE, f"gateway {node.node_id}'s address answers as {answering}")
            else:  # headers without an id: the call is over (trailers only); why?
                ended = asyncio.ensure_future(stream.call.code())
                await asyncio.wait({ended}, timeout=self._deadline)
                if _result(ended) != grpc.StatusCode.UNIMPLEMENTED:
                    return stream  # failed (unreachable): the write raises that
            if attempt == 1:
                log.warning("gateway %s answered as another service; reconnecting", node.node_id)
                self._channels.renew(node.grpc_target)
        log.info("gateway %s has no PushStream; pushing to it with PushNotify calls", node.node_id)
        self._without_streams.add((node.node_id, node.grpc_target))
        return None

    async def _ended(self, node: Node, stream: _PushStream) -> None:
        """A push stream is over; the next push opens another (a dead gateway is set aside meanwhile)."""
        if await stream.call.code() == grpc.StatusCode.UNAVAILABLE:
            self._directory.suspect(node)

    async def kick(
        self, gateway_id: str, user_id: int, device_id: str, keep_token_id: str, reason: str
    ) -> None:
        req = ipb.KickUserInternalReq(
            user_id=user_id, reason=reason, device_id=device_id, keep_token_id=keep_token_id
        )
        await self._call(gateway_id, lambda s, t, m: s.KickUser(req, timeout=t, metadata=m))

    async def push_read(
        self, gateway_id: str, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        notify = pb.ReadNotify(peer_id=peer_id, group_id=group_id, read_seq=read_seq)
        req = ipb.PushReadInternalReq(user_id=user_id, except_device=except_device, notify=notify)
        await self._call(gateway_id, lambda s, t, m: s.PushRead(req, timeout=t, metadata=m))

    # a client frame for a user's devices (read receipts, conversation changes)
    async def push_event(
        self, gateway_id: str, user_id: int, except_device: str, cmd: int, body: bytes
    ) -> None:
        req = ipb.PushEventReq(user_id=user_id, except_device=except_device, cmd=cmd, body=body)
        await self._call(gateway_id, lambda s, t, m: s.PushEvent(req, timeout=t, metadata=m))

    # online status and typing
    async def push_status(self, gateway_id: str, user_ids: Sequence[int], status: StatusView) -> None:
        req = ipb.PushStatusInternalReq(user_ids=list(user_ids), status=status_info(status))
        await self._call(gateway_id, lambda s, t, m: s.PushStatus(req, timeout=t, metadata=m))

    async def push_typing(self, gateway_id: str, user_id: int, from_user_id: int, stopped: bool) -> None:
        notify = pb.TypingNotify(user_id=from_user_id, stopped=stopped)
        await self._call(
            gateway_id,
            lambda s, t, m: s.PushTyping(
                ipb.PushTypingInternalReq(user_id=user_id, notify=notify), timeout=t, metadata=m
            ),
        )
