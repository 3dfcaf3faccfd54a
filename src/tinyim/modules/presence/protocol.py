"""Online status in the client protocol: domain <-> protobuf, written once.

Part of the module's public API (like `__init__`): its gRPC adapter and the gateway edge both use it,
because the internal RPCs carry the client protocol's messages.
"""

from __future__ import annotations

from tinyim.modules.presence.domain import Status, StatusView
from tinyim.pb import im_protocol_pb2 as pb


def status_info(v: StatusView) -> pb.StatusInfo:
    return pb.StatusInfo(
        user_id=v.user_id, status=pb.UserStatus.ValueType(int(v.status)), last_seen=v.last_seen_ms
    )


def status_view(info: pb.StatusInfo) -> StatusView:
    return StatusView(info.user_id, Status(int(info.status)), info.last_seen)
