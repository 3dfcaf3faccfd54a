"""relation: friends, blacklist, groups, profiles, and the rules of who may message whom."""

from tinyim.modules.relation.domain import (
    GROUP_LIMIT,
    FriendRequest,
    Group,
    GroupRole,
    Member,
    PairState,
    RelationStatus,
    RequestStatus,
    SearchPage,
)
from tinyim.modules.relation.ports import (
    GroupFull,
    GroupGone,
    LostRace,
    Notices,
    RateLimiter,
    RelationApi,
    RelationStore,
    StatusNotices,
    UserDirectory,
)
from tinyim.modules.relation.service import RelationService

__all__ = [
    "GROUP_LIMIT",
    "FriendRequest",
    "Group",
    "GroupFull",
    "GroupGone",
    "GroupRole",
    "LostRace",
    "Member",
    "Notices",
    "PairState",
    "RateLimiter",
    "RelationApi",
    "RelationService",
    "RelationStatus",
    "RelationStore",
    "RequestStatus",
    "SearchPage",
    "StatusNotices",
    "UserDirectory",
]
