"""Online status in the client protocol: domain <-> protobuf, written once.

Part of the module's public API (like `__init__`): its gRPC adapter and the gateway edge both use it,
because the internal RPCs carry the client protocol's messages.
"""

from __future__ import annotations

import grpc

from tinyim.modules.presence.domain import Status, StatusView
from tinyim.pb import im_protocol_pb2 as pb


def status_info(v: StatusView) -> pb.StatusInfo:
    return pb.StatusInfo(
        user_id=v.user_id, status=pb.UserStatus.ValueType(int(v.status)), last_seen=v.last_seen_ms
    )


def status_view(info: pb.StatusInfo) -> StatusView:
    return StatusView(info.user_id, Status(int(info.status)), info.last_seen)


# The header a gateway sends as a push stream opens, before any batch: its id. Only a stream that carries
# the id meant is known to reach that gateway (an address may have gone to another process, of another
# role or another gateway, after a container restart).
GATEWAY_ID_HEADER = "tinyim-gateway-id"


# The header of each unary call to a gateway (kick, read receipts, events, status, PushNotify): the gateway
# meant. Another gateway that got its address refuses the call as UNIMPLEMENTED (not the server meant,
# nothing ran), so the caller renews the channel and tries again, as with a process of another role.
GATEWAY_TARGET_HEADER = "tinyim-gateway-target"


def addressed_to(gateway_id: str) -> tuple[tuple[str, str], ...]:
    """The metadata of a call meant for `gateway_id`."""
    return ((GATEWAY_TARGET_HEADER, gateway_id),)


def meant_gateway(metadata: object) -> str | None:
    """The gateway a call was meant for (None: its caller did not say, e.g. an earlier release)."""
    for key, value in metadata if isinstance(metadata, (tuple, list, grpc.aio.Metadata)) else ():
        if key == GATEWAY_TARGET_HEADER and isinstance(value, str):
            return value
    return None


def answering_gateway(headers: object) -> str | None:
    """The gateway id in a push stream's opening headers (None: not a gateway's answer)."""
    if not isinstance(headers, grpc.aio.Metadata):
        return None
    value = headers.get(GATEWAY_ID_HEADER)
    return value if isinstance(value, str) else None
