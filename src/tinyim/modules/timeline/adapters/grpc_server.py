"""MsgService over gRPC: the timeline's TimelineApi and NoticeApi, protobuf in and out."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from tinyim.infra.rpc import Ctx, Registrar, caller_of, translate_errors
from tinyim.modules.timeline.domain import Conversation, SendRequest
from tinyim.modules.timeline.ports import NoticeApi, TimelineApi
from tinyim.modules.timeline.protocol import (
    conversation_info,
    conversation_list_resp,
    message_data,
    read_count_resp,
    send_resp,
    sync_resp,
    unread_resp,
    update_flags,
)
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb


class MsgServicer(ipb_grpc.MsgServiceServicer):
    def __init__(self, timeline: TimelineApi, notices: NoticeApi) -> None:
        self._timeline = timeline
        self._notices = notices

    @translate_errors
    async def SendMsg(self, request: ipb.SendMsgInternalReq, context: Ctx) -> pb.MsgSendResp:
        r = request.msg_req
        result = await self._timeline.send(
            caller_of(request.ctx),
            SendRequest(r.receiver_id, r.group_id, int(r.type), r.content, r.client_msg_id),
        )
        return send_resp(result)

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


def msg_registrar(timeline: TimelineApi, notices: NoticeApi) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_MsgServiceServicer_to_server(MsgServicer(timeline, notices), server)
        return ["im.MsgService"]

    return register
