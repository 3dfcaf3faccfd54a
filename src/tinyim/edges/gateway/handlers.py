"""Request handlers: protobuf in, module call with the session's identity, protobuf out.

Failures raise ImError (or FrameError); the router turns them into ErrorResp frames. Identities always
come from the connection, never from a body field.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message

from tinyim.infra import metrics
from tinyim.kernel import Caller
from tinyim.modules.files import FileApi
from tinyim.modules.files.protocol import download_resp, upload_request, upload_resp
from tinyim.modules.relation import RelationApi
from tinyim.modules.relation.protocol import group_info, group_members_resp, user_info
from tinyim.modules.timeline import Conversation, SendRequest, TimelineApi
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
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd

from .connection import Connection
from .hub import GatewayHub

Handler = Callable[[Connection, Any], Awaitable[Message]]
# request cmd -> (handler, response cmd)
HandlerTable = dict[int, tuple[Handler, int]]


def caller(conn: Connection) -> Caller:
    return Caller(conn.user_id, conn.device_id)


def session_handlers(hub: GatewayHub) -> HandlerTable:
    async def heartbeat(conn: Connection, _req: pb.HeartbeatReq) -> Message:
        await hub.heartbeat(conn)
        return pb.HeartbeatResp(server_time=int(time.time() * 1000))

    return {Cmd.CMD_HEARTBEAT_REQ: (heartbeat, Cmd.CMD_HEARTBEAT_RESP)}


def message_handlers(timeline: TimelineApi) -> HandlerTable:
    async def send(conn: Connection, req: pb.MsgSendReq) -> Message:
        result = await timeline.send(
            caller(conn),
            SendRequest(req.receiver_id, req.group_id, int(req.type), req.content, req.client_msg_id),
        )
        metrics.MESSAGES_SENT.inc(0 if result.duplicate else 1)
        return send_resp(result)

    async def sync(conn: Connection, req: pb.MsgSyncReq) -> Message:
        # req.user_id is ignored on purpose: a session reads its own timeline only.
        return sync_resp(await timeline.sync(caller(conn), req.local_max_seq, req.limit, req.min_seq))

    async def history(conn: Connection, req: pb.MsgHistoryReq) -> Message:
        conversation = Conversation.of(req.peer_id, req.group_id)
        messages, has_more = await timeline.history(caller(conn), conversation, req.before_seq, req.limit)
        return pb.MsgHistoryResp(msgs=[message_data(m) for m in messages], has_more=has_more)

    async def read(conn: Connection, req: pb.MsgReadReq) -> Message:
        conversation = Conversation.of(req.peer_id, req.group_id)
        return pb.MsgReadResp(read_seq=await timeline.mark_read(caller(conn), conversation, req.read_seq))

    async def unread(conn: Connection, _req: pb.UnreadReq) -> Message:
        return unread_resp(await timeline.unread(caller(conn)))

    return {
        Cmd.CMD_MSG_SEND_REQ: (send, Cmd.CMD_MSG_SEND_RESP),
        Cmd.CMD_MSG_SYNC_REQ: (sync, Cmd.CMD_MSG_SYNC_RESP),
        Cmd.CMD_MSG_HISTORY_REQ: (history, Cmd.CMD_MSG_HISTORY_RESP),
        Cmd.CMD_MSG_READ_REQ: (read, Cmd.CMD_MSG_READ_RESP),
        Cmd.CMD_UNREAD_REQ: (unread, Cmd.CMD_UNREAD_RESP),
    }


def conversation_handlers(timeline: TimelineApi) -> HandlerTable:
    """Conversation list, pin/mute, recall, group read counts."""

    async def conversations(conn: Connection, req: pb.ConversationListReq) -> Message:
        return conversation_list_resp(await timeline.conversations(caller(conn), req.limit, req.cursor))

    async def update(conn: Connection, req: pb.ConversationUpdateReq) -> Message:
        pinned, muted = update_flags(req)
        conversation = Conversation.of(req.peer_id, req.group_id)
        view = await timeline.update_conversation(caller(conn), conversation, pinned, muted)
        return pb.ConversationUpdateResp(conversation=conversation_info(view))

    async def recall(conn: Connection, req: pb.MsgRecallReq) -> Message:
        result = await timeline.recall(caller(conn), req.msg_id)
        return pb.MsgRecallResp(already_recalled=result.already_recalled, seq_id=result.seq_id)

    async def read_count(conn: Connection, req: pb.GroupReadCountReq) -> Message:
        return read_count_resp(
            await timeline.group_read_counts(caller(conn), req.group_id, list(req.msg_ids))
        )

    return {
        Cmd.CMD_CONV_LIST_REQ: (conversations, Cmd.CMD_CONV_LIST_RESP),
        Cmd.CMD_CONV_UPDATE_REQ: (update, Cmd.CMD_CONV_UPDATE_RESP),
        Cmd.CMD_MSG_RECALL_REQ: (recall, Cmd.CMD_MSG_RECALL_RESP),
        Cmd.CMD_GROUP_READ_COUNT_REQ: (read_count, Cmd.CMD_GROUP_READ_COUNT_RESP),
    }


def social_handlers(relation: RelationApi) -> HandlerTable:
    async def apply(conn: Connection, req: pb.FriendApplyReq) -> Message:
        now_friends = await relation.apply_friend(caller(conn), req.target_user_id, req.reason)
        return pb.FriendApplyResp(success=True, now_friends=now_friends)

    async def handle(conn: Connection, req: pb.FriendHandleReq) -> Message:
        await relation.handle_friend(caller(conn), req.request_user_id, req.agree)
        return pb.FriendHandleResp(success=True)

    async def friends(conn: Connection, _req: pb.FriendListReq) -> Message:
        return pb.FriendListResp(friends=[user_info(p) for p in await relation.friends(caller(conn))])

    async def delete(conn: Connection, req: pb.FriendDelReq) -> Message:
        await relation.delete_friend(caller(conn), req.friend_id)
        return pb.FriendDelResp(success=True)

    async def block(conn: Connection, req: pb.BlacklistAddReq) -> Message:
        await relation.block(caller(conn), req.user_id)
        return pb.BlacklistAddResp(success=True)

    async def unblock(conn: Connection, req: pb.BlacklistDelReq) -> Message:
        await relation.unblock(caller(conn), req.user_id)
        return pb.BlacklistDelResp(success=True)

    async def blacklist(conn: Connection, _req: pb.BlacklistListReq) -> Message:
        return pb.BlacklistListResp(users=[user_info(p) for p in await relation.blacklist(caller(conn))])

    async def users(conn: Connection, req: pb.UserInfoReq) -> Message:
        profiles = await relation.visible_profiles(caller(conn), list(req.user_ids))
        return pb.UserInfoResp(users=[user_info(p) for p in profiles])

    async def profile(conn: Connection, req: pb.ProfileUpdateReq) -> Message:
        await relation.update_nickname(caller(conn), req.nickname)
        return pb.ProfileUpdateResp(success=True)

    async def create(conn: Connection, req: pb.GroupCreateReq) -> Message:
        group_id = await relation.create_group(caller(conn), req.group_name, list(req.member_ids))
        return pb.GroupCreateResp(group_id=group_id, success=True)

    async def join(conn: Connection, req: pb.GroupJoinReq) -> Message:
        await relation.join_group(caller(conn), req.group_id)
        return pb.GroupJoinResp(success=True, pending=True)

    async def handle_join(conn: Connection, req: pb.GroupJoinHandleReq) -> Message:
        await relation.handle_join(caller(conn), req.group_id, req.applicant_id, req.agree)
        return pb.GroupJoinHandleResp(success=True)

    async def leave(conn: Connection, req: pb.GroupLeaveReq) -> Message:
        await relation.leave_group(caller(conn), req.group_id)
        return pb.GroupLeaveResp(success=True)

    async def remove(conn: Connection, req: pb.GroupRemoveReq) -> Message:
        await relation.remove_member(caller(conn), req.group_id, req.member_id)
        return pb.GroupRemoveResp(success=True)

    async def groups(conn: Connection, _req: pb.GroupListReq) -> Message:
        return pb.GroupListResp(groups=[group_info(g) for g in await relation.my_groups(caller(conn))])

    async def members(conn: Connection, req: pb.GroupMemberReq) -> Message:
        return group_members_resp(await relation.group_members(caller(conn), req.group_id))

    return {
        Cmd.CMD_FRIEND_APPLY_REQ: (apply, Cmd.CMD_FRIEND_APPLY_RESP),
        Cmd.CMD_FRIEND_HANDLE_REQ: (handle, Cmd.CMD_FRIEND_HANDLE_RESP),
        Cmd.CMD_FRIEND_LIST_REQ: (friends, Cmd.CMD_FRIEND_LIST_RESP),
        Cmd.CMD_FRIEND_DEL_REQ: (delete, Cmd.CMD_FRIEND_DEL_RESP),
        Cmd.CMD_BLACKLIST_ADD_REQ: (block, Cmd.CMD_BLACKLIST_ADD_RESP),
        Cmd.CMD_BLACKLIST_DEL_REQ: (unblock, Cmd.CMD_BLACKLIST_DEL_RESP),
        Cmd.CMD_BLACKLIST_LIST_REQ: (blacklist, Cmd.CMD_BLACKLIST_LIST_RESP),
        Cmd.CMD_USER_INFO_REQ: (users, Cmd.CMD_USER_INFO_RESP),
        Cmd.CMD_PROFILE_UPDATE_REQ: (profile, Cmd.CMD_PROFILE_UPDATE_RESP),
        Cmd.CMD_GROUP_CREATE_REQ: (create, Cmd.CMD_GROUP_CREATE_RESP),
        Cmd.CMD_GROUP_JOIN_REQ: (join, Cmd.CMD_GROUP_JOIN_RESP),
        Cmd.CMD_GROUP_JOIN_HANDLE_REQ: (handle_join, Cmd.CMD_GROUP_JOIN_HANDLE_RESP),
        Cmd.CMD_GROUP_LEAVE_REQ: (leave, Cmd.CMD_GROUP_LEAVE_RESP),
        Cmd.CMD_GROUP_REMOVE_REQ: (remove, Cmd.CMD_GROUP_REMOVE_RESP),
        Cmd.CMD_GROUP_LIST_REQ: (groups, Cmd.CMD_GROUP_LIST_RESP),
        Cmd.CMD_GROUP_MEMBER_REQ: (members, Cmd.CMD_GROUP_MEMBER_RESP),
    }


def file_handlers(files: FileApi) -> HandlerTable:
    """Uploads and downloads are granted here (tickets); the bytes go through a file gateway."""

    async def upload(conn: Connection, req: pb.FileUploadReq) -> Message:
        return upload_resp(await files.apply_upload(caller(conn), upload_request(req)))

    async def download(conn: Connection, req: pb.FileDownloadReq) -> Message:
        return download_resp(await files.apply_download(caller(conn), req.task_id))

    return {
        Cmd.CMD_FILE_UPLOAD_REQ: (upload, Cmd.CMD_FILE_UPLOAD_ACK),
        Cmd.CMD_FILE_DOWNLOAD_REQ: (download, Cmd.CMD_FILE_DOWNLOAD_RESP),
    }
