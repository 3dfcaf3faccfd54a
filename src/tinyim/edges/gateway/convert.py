"""Domain objects -> protobuf messages of the client protocol."""

from __future__ import annotations

from typing import Any, cast

from tinyim.kernel import UserProfile
from tinyim.modules.relation import Group
from tinyim.modules.timeline import StoredMessage
from tinyim.pb import im_protocol_pb2 as pb


def message_data(m: StoredMessage) -> pb.MessageData:
    return pb.MessageData(
        msg_id=m.msg_id,
        seq_id=m.seq_id,
        sender_id=m.sender_id,
        receiver_id=m.receiver_id,
        group_id=m.group_id,
        type=cast(Any, m.msg_type),
        content=m.content,
        create_time=m.created_ms,
        client_msg_id=m.client_msg_id,
    )


def user_info(p: UserProfile) -> pb.UserInfo:
    return pb.UserInfo(user_id=p.user_id, nickname=p.nickname, username=p.username)


def group_info(g: Group) -> pb.GroupInfo:
    return pb.GroupInfo(
        group_id=g.group_id,
        group_name=g.name,
        owner_id=g.owner_id,
        announcement=g.announcement,
        member_count=g.member_count,
    )
