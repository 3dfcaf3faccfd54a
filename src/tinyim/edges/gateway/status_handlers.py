"""Request handlers of user search (and, next to it, the other commands of online status, typing and
group owner actions): protobuf in, module call with the session's identity, protobuf out."""

from __future__ import annotations

from google.protobuf.message import Message

from tinyim.modules.presence.protocol import status_info
from tinyim.modules.relation import RelationApi
from tinyim.modules.relation.protocol import (
    group_info,
    group_update_fields,
    privacy,
    privacy_pb,
    search_resp,
)
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd

from .connection import Connection
from .handlers import HandlerTable, caller
from .status import StatusTracker


def search_handlers(relation: RelationApi) -> HandlerTable:
    async def search(conn: Connection, req: pb.UserSearchReq) -> Message:
        page = await relation.search_users(
            caller(conn), req.username, req.nickname_prefix, req.limit, req.cursor
        )
        return search_resp(page)

    async def get_privacy(conn: Connection, _req: pb.PrivacyGetReq) -> Message:
        return pb.PrivacyGetResp(settings=privacy_pb(await relation.privacy(caller(conn))))

    async def set_privacy(conn: Connection, req: pb.PrivacySetReq) -> Message:
        stored = await relation.set_privacy(caller(conn), privacy(req.settings))
        return pb.PrivacySetResp(settings=privacy_pb(stored))

    return {
        Cmd.CMD_USER_SEARCH_REQ: (search, Cmd.CMD_USER_SEARCH_RESP),
        Cmd.CMD_PRIVACY_GET_REQ: (get_privacy, Cmd.CMD_PRIVACY_GET_RESP),
        Cmd.CMD_PRIVACY_SET_REQ: (set_privacy, Cmd.CMD_PRIVACY_SET_RESP),
    }


def group_admin_handlers(relation: RelationApi) -> HandlerTable:
    async def transfer(conn: Connection, req: pb.GroupTransferReq) -> Message:
        await relation.transfer_group(caller(conn), req.group_id, req.new_owner_id)
        return pb.GroupTransferResp(success=True)

    async def admin(conn: Connection, req: pb.GroupAdminReq) -> Message:
        await relation.set_group_admin(caller(conn), req.group_id, req.member_id, req.admin)
        return pb.GroupAdminResp(success=True)

    async def update(conn: Connection, req: pb.GroupUpdateReq) -> Message:
        name, announcement = group_update_fields(req)
        stored = await relation.update_group(caller(conn), req.group_id, name, announcement)
        return pb.GroupUpdateResp(group=group_info(stored))

    async def dissolve(conn: Connection, req: pb.GroupDissolveReq) -> Message:
        await relation.dissolve_group(caller(conn), req.group_id)
        return pb.GroupDissolveResp(success=True)

    return {
        Cmd.CMD_GROUP_TRANSFER_REQ: (transfer, Cmd.CMD_GROUP_TRANSFER_RESP),
        Cmd.CMD_GROUP_ADMIN_REQ: (admin, Cmd.CMD_GROUP_ADMIN_RESP),
        Cmd.CMD_GROUP_UPDATE_REQ: (update, Cmd.CMD_GROUP_UPDATE_RESP),
        Cmd.CMD_GROUP_DISSOLVE_REQ: (dissolve, Cmd.CMD_GROUP_DISSOLVE_RESP),
    }


def status_handlers(tracker: StatusTracker) -> HandlerTable:
    async def set_status(conn: Connection, req: pb.StatusSetReq) -> Message:
        return pb.StatusSetResp(status=status_info(await tracker.set_status(conn, int(req.status))))

    async def query(conn: Connection, req: pb.StatusQueryReq) -> Message:
        found = await tracker.query(conn, list(req.user_ids))
        return pb.StatusQueryResp(statuses=[status_info(v) for v in found])

    async def typing(conn: Connection, req: pb.TypingReq) -> Message:
        await tracker.typing(conn, req.peer_id, req.stopped)
        return pb.TypingResp()

    return {
        Cmd.CMD_STATUS_SET_REQ: (set_status, Cmd.CMD_STATUS_SET_RESP),
        Cmd.CMD_STATUS_QUERY_REQ: (query, Cmd.CMD_STATUS_QUERY_RESP),
        Cmd.CMD_TYPING_REQ: (typing, Cmd.CMD_TYPING_RESP),
    }
