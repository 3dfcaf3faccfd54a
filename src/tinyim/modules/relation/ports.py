"""Ports of the relation module."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self

from tinyim.kernel import Caller, Privacy, UserProfile
from tinyim.kernel import LostRace as LostRace  # one type for every module's units of work
from tinyim.modules.relation.domain import (
    FriendRequest,
    Group,
    Member,
    PairState,
    PendingNotice,
    RequestStatus,
    SearchPage,
)


class RelationApi(Protocol):
    """Inbound: what the gateway and the msg role ask of the user role."""

    # the messaging rules (called by the timeline for every send)
    async def check_direct(self, sender_id: int, receiver_id: int) -> None: ...
    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]: ...

    # friends and blacklist
    async def apply_friend(self, caller: Caller, target_id: int, reason: str) -> bool: ...
    async def handle_friend(self, caller: Caller, applicant_id: int, agree: bool) -> None: ...
    async def friends(self, caller: Caller) -> list[UserProfile]: ...
    async def delete_friend(self, caller: Caller, friend_id: int) -> None: ...
    async def block(self, caller: Caller, user_id: int) -> None: ...
    async def unblock(self, caller: Caller, user_id: int) -> None: ...
    async def blacklist(self, caller: Caller) -> list[UserProfile]: ...

    # profiles
    async def profiles(self, user_ids: Sequence[int]) -> list[UserProfile]: ...
    async def visible_profiles(self, caller: Caller, user_ids: Sequence[int]) -> list[UserProfile]:
        """Profiles of the users the caller has a reason to see (reliability: no directory walk by id)."""
        ...

    async def update_nickname(self, caller: Caller, nickname: str) -> None: ...

    # groups
    async def create_group(self, caller: Caller, name: str, member_ids: Sequence[int]) -> int: ...
    async def join_group(self, caller: Caller, group_id: int) -> None: ...
    async def handle_join(self, caller: Caller, group_id: int, applicant_id: int, agree: bool) -> None: ...
    async def leave_group(self, caller: Caller, group_id: int) -> None: ...
    async def remove_member(self, caller: Caller, group_id: int, member_id: int) -> None: ...
    async def my_groups(self, caller: Caller) -> list[Group]: ...
    async def group_members(self, caller: Caller, group_id: int) -> list[tuple[UserProfile, Member]]: ...

    # recall: a member's role (asked by the msg role; server-side only, not a client command)
    async def group_role(self, group_id: int, user_id: int) -> int:
        """user_id's GroupRole in group_id, 0 when not a member."""
        ...

    # user search
    async def search_users(
        self, caller: Caller, username: str, nickname_prefix: str, limit: int, cursor: str
    ) -> SearchPage: ...
    async def privacy(self, caller: Caller) -> Privacy: ...
    async def set_privacy(self, caller: Caller, privacy: Privacy) -> Privacy: ...

    # group owner actions
    async def transfer_group(self, caller: Caller, group_id: int, new_owner_id: int) -> None: ...
    async def set_group_admin(self, caller: Caller, group_id: int, member_id: int, admin: bool) -> None: ...
    async def update_group(
        self, caller: Caller, group_id: int, name: str | None, announcement: str | None
    ) -> Group: ...
    async def dissolve_group(self, caller: Caller, group_id: int) -> None: ...

    # admin API
    async def admin_dissolve_group(self, group_id: int) -> Group:
        """Dissolve any live group (its members get the group_dissolved notice); the group as it was."""
        ...

    async def group_count(self) -> int:
        """Live groups."""
        ...

    # online status: friends both ways, no block either way
    async def status_watchers(self, user_id: int) -> list[int]:
        """Everyone who may see user_id's online status."""
        ...

    async def status_visible(self, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
        """Which of user_ids viewer may see the online status of."""
        ...


class GroupFull(Exception):
    pass


class GroupGone(Exception):
    """The group does not exist, or was dissolved (by a transaction that committed meanwhile)."""


class RelationStore(Protocol):
    # friendship and blacklist
    async def pair_state(self, a: int, b: int) -> PairState: ...
    async def make_friends(self, a: int, b: int) -> None:
        """Both directed rows NORMAL, in one transaction."""
        ...

    async def set_status(self, owner_id: int, other_id: int, status: int) -> None: ...
    async def friend_ids(self, owner_id: int) -> list[int]: ...
    async def listed_by(self, user_id: int, among: Sequence[int]) -> set[int]:
        """Which of `among` list user_id as a friend (their row to user_id is NORMAL)."""
        ...

    async def blockers_of(self, user_id: int, among: Sequence[int]) -> set[int]:
        """Which of `among` have blocked user_id."""
        ...

    async def block(self, owner_id: int, blocked_id: int) -> None: ...
    async def unblock(self, owner_id: int, blocked_id: int) -> None: ...
    async def blocked_ids(self, owner_id: int) -> list[int]: ...

    # friend requests: one row per (from, to), reused by a new request
    async def friend_request(self, from_id: int, to_id: int) -> FriendRequest | None: ...
    async def put_friend_request(self, from_id: int, to_id: int, reason: str) -> None: ...
    async def settle_friend_request(self, from_id: int, to_id: int, status: RequestStatus) -> bool:
        """PENDING -> status; False when there was no pending request (settled by someone else)."""
        ...

    # groups
    async def create_group(self, name: str, owner_id: int, member_ids: Sequence[int]) -> int: ...
    async def group(self, group_id: int) -> Group | None: ...
    async def members(self, group_id: int) -> list[Member]: ...
    async def member_ids(self, group_id: int) -> list[int]: ...
    async def role(self, group_id: int, user_id: int) -> int | None: ...
    async def add_member(self, group_id: int, user_id: int, limit: int) -> None:
        """Add a member unless the group already has `limit` (GroupFull) or is gone (GroupGone: dissolved
        after the caller read it); decided under the group row's lock."""
        ...

    async def remove_member(self, group_id: int, user_id: int) -> bool:
        """End the membership (it goes to the membership history); False when there was none."""
        ...

    async def past_co_members(self, user_id: int, others: Sequence[int]) -> set[int]:
        """Which of `others` were in some group at the same time as user_id, counting memberships that
        have ended (left, removed, dissolved group) as well as current ones."""
        ...

    async def groups_of(self, user_id: int) -> list[Group]: ...
    async def join_request(self, group_id: int, user_id: int) -> RequestStatus | None: ...
    async def put_join_request(self, group_id: int, user_id: int) -> None: ...
    async def settle_join_request(self, group_id: int, user_id: int, status: RequestStatus) -> bool: ...

    # group owner actions
    async def transfer_owner(self, group_id: int, old_owner_id: int, new_owner_id: int) -> bool:
        """In one transaction, if old_owner_id still owns the live group and new_owner_id is a member:
        new_owner_id becomes OWNER (also im_group.owner_id), old_owner_id MEMBER. False otherwise."""
        ...

    async def set_role(self, group_id: int, user_id: int, role: int) -> None:
        """Change a member's role (never the owner's: transfer_owner does that)."""
        ...

    async def update_group(self, group_id: int, name: str | None, announcement: str | None) -> None:
        """Set the fields that are not None."""
        ...

    async def dissolve_group(self, group_id: int) -> list[int] | None:
        """status 1 -> 0 and the members removed (into the membership history), in one transaction; the
        members it removed, read under the group's lock (so one who joined meanwhile is among them), or
        None when it was not live."""
        ...

    async def count_groups(self) -> int:
        """Live groups (admin API: server stats)."""
        ...


class UserDirectory(Protocol):
    """Profiles (served by the auth module's accounts, behind a cache)."""

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]: ...
    async def update_nickname(self, user_id: int, nickname: str) -> None: ...
    # user search
    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        """Exact username, or nickname prefix among users who did not opt out; ascending user id."""
        ...

    async def privacy(self, user_id: int) -> Privacy: ...
    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy: ...


class RateLimiter(Protocol):
    """Fixed-window counters shared by every process of the role (user search)."""

    async def hit(self, key: str, limit: int, window_seconds: float) -> bool:
        """Count one use of `key`; False when this use is over `limit` in the current window."""
        ...


class StatusNotices(Protocol):
    """Outbound to presence (online status): who just lost sight of whom."""

    async def hide(self, viewer_id: int, user_id: int) -> None:
        """viewer may no longer see user's status: their connected devices are told user is offline."""
        ...


class RelationChanges(Protocol):
    """Outbound: what changed, told after it is stored, so that caches of the messaging rules (in this
    process and in others) forget it. Must not raise: the change is stored either way."""

    async def pair_changed(self, a: int, b: int) -> None:
        """Friendship or blocking between a and b changed (either direction)."""
        ...

    async def group_changed(self, group_id: int) -> None:
        """The group's members changed (or it was dissolved)."""
        ...


class Notices(Protocol):
    """Outbound to the timeline: requests and decisions reach people as messages in their timelines.

    `dedup_key` (the outbox row's key) makes a delivery idempotent: the timeline writes a notice with a
    key it has stored already (for that sender) no second time."""

    async def to_user(
        self,
        sender_id: int,
        receiver_id: int,
        content: str,
        friend_request: bool = False,
        dedup_key: str = "",
    ) -> None:
        """A SYSTEM message (or FRIEND_REQ) into the receiver's timeline, in the conversation with sender."""
        ...

    async def to_group(
        self, sender_id: int, group_id: int, member_ids: Sequence[int], content: str, dedup_key: str = ""
    ) -> None:
        """A SYSTEM message posted to the group: one copy in each of member_ids' timelines."""
        ...


# ---------- units of work and the notice outbox ----------


class OutboxWriter(Protocol):
    """The outbox inside a unit of work: a notice added here commits (or rolls back) with the change."""

    @property
    def added(self) -> list[PendingNotice]:
        """What this unit of work added, in order (delivered right after commit)."""
        ...

    async def add(self, notice: PendingNotice) -> None: ...


class NoticeOutbox(Protocol):
    """The outbox outside any unit of work: committed notices not yet delivered (the relay's view)."""

    async def pending(self, limit: int) -> list[PendingNotice]:
        """Up to `limit` undelivered notices, oldest first."""
        ...

    async def remove(self, key: str) -> None:
        """The notice was delivered: it leaves the outbox (nothing happens when it left already)."""
        ...


class RelationUnitOfWork(Protocol):
    """One transaction of a use case (cosmicpython's unit of work): the store and the outbox inside it.

    `async with units.begin() as uow:` ... `await uow.commit()`; leaving the block without commit (an
    error, a cancellation, or simply no commit) rolls everything back, notices included; an adapter whose
    database broke a deadlock by rolling this one back raises LostRace when the block is left."""

    @property
    def store(self) -> RelationStore: ...
    @property
    def outbox(self) -> OutboxWriter: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


class RelationUnits(Protocol):
    """Where units of work begin, and the outbox their committed notices wait in until delivered."""

    @property
    def outbox(self) -> NoticeOutbox: ...

    def begin(self) -> RelationUnitOfWork: ...
