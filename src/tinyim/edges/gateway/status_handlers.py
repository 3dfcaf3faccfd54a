"""Request handlers of user search (and, next to it, the other commands of online status, typing and
group owner actions): protobuf in, module call with the session's identity, protobuf out."""

from __future__ import annotations

from google.protobuf.message import Message

from tinyim.modules.relation import RelationApi
from tinyim.modules.relation.adapters.protobuf import privacy, privacy_pb, user_info
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd

from .connection import Connection
from .handlers import HandlerTable, caller


def search_handlers(relation: RelationApi) -> HandlerTable:
    async def search(conn: Connection, req: pb.UserSearchReq) -> Message:
        page = await relation.search_users(
            caller(conn), req.username, req.nickname_prefix, req.limit, req.cursor
        )
        return pb.UserSearchResp(users=[user_info(p) for p in page.users], next_cursor=page.next_cursor)

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
