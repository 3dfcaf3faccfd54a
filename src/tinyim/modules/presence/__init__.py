"""presence: the session routing table, the routing of push signals and kicks to gateways, and users'
online status (aggregated over their devices) with the typing indicator."""

from tinyim.modules.presence.domain import DevicePresence, PresenceRecord, Status, StatusView
from tinyim.modules.presence.ports import (
    DeviceSession,
    GatewayLink,
    PresenceStore,
    SessionDirectory,
    StatusAudience,
)
from tinyim.modules.presence.service import PresenceRouter
from tinyim.modules.presence.status import StatusService

__all__ = [
    "DevicePresence",
    "DeviceSession",
    "GatewayLink",
    "PresenceRecord",
    "PresenceRouter",
    "PresenceStore",
    "SessionDirectory",
    "Status",
    "StatusAudience",
    "StatusService",
    "StatusView",
]
