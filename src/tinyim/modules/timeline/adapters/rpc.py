"""The msg role over gRPC: the servicer (protobuf in, the local TimelineApi and NoticeApi, protobuf out)
and the client adapter (the same ports as the local service) side by side, on the mapping of `protocol.py`.

Sends carry the client's client_msg_id, so a send retried on another msg node (after the first one
died mid-call) returns the first result instead of writing twice.

Sends are batched (`SendMsgBatch`): the client gathers the sends that arrive while its earlier calls are
in flight into one call (infra.batching: no wait when idle, bounded calls in flight and batch size), and
the servicer hands the items to the service together (`send_many`), so the msg node's group commit writes
them in one transaction. Each item is answered on its own: one refused send fails only its caller. A
batch is retried on another node only when every item carries a client_msg_id (then a retry cannot write
twice), so sends with and without one are batched apart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from tinyim.infra import metrics, tracing
from tinyim.infra.batching import CallBatcher
from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.rpc import Channels, Ctx, Registrar, RoleChannels, caller_of, context_of, translate_errors
from tinyim.infra.streams import RoleStreams, StreamUnsupported, answers
from tinyim.kernel import INVALID_ARGUMENT, Caller, ImError
from tinyim.modules.timeline.domain import (
    Conversation,
    ConversationPage,
    ConversationView,
    ReadCount,
    RecallResult,
    SendRequest,
    SendResult,
    StoredMessage,
    SyncPage,
    Unread,
)
from tinyim.modules.timeline.ports import BatchTimelineApi, NoticeApi
from tinyim.modules.timeline.protocol import (
    conversation_info,
    conversation_list_resp,
    conversation_page,
    conversation_view,
    message_data,
    read_count_resp,
    send_resp,
    stored_message,
    sync_resp,
    unread_resp,
    update_flags,
)
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb

log = logging.getLogger(__name__)

SEND_BATCH_MAX_ITEMS = 1024  # a msg node refuses bigger batches (the client sends at most its max_batch)
SEND_STREAM_METHOD = "/im.MsgService/SendMsgStream"


def _send_request(r: pb.MsgSendReq) -> SendRequest:
    return SendRequest(r.receiver_id, r.group_id, int(r.type), r.content, r.client_msg_id)


# ---------- server ----------
def _item_result(item: ipb.SendMsgInternalReq, outcome: SendResult | Exception) -> ipb.SendMsgItemResult:
    """One send of a batch answered on its own: its result, its refusal, or an internal error."""
    if isinstance(outcome, ImError):
        return ipb.SendMsgItemResult(error_code=outcome.code, error_message=outcome.message)
    if isinstance(outcome, Exception):
        tracing.adopt(item.ctx.request_id)  # the log line names the request that failed
        log.error("a batched send failed", exc_info=outcome)
        return ipb.SendMsgItemResult(internal_error=True)
    return ipb.SendMsgItemResult(resp=send_resp(outcome))


class MsgServicer(ipb_grpc.MsgServiceServicer):
    def __init__(self, timeline: BatchTimelineApi, notices: NoticeApi) -> None:
        self._timeline = timeline
        self._notices = notices

    @translate_errors
    async def SendMsg(self, request: ipb.SendMsgInternalReq, context: Ctx) -> pb.MsgSendResp:
        result = await self._timeline.send(caller_of(request.ctx), _send_request(request.msg_req))
        return send_resp(result)

    @translate_errors
    async def SendMsgBatch(self, request: ipb.SendMsgBatchReq, context: Ctx) -> ipb.SendMsgBatchResp:
        if len(request.items) > SEND_BATCH_MAX_ITEMS:
            raise ImError(INVALID_ARGUMENT, f"at most {SEND_BATCH_MAX_ITEMS} sends per batch")
        return await self._send_batch(request)

    async def SendMsgStream(
        self, requests: AsyncIterator[ipb.SendMsgBatchReq], context: Ctx
    ) -> AsyncIterator[ipb.SendMsgBatchResp]:
        """SendMsgBatch's batches on one long-lived stream, each answered (tagged) as it finishes."""
        async for answer in answers(requests, self._streamed_batch):
            yield answer

    async def _streamed_batch(self, request: ipb.SendMsgBatchReq) -> ipb.SendMsgBatchResp:
        started = time.perf_counter()
        code = "OK"
        try:
            if len(request.items) > SEND_BATCH_MAX_ITEMS:  # every item refused, the stream lives on
                code = grpc.StatusCode.INVALID_ARGUMENT.name
                refused = ipb.SendMsgItemResult(
                    error_code=INVALID_ARGUMENT,
                    error_message=f"at most {SEND_BATCH_MAX_ITEMS} sends per batch",
                )
                return ipb.SendMsgBatchResp(results=[refused] * len(request.items), batch_id=request.batch_id)
            answer = await self._send_batch(request)
            answer.batch_id = request.batch_id
            return answer
        finally:  # a batch on the stream counts as a call served (the calls-per-message figures)
            metrics.labelled(metrics.GRPC_SERVER_SECONDS, SEND_STREAM_METHOD, code).observe(
                time.perf_counter() - started
            )

    async def _send_batch(self, request: ipb.SendMsgBatchReq) -> ipb.SendMsgBatchResp:
        # together: the sends share one group commit, without a task each
        outcomes = await self._timeline.send_many(
            [(caller_of(item.ctx), _send_request(item.msg_req)) for item in request.items]
        )
        return ipb.SendMsgBatchResp(
            results=[_item_result(item, o) for item, o in zip(request.items, outcomes, strict=True)]
        )

    @translate_errors
    async def SyncMsg(self, request: ipb.SyncMsgInternalReq, context: Ctx) -> pb.MsgSyncResp:
        r = request.sync_req
        return sync_resp(
            await self._timeline.sync(caller_of(request.ctx), r.local_max_seq, r.limit, r.min_seq)
        )

    @translate_errors
    async def GetHistory(self, request: ipb.HistoryInternalReq, context: Ctx) -> pb.MsgHistoryResp:
        r = request.req
        conversation = Conversation.of(r.peer_id, r.group_id)
        messages, more = await self._timeline.history(
            caller_of(request.ctx), conversation, r.before_seq, r.limit
        )
        return pb.MsgHistoryResp(msgs=[message_data(m) for m in messages], has_more=more)

    @translate_errors
    async def MarkRead(self, request: ipb.ReadInternalReq, context: Ctx) -> pb.MsgReadResp:
        r = request.req
        conversation = Conversation.of(r.peer_id, r.group_id)
        return pb.MsgReadResp(
            read_seq=await self._timeline.mark_read(caller_of(request.ctx), conversation, r.read_seq)
        )

    @translate_errors
    async def GetUnread(self, request: ipb.UnreadInternalReq, context: Ctx) -> pb.UnreadResp:
        return unread_resp(await self._timeline.unread(caller_of(request.ctx)))

    @translate_errors
    async def PostNotice(self, request: ipb.PostNoticeReq, context: Ctx) -> ipb.Ack:
        await self._notices.post_notice(
            request.sender_id,
            list(request.receiver_ids),
            request.group_id,
            request.msg_type,
            request.content,
            request.dedup_key,
        )
        return ipb.Ack()

    @translate_errors
    async def CountMessages(self, request: ipb.Ack, context: Ctx) -> ipb.Count:
        return ipb.Count(count=await self._notices.message_count())

    # conversation list, pin/mute, recall, group read counts
    @translate_errors
    async def ListConversations(
        self, request: ipb.ConvListInternalReq, context: Ctx
    ) -> pb.ConversationListResp:
        r = request.req
        return conversation_list_resp(
            await self._timeline.conversations(caller_of(request.ctx), r.limit, r.cursor)
        )

    @translate_errors
    async def UpdateConversation(
        self, request: ipb.ConvUpdateInternalReq, context: Ctx
    ) -> pb.ConversationUpdateResp:
        r = request.req
        pinned, muted = update_flags(r)
        view = await self._timeline.update_conversation(
            caller_of(request.ctx), Conversation.of(r.peer_id, r.group_id), pinned, muted
        )
        return pb.ConversationUpdateResp(conversation=conversation_info(view))

    @translate_errors
    async def Recall(self, request: ipb.RecallInternalReq, context: Ctx) -> pb.MsgRecallResp:
        result = await self._timeline.recall(caller_of(request.ctx), request.req.msg_id)
        return pb.MsgRecallResp(already_recalled=result.already_recalled, seq_id=result.seq_id)

    @translate_errors
    async def GroupReadCount(
        self, request: ipb.GroupReadCountInternalReq, context: Ctx
    ) -> pb.GroupReadCountResp:
        r = request.req
        return read_count_resp(
            await self._timeline.group_read_counts(caller_of(request.ctx), r.group_id, list(r.msg_ids))
        )


def msg_registrar(timeline: BatchTimelineApi, notices: NoticeApi) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_MsgServiceServicer_to_server(MsgServicer(timeline, notices), server)
        return ["im.MsgService"]

    return register


# ---------- client ----------
class GrpcTimelineClient:
    @classmethod
    def connect(
        cls,
        directory: NodeDirectory,
        channels: Channels,
        deadline_seconds: float,
        send_calls_in_flight: int = 1,
        send_batch_max: int = 64,
        on_send_batch: Callable[[int], None] | None = None,
        send_stream: bool = True,
        send_linger_seconds: float = 0.0,
    ) -> GrpcTimelineClient:
        """The client of the `msg` role's live nodes (the registry finds them), over typed stubs."""
        remote = RoleChannels("msg", directory, channels, ipb_grpc.MsgServiceStub, deadline_seconds)
        return cls(
            remote, send_calls_in_flight, send_batch_max, on_send_batch, send_stream, send_linger_seconds
        )

    def __init__(
        self,
        remote: RoleChannels[ipb_grpc.MsgServiceAsyncStub],
        send_calls_in_flight: int = 1,
        send_batch_max: int = 64,
        on_send_batch: Callable[[int], None] | None = None,
        send_stream: bool = True,
        send_linger_seconds: float = 0.0,
    ) -> None:
        self._remote = remote
        # Batches go on one SendMsgStream per msg node (no per-call set-up), or as SendMsgBatch calls.
        self._streams: RoleStreams[ipb_grpc.MsgServiceAsyncStub, ipb.SendMsgBatchReq, ipb.SendMsgBatchResp]
        self._streams = RoleStreams(remote, lambda stub: stub.SendMsgStream(), SEND_STREAM_METHOD)
        self._use_stream = send_stream
        # Sends with a client_msg_id and sends without batch apart: a batch is retried on another node
        # only when every item has one, so an id-less send must not take that retry from the others.
        self._sends: dict[bool, CallBatcher[ipb.SendMsgInternalReq, SendResult]] = {
            retryable: CallBatcher(
                self._send_batch, send_calls_in_flight, send_batch_max, on_send_batch, send_linger_seconds
            )
            for retryable in (True, False)
        }

    async def send(self, caller: Caller, req: SendRequest) -> SendResult:
        msg = pb.MsgSendReq(
            receiver_id=req.receiver_id,
            group_id=req.group_id,
            type=pb.MsgType.ValueType(req.msg_type),
            content=req.content,
            client_msg_id=req.client_msg_id,
        )
        ctx = context_of(caller)
        ctx.request_id = tracing.current()  # a batch has many requests: each item carries its own id
        item = ipb.SendMsgInternalReq(ctx=ctx, msg_req=msg)
        return await self._sends[bool(req.client_msg_id)].call(item)

    async def _send_batch(self, items: list[ipb.SendMsgInternalReq]) -> list[SendResult | BaseException]:
        request = ipb.SendMsgBatchReq(items=items)
        idempotent = all(item.msg_req.client_msg_id for item in items)
        if self._use_stream:
            try:
                answer = await self._streams.invoke(request, idempotent=idempotent)
                return [_send_outcome(x) for x in answer.results]
            except StreamUnsupported:  # a msg node of an earlier release: unary calls from now on
                log.info("msg nodes do not serve SendMsgStream; sending batches as unary calls")
                self._use_stream = False
        try:
            r = await self._remote.invoke(
                lambda s, t: s.SendMsgBatch(request, timeout=t), idempotent=idempotent
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            # a msg node of an earlier release (a rolling upgrade): one call per send, as it knows
            return await asyncio.gather(*(self._send_one(item) for item in items), return_exceptions=True)
        return [_send_outcome(x) for x in r.results]

    async def _send_one(self, item: ipb.SendMsgInternalReq) -> SendResult:
        r = await self._remote.invoke(
            lambda s, t: s.SendMsg(item, timeout=t), idempotent=bool(item.msg_req.client_msg_id)
        )
        return _send_result(r)

    async def sync(self, caller: Caller, after_seq: int, limit: int, min_seq: int = 0) -> SyncPage:
        req = pb.MsgSyncReq(local_max_seq=after_seq, limit=limit, min_seq=min_seq)
        r = await self._remote.invoke(
            lambda s, t: s.SyncMsg(ipb.SyncMsgInternalReq(ctx=context_of(caller), sync_req=req), timeout=t)
        )
        return SyncPage(r.max_seq, [stored_message(m) for m in r.msgs], r.has_more)

    async def history(
        self, caller: Caller, conversation: Conversation, before_seq: int, limit: int
    ) -> tuple[list[StoredMessage], bool]:
        peer_id, group_id = conversation.peer_and_group
        req = pb.MsgHistoryReq(peer_id=peer_id, group_id=group_id, before_seq=before_seq, limit=limit)
        r = await self._remote.invoke(
            lambda s, t: s.GetHistory(ipb.HistoryInternalReq(ctx=context_of(caller), req=req), timeout=t)
        )
        return [stored_message(m) for m in r.msgs], r.has_more

    async def mark_read(self, caller: Caller, conversation: Conversation, read_seq: int) -> int:
        peer_id, group_id = conversation.peer_and_group
        req = pb.MsgReadReq(peer_id=peer_id, group_id=group_id, read_seq=read_seq)
        r = await self._remote.invoke(
            lambda s, t: s.MarkRead(ipb.ReadInternalReq(ctx=context_of(caller), req=req), timeout=t)
        )
        return int(r.read_seq)

    async def unread(self, caller: Caller) -> list[Unread]:
        r = await self._remote.invoke(
            lambda s, t: s.GetUnread(ipb.UnreadInternalReq(ctx=context_of(caller)), timeout=t)
        )
        return [
            Unread(Conversation.of(c.peer_id, c.group_id), c.unread, c.last_seq, c.read_seq)
            for c in r.conversations
        ]

    async def post_notice(
        self,
        sender_id: int,
        receiver_ids: Sequence[int],
        group_id: int,
        msg_type: int,
        content: str,
        dedup_key: str = "",
    ) -> None:
        req = ipb.PostNoticeReq(
            sender_id=sender_id,
            receiver_ids=list(receiver_ids),
            group_id=group_id,
            msg_type=msg_type,
            content=content,
            dedup_key=dedup_key,
        )
        # with a key the timeline writes it once, so a retry on another msg node is safe
        await self._remote.invoke(lambda s, t: s.PostNotice(req, timeout=t), idempotent=bool(dedup_key))

    async def message_count(self) -> int:
        return int((await self._remote.invoke(lambda s, t: s.CountMessages(ipb.Ack(), timeout=t))).count)

    # conversation list, pin/mute, recall, group read counts
    async def conversations(self, caller: Caller, limit: int, cursor: str) -> ConversationPage:
        req = pb.ConversationListReq(limit=limit, cursor=cursor)
        r = await self._remote.invoke(
            lambda s, t: s.ListConversations(
                ipb.ConvListInternalReq(ctx=context_of(caller), req=req), timeout=t
            )
        )
        return conversation_page(r)

    async def update_conversation(
        self, caller: Caller, conversation: Conversation, pinned: bool | None, muted: bool | None
    ) -> ConversationView:
        peer_id, group_id = conversation.peer_and_group
        req = pb.ConversationUpdateReq(peer_id=peer_id, group_id=group_id)
        if pinned is not None:
            req.pinned = pinned
        if muted is not None:
            req.muted = muted
        r = await self._remote.invoke(
            lambda s, t: s.UpdateConversation(
                ipb.ConvUpdateInternalReq(ctx=context_of(caller), req=req), timeout=t
            ),
            idempotent=True,
        )
        return conversation_view(r.conversation)

    async def recall(self, caller: Caller, msg_id: int) -> RecallResult:
        # idempotent: a retry of a recall that went through answers already_recalled
        r = await self._remote.invoke(
            lambda s, t: s.Recall(
                ipb.RecallInternalReq(ctx=context_of(caller), req=pb.MsgRecallReq(msg_id=msg_id)), timeout=t
            ),
            idempotent=True,
        )
        return RecallResult(msg_id, r.seq_id, r.already_recalled)

    async def group_read_counts(
        self, caller: Caller, group_id: int, msg_ids: Sequence[int]
    ) -> list[ReadCount]:
        req = pb.GroupReadCountReq(group_id=group_id, msg_ids=list(msg_ids))
        r = await self._remote.invoke(
            lambda s, t: s.GroupReadCount(
                ipb.GroupReadCountInternalReq(ctx=context_of(caller), req=req), timeout=t
            )
        )
        return [ReadCount(c.msg_id, c.read, c.total) for c in r.counts]


def _send_result(r: pb.MsgSendResp) -> SendResult:
    return SendResult(r.msg_id, r.seq_id, r.send_time, r.duplicate)


def _send_outcome(r: ipb.SendMsgItemResult) -> SendResult | BaseException:
    """One item of a batch's answer: its result, or the error its caller gets (as from SendMsg)."""
    if r.error_code:
        return ImError(r.error_code, r.error_message)
    if r.internal_error or not r.HasField("resp"):
        return RuntimeError("the msg node failed this send (internal error)")
    return _send_result(r.resp)
