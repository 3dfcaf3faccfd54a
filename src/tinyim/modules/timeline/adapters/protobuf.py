"""Timeline domain <-> protobuf of the client protocol (used by the gRPC adapters and the gateway)."""

from __future__ import annotations

from typing import Any, cast

from tinyim.modules.timeline.domain import SendResult, StoredMessage, SyncPage, Unread
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
        is_sender=m.is_sender,
    )


def stored_message(m: pb.MessageData) -> StoredMessage:
    return StoredMessage(
        m.seq_id, m.msg_id, m.sender_id, m.receiver_id, m.group_id, int(m.type), m.content,
        m.client_msg_id, m.is_sender,
    )  # fmt: skip


def send_resp(r: SendResult) -> pb.MsgSendResp:
    return pb.MsgSendResp(msg_id=r.msg_id, seq_id=r.seq_id, send_time=r.send_time_ms, duplicate=r.duplicate)


def sync_resp(page: SyncPage) -> pb.MsgSyncResp:
    return pb.MsgSyncResp(
        max_seq=page.max_seq, msgs=[message_data(m) for m in page.messages], has_more=page.has_more
    )


def unread_resp(items: list[Unread]) -> pb.UnreadResp:
    return pb.UnreadResp(
        conversations=[
            pb.ConversationUnread(
                peer_id=u.conversation.peer_and_group[0],
                group_id=u.conversation.peer_and_group[1],
                unread=u.unread,
                last_seq=u.last_seq,
                read_seq=u.read_seq,
            )
            for u in items
        ]
    )
