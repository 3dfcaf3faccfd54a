"""Timeline domain <-> protobuf of the client protocol (used by the gRPC adapters and the gateway)."""

from __future__ import annotations

from typing import Any, cast

from tinyim.modules.timeline.domain import StoredMessage
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
