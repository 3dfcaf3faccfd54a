"""In-memory relation store: the unit tests' fake and the reference for the contract suite."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tinyim.modules.relation.domain import (
    FriendRequest,
    Group,
    GroupRole,
    Member,
    PairState,
    RelationStatus,
    RequestStatus,
)
from tinyim.modules.relation.ports import GroupFull, GroupGone


class InMemoryRelationStore:
    def __init__(self) -> None:
        self.relations: dict[tuple[int, int], RelationStatus] = {}
        self.blocks: set[tuple[int, int]] = set()
        self.friend_requests: dict[tuple[int, int], FriendRequest] = {}
        self.groups: dict[int, Group] = {}
        self.group_members: dict[int, dict[int, GroupRole]] = {}
        self.join_requests: dict[tuple[int, int], RequestStatus] = {}
        self._next_group = 1
        # membership history on a logical clock: (group, user) -> when it began; ended ones with their end
        self._clock = 0
        self.joined: dict[tuple[int, int], int] = {}
        self.past: list[tuple[int, int, int, int]] = []  # (group_id, user_id, joined, left)

    async def pair_state(self, a: int, b: int) -> PairState:
        return PairState(
            self.relations.get((a, b)),
            self.relations.get((b, a)),
            (a, b) in self.blocks,
            (b, a) in self.blocks,
        )

    async def make_friends(self, a: int, b: int) -> None:
        self.relations[(a, b)] = self.relations[(b, a)] = RelationStatus.NORMAL

    async def set_status(self, owner_id: int, other_id: int, status: int) -> None:
        self.relations[(owner_id, other_id)] = RelationStatus(status)

    async def friend_ids(self, owner_id: int) -> list[int]:
        return sorted(
            b for (a, b), s in self.relations.items() if a == owner_id and s == RelationStatus.NORMAL
        )

    async def listed_by(self, user_id: int, among: Sequence[int]) -> set[int]:
        return {u for u in among if self.relations.get((u, user_id)) == RelationStatus.NORMAL}

    async def blockers_of(self, user_id: int, among: Sequence[int]) -> set[int]:
        return {u for u in among if (u, user_id) in self.blocks}

    async def block(self, owner_id: int, blocked_id: int) -> None:
        self.blocks.add((owner_id, blocked_id))

    async def unblock(self, owner_id: int, blocked_id: int) -> None:
        self.blocks.discard((owner_id, blocked_id))

    async def blocked_ids(self, owner_id: int) -> list[int]:
        return sorted(b for a, b in self.blocks if a == owner_id)

    async def friend_request(self, from_id: int, to_id: int) -> FriendRequest | None:
        return self.friend_requests.get((from_id, to_id))

    async def put_friend_request(self, from_id: int, to_id: int, reason: str) -> None:
        self.friend_requests[(from_id, to_id)] = FriendRequest(from_id, to_id, reason, RequestStatus.PENDING)

    async def settle_friend_request(self, from_id: int, to_id: int, status: RequestStatus) -> bool:
        request = self.friend_requests.get((from_id, to_id))
        if request is None or request.status != RequestStatus.PENDING:
            return False
        self.friend_requests[(from_id, to_id)] = FriendRequest(from_id, to_id, request.reason, status)
        return True

    async def create_group(self, name: str, owner_id: int, member_ids: Sequence[int]) -> int:
        group_id, self._next_group = self._next_group, self._next_group + 1
        self.groups[group_id] = Group(group_id, name, owner_id, "")
        self.group_members[group_id] = {
            owner_id: GroupRole.OWNER,
            **dict.fromkeys(member_ids, GroupRole.MEMBER),
        }
        for user_id in self.group_members[group_id]:
            self.joined[(group_id, user_id)] = self._tick()
        return group_id

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _end(self, group_id: int, user_id: int) -> None:
        began = self.joined.pop((group_id, user_id), 0)
        self.past.append((group_id, user_id, began, self._tick()))

    async def group(self, group_id: int) -> Group | None:
        group = self.groups.get(group_id)
        if group is None:
            return None
        return Group(
            group.group_id, group.name, group.owner_id, group.announcement, len(self.group_members[group_id])
        )

    async def members(self, group_id: int) -> list[Member]:
        return [Member(u, r) for u, r in sorted(self.group_members.get(group_id, {}).items())]

    async def member_ids(self, group_id: int) -> list[int]:
        return sorted(self.group_members.get(group_id, {}))

    async def role(self, group_id: int, user_id: int) -> int | None:
        return self.group_members.get(group_id, {}).get(user_id)

    async def add_member(self, group_id: int, user_id: int, limit: int) -> None:
        if group_id not in self.groups:
            raise GroupGone(group_id)
        members = self.group_members[group_id]
        if user_id not in members and len(members) >= limit:
            raise GroupFull(group_id)
        if user_id not in members:
            members[user_id] = GroupRole.MEMBER
            self.joined[(group_id, user_id)] = self._tick()

    async def remove_member(self, group_id: int, user_id: int) -> bool:
        if self.group_members.get(group_id, {}).pop(user_id, None) is None:
            return False
        self._end(group_id, user_id)
        return True

    async def past_co_members(self, user_id: int, others: Sequence[int]) -> set[int]:
        now = self._clock + 1
        stints = [(g, u, j, now) for (g, u), j in self.joined.items()] + self.past
        mine = [(g, j, left) for g, u, j, left in stints if u == user_id]
        wanted = set(others)
        return {
            u
            for g, u, j, left in stints
            if u in wanted and any(g == mg and j <= ml and mj <= left for mg, mj, ml in mine)
        }

    async def groups_of(self, user_id: int) -> list[Group]:
        found = [
            await self.group(g) for g, members in sorted(self.group_members.items()) if user_id in members
        ]
        return [g for g in found if g is not None]

    async def join_request(self, group_id: int, user_id: int) -> RequestStatus | None:
        return self.join_requests.get((group_id, user_id))

    async def put_join_request(self, group_id: int, user_id: int) -> None:
        self.join_requests[(group_id, user_id)] = RequestStatus.PENDING

    async def settle_join_request(self, group_id: int, user_id: int, status: RequestStatus) -> bool:
        if self.join_requests.get((group_id, user_id)) != RequestStatus.PENDING:
            return False
        self.join_requests[(group_id, user_id)] = status
        return True

    # group owner actions
    async def transfer_owner(self, group_id: int, old_owner_id: int, new_owner_id: int) -> bool:
        group, members = self.groups.get(group_id), self.group_members.get(group_id, {})
        if group is None or group.owner_id != old_owner_id or new_owner_id not in members:
            return False
        self.groups[group_id] = Group(group_id, group.name, new_owner_id, group.announcement)
        members[old_owner_id], members[new_owner_id] = GroupRole.MEMBER, GroupRole.OWNER
        return True

    async def set_role(self, group_id: int, user_id: int, role: int) -> None:
        members = self.group_members.get(group_id, {})
        if members.get(user_id) not in (None, GroupRole.OWNER):
            members[user_id] = GroupRole(role)

    async def update_group(self, group_id: int, name: str | None, announcement: str | None) -> None:
        g = self.groups[group_id]
        self.groups[group_id] = Group(
            group_id,
            g.name if name is None else name,
            g.owner_id,
            g.announcement if announcement is None else announcement,
        )

    async def dissolve_group(self, group_id: int) -> list[int] | None:
        if self.groups.pop(group_id, None) is None:
            return None
        removed = sorted(self.group_members.pop(group_id, {}))
        for user_id in removed:
            self._end(group_id, user_id)
        return removed

    async def count_groups(self) -> int:
        return len(self.groups)


class InMemoryRateLimiter:
    """Fixed-window counters of one process (the Redis one is shared by every process of the role)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self.windows: dict[str, tuple[float, int]] = {}  # key -> (window end, uses)

    async def hit(self, key: str, limit: int, window_seconds: float) -> bool:
        now = self._clock()
        end, uses = self.windows.get(key, (0.0, 0))
        if end <= now:
            end, uses = now + window_seconds, 0
            if len(self.windows) >= self._max_keys:
                self.windows = {k: v for k, v in self.windows.items() if v[0] > now}
        self.windows[key] = (end, uses + 1)
        return uses < limit
