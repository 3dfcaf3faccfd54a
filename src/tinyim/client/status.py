"""Online status and typing as the SDK hands them out."""

from __future__ import annotations

from dataclasses import dataclass

from tinyim.pb import im_protocol_pb2 as pb

STATUS_NAMES = {pb.STATUS_OFFLINE: "offline", pb.STATUS_ONLINE: "online", pb.STATUS_AWAY: "away"}
STATUS_VALUES = {name: value for value, name in STATUS_NAMES.items()}


@dataclass(frozen=True, slots=True)
class UserStatus:
    user_id: int
    status: str  # "online", "away" or "offline"
    last_seen: int  # ms since the epoch: when a device of theirs was last connected (0: never)


@dataclass(frozen=True, slots=True)
class Typing:
    user_id: int  # the friend typing to you
    stopped: bool


def user_status(info: pb.StatusInfo) -> UserStatus:
    return UserStatus(info.user_id, STATUS_NAMES.get(info.status, "offline"), info.last_seen)
