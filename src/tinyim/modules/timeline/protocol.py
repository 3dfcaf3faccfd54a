"""Timeline in the client protocol: domain <-> protobuf, written once.

Part of the module's public API (like `__init__`): its gRPC adapters, the push adapter and the gateway
edge all use it, because the internal RPCs carry the client protocol's messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from tinyim.modules.timeline.domain import (
    Conversation,
    ConversationPage,
    ConversationView,
    ConvType,
    ReadCount,
    SendResult,
    StoredMessage,
    SyncPage,
    Unread,
)
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire.varint import varint


def message_data(m: StoredMessage) -> pb.MessageData:
    return pb.MessageData(
        msg_id=m.msg_id,
        seq_id=m.seq_id,
        sender_id=m.sender_id,
        receiver_id=m.receiver_id,
        group_id=m.group_id,
        type=pb.MsgType.ValueType(m.msg_type),
        content=m.content,
        create_time=m.created_ms,
        client_msg_id=m.client_msg_id,
        is_sender=m.is_sender,
        recalled=bool(m.recalled_by),
        recalled_by=m.recalled_by,
    )


def inline_messages(message: StoredMessage, seqs: Mapping[int, int]) -> dict[int, bytes]:
    """timeline.InlineEncoder: each owner's MessageData, serialized. The fields every copy shares are
    serialized once; each owner's seq (and is_sender) is appended to them: a protobuf parser takes a
    field that comes later over an earlier one, so this equals serializing every copy in full."""
    shared = message_data(replace(message, seq_id=0, is_sender=False)).SerializeToString()
    sender = message.sender_id
    # seq_id (field 2) and is_sender (field 10) by hand: building a MessageData per owner took ~2 µs, a
    # 500-member message's copies 1 ms
    return {
        owner: shared + _SEQ_TAG + varint(seq) + (_IS_SENDER if owner == sender else b"")
        for owner, seq in seqs.items()
    }


_SEQ_TAG = b"\x10"  # field 2, varint
_IS_SENDER = b"\x50\x01"  # field 10, varint, true


def stored_message(m: pb.MessageData) -> StoredMessage:
    return StoredMessage(
        m.seq_id, m.msg_id, m.sender_id, m.receiver_id, m.group_id, int(m.type), m.content,
        m.client_msg_id, m.is_sender, m.recalled_by,
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


# ---------- conversation list, read receipts, recall ----------
def conversation_info(v: ConversationView) -> pb.ConversationInfo:
    peer_id, group_id = v.conversation.peer_and_group
    return pb.ConversationInfo(
        peer_id=peer_id,
        group_id=group_id,
        last_seq=v.last_seq,
        last_msg_id=v.last_msg_id,
        last_sender_id=v.last_sender_id,
        last_type=pb.MsgType.ValueType(v.last_msg_type),
        preview=v.preview,
        last_time=v.last_time_ms,
        unread=v.unread,
        read_seq=v.read_seq,
        peer_read_seq=v.peer_read_seq,
        pinned=v.pinned,
        muted=v.muted,
    )


def conversation_view(c: pb.ConversationInfo) -> ConversationView:
    conversation = (
        Conversation(ConvType.GROUP, c.group_id) if c.group_id else Conversation(ConvType.DIRECT, c.peer_id)
    )
    return ConversationView(
        conversation, c.last_seq, c.last_msg_id, c.last_sender_id, int(c.last_type), c.preview, c.unread,
        c.read_seq, c.peer_read_seq, c.pinned, c.muted,
    )  # fmt: skip


def conversation_list_resp(page: ConversationPage) -> pb.ConversationListResp:
    return pb.ConversationListResp(
        conversations=[conversation_info(v) for v in page.items], next_cursor=page.next_cursor
    )


def conversation_page(r: pb.ConversationListResp) -> ConversationPage:
    return ConversationPage([conversation_view(c) for c in r.conversations], r.next_cursor)


def read_count_resp(counts: list[ReadCount]) -> pb.GroupReadCountResp:
    return pb.GroupReadCountResp(
        counts=[pb.MessageReadCount(msg_id=c.msg_id, read=c.read, total=c.total) for c in counts]
    )


def update_flags(req: pb.ConversationUpdateReq) -> tuple[bool | None, bool | None]:
    """(pinned, muted) of an update request; None = left unset (kept)."""
    return (
        req.pinned if req.HasField("pinned") else None,
        req.muted if req.HasField("muted") else None,
    )
