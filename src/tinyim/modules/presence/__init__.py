"""presence: the session routing table and the routing of push signals and kicks to gateways."""

from tinyim.modules.presence.ports import DeviceSession, GatewayLink, SessionDirectory
from tinyim.modules.presence.service import PresenceRouter

__all__ = ["DeviceSession", "GatewayLink", "PresenceRouter", "SessionDirectory"]
