"""The relation service: friends, blacklist, groups and THE rules of who may message whom.

Requests and decisions reach people as messages in their timelines (FRIEND_REQ and SYSTEM), through the
Notices port, so clients learn of them by the same push-then-sync path as chat messages.

Every command that writes runs in one unit of work: its writes and the notices telling of them (rows of
the outbox) commit together or not at all. The notices are delivered right after the commit, and by the
outbox relay when a crash came first; side effects that are not data (the rules caches' change feed, the
online status hidden) follow the commit. A unit of work the database rolled back to break a deadlock
runs again from its start (`_atomically`); what follows the commit runs once, after the attempt that
committed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from tinyim.kernel import (
    ALREADY_EXISTS,
    BLOCKED,
    GROUP_FULL,
    INVALID_ARGUMENT,
    NOT_FOUND,
    NOT_MEMBER,
    PERMISSION_DENIED,
    RATE_LIMITED,
    Caller,
    ImError,
    Privacy,
    UserProfile,
)
from tinyim.modules.relation.domain import (
    GROUP_LIMIT,
    Group,
    GroupRole,
    Member,
    PendingNotice,
    RelationStatus,
    RequestStatus,
    SearchPage,
    check_announcement,
    check_direct_message,
    check_group_name,
    check_reason,
    notice,
    search_cursor,
    search_query,
)
from tinyim.modules.relation.outbox_relay import RELAY_EVERY_SECONDS, OutboxRelay
from tinyim.modules.relation.ports import (
    GroupFull,
    GroupGone,
    LostRace,
    Notices,
    RateLimiter,
    RelationChanges,
    RelationStore,
    RelationUnitOfWork,
    RelationUnits,
    StatusNotices,
    UserDirectory,
)

log = logging.getLogger(__name__)

MAX_PROFILES = 200
SEARCH_WINDOW_SECONDS = 60.0
_UNIT_OF_WORK_TRIES = 5  # a deadlock victim runs again, up to this many tries in all

T = TypeVar("T")


class RelationService:
    def __init__(
        self,
        store: RelationStore,
        users: UserDirectory,
        notices: Notices,
        group_limit: int = GROUP_LIMIT,
        limiter: RateLimiter | None = None,
        searches_per_minute: int = 30,
        status: StatusNotices | None = None,
        changes: RelationChanges | None = None,
        *,
        units: RelationUnits,
    ) -> None:
        self._store = store  # reads outside units of work
        self._units = units  # every command that writes: one transaction, its notices in the outbox
        self._users = users
        self._relay = OutboxRelay(units.outbox, notices)
        self._group_limit = group_limit
        self._limiter = limiter  # user search; None = unlimited
        self._searches_per_minute = searches_per_minute
        self._status = status  # online status: told when a block or a delete hides a user's status
        self._changes = changes  # the messaging-rules caches: told of every pair or membership change

    # ---------- the messaging rules ----------
    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        if sender_id == receiver_id:
            raise ImError(INVALID_ARGUMENT, "you cannot send a message to yourself")
        state = await self._store.pair_state(sender_id, receiver_id)
        if not state.friends:
            await self._require_user(receiver_id)
        check_direct_message(state)

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        members = await self._store.member_ids(group_id)
        if sender_id not in members:
            if not members and await self._store.group(group_id) is None:
                raise ImError(NOT_FOUND, f"group {group_id} does not exist")
            raise ImError(NOT_MEMBER, "only members can post to this group")
        return members

    # ---------- friends ----------
    async def apply_friend(self, caller: Caller, target_id: int, reason: str) -> bool:
        """Ask target to be friends; True when no approval was needed (they are friends now)."""
        me = caller.user_id
        if me == target_id:
            raise ImError(INVALID_ARGUMENT, "you cannot add yourself")
        reason = check_reason(reason)
        await self._require_user(target_id)

        async def apply(uow: RelationUnitOfWork) -> bool:
            return await self._apply_friend(uow, me, target_id, reason)

        friends_now, notices = await self._atomically(apply)
        if friends_now:
            await self._pair_changed(me, target_id)
        await self._deliver(notices)
        return friends_now

    async def _apply_friend(self, uow: RelationUnitOfWork, me: int, target_id: int, reason: str) -> bool:
        store = uow.store
        state = await store.pair_state(me, target_id)
        if state.b_blocks_a:
            raise ImError(BLOCKED, "this user does not accept friend requests from you")
        if state.friends:
            raise ImError(ALREADY_EXISTS, "you are friends already")
        if state.b_to_a == RelationStatus.NORMAL:
            # They still list me (I had deleted them): adding back needs no approval, as in WeChat.
            await store.make_friends(me, target_id)
            await uow.outbox.add(PendingNotice.to_user(me, target_id, notice("friend_added", user_id=me)))
            return True
        theirs = await store.friend_request(target_id, me)
        pending_theirs = theirs is not None and theirs.status == RequestStatus.PENDING
        # They asked me first: my request is my answer.
        if pending_theirs and await store.settle_friend_request(target_id, me, RequestStatus.ACCEPTED):
            await store.make_friends(me, target_id)
            await uow.outbox.add(PendingNotice.to_user(me, target_id, notice("friend_accepted", user_id=me)))
            return True
        mine = await store.friend_request(me, target_id)
        if mine is not None and mine.status == RequestStatus.PENDING:
            raise ImError(ALREADY_EXISTS, "your request to this user is still pending")
        await store.put_friend_request(me, target_id, reason)
        content = notice("friend_request", request_uid=me, reason=reason)
        await uow.outbox.add(PendingNotice.to_user(me, target_id, content, friend_request=True))
        return False

    async def handle_friend(self, caller: Caller, applicant_id: int, agree: bool) -> None:
        me = caller.user_id
        status = RequestStatus.ACCEPTED if agree else RequestStatus.REJECTED

        # settled, befriended (on agree) and the applicant's notice written: all three or none
        async def settle(uow: RelationUnitOfWork) -> None:
            request = await uow.store.friend_request(applicant_id, me)
            if request is None or request.status != RequestStatus.PENDING:
                raise ImError(NOT_FOUND, "there is no pending friend request from this user to you")
            if not await uow.store.settle_friend_request(applicant_id, me, status):
                raise ImError(NOT_FOUND, "this friend request was settled already")
            if agree:
                await uow.store.make_friends(applicant_id, me)
            event = "friend_accepted" if agree else "friend_rejected"
            await uow.outbox.add(PendingNotice.to_user(me, applicant_id, notice(event, user_id=me)))

        _, notices = await self._atomically(settle)
        if agree:
            await self._pair_changed(applicant_id, me)
        await self._deliver(notices)

    async def friends(self, caller: Caller) -> list[UserProfile]:
        return await self._profiles_in_order(await self._store.friend_ids(caller.user_id))

    async def delete_friend(self, caller: Caller, friend_id: int) -> None:
        async def delete(uow: RelationUnitOfWork) -> bool:
            """Whether they saw each other's status until now."""
            state = await uow.store.pair_state(caller.user_id, friend_id)
            if state.a_to_b != RelationStatus.NORMAL:
                raise ImError(NOT_FOUND, "this user is not in your friend list")
            # One-way: they still list you, but neither side can send until you add them back.
            await uow.store.set_status(caller.user_id, friend_id, RelationStatus.DELETED)
            return not state.a_blocks_b and not state.b_blocks_a and state.friends

        visible, _ = await self._atomically(delete)
        await self._pair_changed(caller.user_id, friend_id)
        if visible:
            await self._hide_status(caller.user_id, friend_id)

    async def block(self, caller: Caller, user_id: int) -> None:
        if user_id == caller.user_id:
            raise ImError(INVALID_ARGUMENT, "you cannot block yourself")
        await self._require_user(user_id)

        async def block(uow: RelationUnitOfWork) -> bool:
            """Whether they saw each other's status until now."""
            state = await uow.store.pair_state(caller.user_id, user_id)
            await uow.store.block(caller.user_id, user_id)
            return state.friends and not state.a_blocks_b and not state.b_blocks_a

        visible, _ = await self._atomically(block)
        await self._pair_changed(caller.user_id, user_id)
        if visible:
            await self._hide_status(caller.user_id, user_id)

    async def unblock(self, caller: Caller, user_id: int) -> None:
        await self._store.unblock(caller.user_id, user_id)  # one write, no notice: its own transaction
        await self._pair_changed(caller.user_id, user_id)

    async def blacklist(self, caller: Caller) -> list[UserProfile]:
        return await self._profiles_in_order(await self._store.blocked_ids(caller.user_id))

    # ---------- profiles ----------
    async def profiles(self, user_ids: Sequence[int]) -> list[UserProfile]:
        if len(user_ids) > MAX_PROFILES:
            raise ImError(INVALID_ARGUMENT, f"ask for at most {MAX_PROFILES} users at once")
        return await self._profiles_in_order(list(dict.fromkeys(user_ids)))

    async def visible_profiles(self, caller: Caller, user_ids: Sequence[int]) -> list[UserProfile]:
        """Profiles by id, left out for users the caller has no reason to see: visible are the caller,
        anyone with a relation row either way (friends, deleted friends), anyone the caller blocked, a
        friend request either way, members of the caller's groups, anyone who was in a group at the same
        time as the caller (either may have left since, or the group dissolved: their names are in old
        messages, as in WeChat), and applicants to groups the caller manages. Strangers are found by
        exact username search, not by walking ids."""
        if len(user_ids) > MAX_PROFILES:
            raise ImError(INVALID_ARGUMENT, f"ask for at most {MAX_PROFILES} users at once")
        me = caller.user_id
        wanted = list(dict.fromkeys(user_ids))
        visible = {me}
        rest = [u for u in wanted if u != me]
        if rest:
            groups = await self._store.groups_of(me)
            managed = []
            for g in groups:
                visible.update(await self._store.member_ids(g.group_id))
                if await self._store.role(g.group_id, me) in (GroupRole.OWNER, GroupRole.ADMIN):
                    managed.append(g.group_id)
            unseen = [u for u in rest if u not in visible]
            if unseen:  # one query for the shared past in groups, before the per-user checks
                visible.update(await self._store.past_co_members(me, unseen))
            for u in rest:
                if u in visible:
                    continue
                if await self._has_reason_to_see(me, u, managed):
                    visible.add(u)
        return await self._profiles_in_order([u for u in wanted if u in visible])

    async def _has_reason_to_see(self, me: int, other: int, managed_groups: list[int]) -> bool:
        pair = await self._store.pair_state(me, other)
        if pair.a_to_b is not None or pair.b_to_a is not None or pair.a_blocks_b:
            return True
        if await self._store.friend_request(other, me) or await self._store.friend_request(me, other):
            return True
        for group_id in managed_groups:
            if await self._store.join_request(group_id, other) is not None:
                return True
        return False

    async def update_nickname(self, caller: Caller, nickname: str) -> None:
        await self._users.update_nickname(caller.user_id, nickname)

    # ---------- groups ----------
    async def create_group(self, caller: Caller, name: str, member_ids: Sequence[int]) -> int:
        owner = caller.user_id
        name = check_group_name(name)
        members = [m for m in dict.fromkeys(member_ids) if m != owner]
        if 1 + len(members) > self._group_limit:
            raise ImError(GROUP_FULL, f"a group has at most {self._group_limit} members")
        missing = set(members) - set(await self._users.get_profiles(members))
        if missing:
            raise ImError(NOT_FOUND, f"no such user(s): {sorted(missing)}")

        async def create(uow: RelationUnitOfWork) -> int:
            not_friends = set(members) - set(await uow.store.friend_ids(owner))
            if not_friends:
                raise ImError(
                    PERMISSION_DENIED,
                    f"you can only add friends to a group; not friends: {sorted(not_friends)}",
                )
            if await uow.store.blockers_of(owner, members):
                raise ImError(BLOCKED, "some of these users do not accept invitations from you")
            group_id = await uow.store.create_group(name, owner, members)
            everyone = [owner, *members]
            content = notice("group_created", group_id=group_id, name=name, member_ids=everyone)
            await uow.outbox.add(PendingNotice.to_group(owner, group_id, everyone, content))
            return group_id

        group_id, notices = await self._atomically(create)
        await self._deliver(notices)
        return group_id

    async def join_group(self, caller: Caller, group_id: int) -> None:
        me = caller.user_id

        async def join(uow: RelationUnitOfWork) -> None:
            group = await self._group(group_id, uow.store)
            if await uow.store.role(group_id, me) is not None:
                raise ImError(ALREADY_EXISTS, "you are a member of this group already")
            if group.member_count >= self._group_limit:
                raise ImError(GROUP_FULL, "this group is full")
            if await uow.store.join_request(group_id, me) == RequestStatus.PENDING:
                raise ImError(ALREADY_EXISTS, "your request to join is still pending")
            await uow.store.put_join_request(group_id, me)
            content = notice("group_join_request", group_id=group_id, user_id=me)
            await uow.outbox.add(PendingNotice.to_user(me, group.owner_id, content))

        _, notices = await self._atomically(join)
        await self._deliver(notices)

    async def handle_join(self, caller: Caller, group_id: int, applicant_id: int, agree: bool) -> None:
        # member added, request settled and the group told: all or nothing
        async def settle(uow: RelationUnitOfWork) -> None:
            store = uow.store
            group = await self._group(group_id, store)
            if await store.role(group_id, caller.user_id) not in (GroupRole.OWNER, GroupRole.ADMIN):
                raise ImError(PERMISSION_DENIED, "only the group owner or an admin can handle join requests")
            if await store.join_request(group_id, applicant_id) != RequestStatus.PENDING:
                raise ImError(NOT_FOUND, "there is no pending join request from this user")
            if not agree:
                if await store.settle_join_request(group_id, applicant_id, RequestStatus.REJECTED):
                    content = notice("group_join_rejected", group_id=group_id, name=group.name)
                    await uow.outbox.add(PendingNotice.to_user(caller.user_id, applicant_id, content))
            else:
                try:
                    await store.add_member(group_id, applicant_id, self._group_limit)
                except GroupFull:
                    raise ImError(GROUP_FULL, "this group is full; the request stays pending") from None
                except GroupGone:
                    raise ImError(NOT_FOUND, f"group {group_id} does not exist") from None
                await store.settle_join_request(group_id, applicant_id, RequestStatus.ACCEPTED)
                # Announced to everyone now in the group, the newcomer included: that is how they learn of it.
                await self._announce(
                    uow,
                    caller.user_id,
                    group_id,
                    notice("member_joined", group_id=group_id, user_id=applicant_id),
                )

        _, notices = await self._atomically(settle)
        if agree:
            await self._group_changed(group_id)
        await self._deliver(notices)

    async def leave_group(self, caller: Caller, group_id: int) -> None:
        async def leave(uow: RelationUnitOfWork) -> None:
            role = await uow.store.role(group_id, caller.user_id)
            if role is None:
                raise ImError(NOT_MEMBER, "you are not a member of this group")
            if role == GroupRole.OWNER:
                raise ImError(PERMISSION_DENIED, "the owner cannot leave the group")
            if not await uow.store.remove_member(group_id, caller.user_id):
                # removed (or the group dissolved) since this transaction's first read: nobody is told twice
                raise ImError(NOT_MEMBER, "you are not a member of this group")
            await self._announce(
                uow,
                caller.user_id,
                group_id,
                notice("member_left", group_id=group_id, user_id=caller.user_id),
            )

        _, notices = await self._atomically(leave)
        await self._group_changed(group_id)
        await self._deliver(notices)

    async def remove_member(self, caller: Caller, group_id: int, member_id: int) -> None:
        async def remove(uow: RelationUnitOfWork) -> bool:
            """Whether they were removed now (not by someone else meanwhile)."""
            store = uow.store
            await self._group(group_id, store)
            my_role = await store.role(group_id, caller.user_id)
            their_role = await store.role(group_id, member_id)
            if their_role is None:
                raise ImError(NOT_MEMBER, "this user is not a member of the group")
            if my_role is None or my_role <= their_role or my_role < GroupRole.ADMIN:
                raise ImError(
                    PERMISSION_DENIED, "only the owner (or an admin, for members) can remove a member"
                )
            if not await store.remove_member(group_id, member_id):
                return False
            content = notice("removed_from_group", group_id=group_id)
            await uow.outbox.add(PendingNotice.to_user(caller.user_id, member_id, content))
            await self._announce(
                uow, caller.user_id, group_id, notice("member_removed", group_id=group_id, user_id=member_id)
            )
            return True

        removed, notices = await self._atomically(remove)
        if removed:
            await self._group_changed(group_id)
            await self._deliver(notices)

    async def my_groups(self, caller: Caller) -> list[Group]:
        return await self._store.groups_of(caller.user_id)

    async def group_members(self, caller: Caller, group_id: int) -> list[tuple[UserProfile, Member]]:
        members = await self._store.members(group_id)
        if all(m.user_id != caller.user_id for m in members):
            await self._group(group_id)
            raise ImError(NOT_MEMBER, "only members can see who is in this group")
        profiles = await self._users.get_profiles(m.user_id for m in members)
        return [(profiles[m.user_id], m) for m in members if m.user_id in profiles]

    # recall: a member's role
    async def group_role(self, group_id: int, user_id: int) -> int:
        return int(await self._store.role(group_id, user_id) or 0)

    # ---------- user search ----------
    async def search_users(
        self, caller: Caller, username: str, nickname_prefix: str, limit: int, cursor: str
    ) -> SearchPage:
        """Exact username, or nickname prefix paged by cursor; every request (page) counts against the
        caller's searches per minute, so the user directory cannot be walked quickly."""
        query = search_query(username, nickname_prefix, limit, cursor)
        if self._limiter is not None and not await self._limiter.hit(
            f"search:{caller.user_id}", self._searches_per_minute, SEARCH_WINDOW_SECONDS
        ):
            raise ImError(RATE_LIMITED, "too many searches; try again in a minute")
        found = await self._users.search_profiles(
            query.username, query.nickname_prefix, query.after_user_id, query.limit + 1
        )
        page = found[: query.limit]
        more = len(found) > query.limit
        return SearchPage(page, search_cursor(page[-1].user_id) if more else "")

    async def privacy(self, caller: Caller) -> Privacy:
        return await self._users.privacy(caller.user_id)

    async def set_privacy(self, caller: Caller, privacy: Privacy) -> Privacy:
        return await self._users.set_privacy(caller.user_id, privacy)

    # ---------- group owner actions ----------
    async def transfer_group(self, caller: Caller, group_id: int, new_owner_id: int) -> None:
        me = caller.user_id

        async def transfer(uow: RelationUnitOfWork) -> None:
            store = uow.store
            await self._group(group_id, store)
            if await store.role(group_id, me) != GroupRole.OWNER:
                raise ImError(PERMISSION_DENIED, "only the group owner can transfer the group")
            if new_owner_id == me:
                raise ImError(INVALID_ARGUMENT, "you own this group already")
            if await store.role(group_id, new_owner_id) is None:
                raise ImError(NOT_MEMBER, "the new owner must be a member of the group")
            if not await store.transfer_owner(group_id, me, new_owner_id):
                raise ImError(PERMISSION_DENIED, "the group changed meanwhile; try again")
            await self._announce(
                uow,
                me,
                group_id,
                notice("owner_transferred", group_id=group_id, old_owner_id=me, new_owner_id=new_owner_id),
            )

        _, notices = await self._atomically(transfer)
        await self._deliver(notices)

    async def set_group_admin(self, caller: Caller, group_id: int, member_id: int, admin: bool) -> None:
        async def appoint(uow: RelationUnitOfWork) -> None:
            store = uow.store
            await self._group(group_id, store)
            if await store.role(group_id, caller.user_id) != GroupRole.OWNER:
                raise ImError(PERMISSION_DENIED, "only the group owner can appoint or remove admins")
            role = await store.role(group_id, member_id)
            if role is None:
                raise ImError(NOT_MEMBER, "this user is not a member of the group")
            if role == GroupRole.OWNER:
                raise ImError(INVALID_ARGUMENT, "the owner's role changes only by a transfer")
            wanted = GroupRole.ADMIN if admin else GroupRole.MEMBER
            if role == wanted:
                return  # nothing changes, nobody is told
            await store.set_role(group_id, member_id, wanted)
            event = "admin_appointed" if admin else "admin_removed"
            await self._announce(
                uow, caller.user_id, group_id, notice(event, group_id=group_id, user_id=member_id)
            )

        _, notices = await self._atomically(appoint)
        await self._deliver(notices)

    async def update_group(
        self, caller: Caller, group_id: int, name: str | None, announcement: str | None
    ) -> Group:
        if name is None and announcement is None:
            raise ImError(INVALID_ARGUMENT, "give a new name, a new announcement, or both")
        name = None if name is None else check_group_name(name)
        announcement = None if announcement is None else check_announcement(announcement)

        async def update(uow: RelationUnitOfWork) -> Group:
            store = uow.store
            group = await self._group(group_id, store)
            if await store.role(group_id, caller.user_id) not in (GroupRole.OWNER, GroupRole.ADMIN):
                raise ImError(PERMISSION_DENIED, "only the group owner or an admin can change the group")
            # what differs from the group as this attempt found it (a rerun compares afresh)
            new_name = None if name == group.name else name
            new_announcement = None if announcement == group.announcement else announcement
            if new_name is None and new_announcement is None:
                return group
            await store.update_group(group_id, new_name, new_announcement)
            if new_name is not None:
                await self._announce(
                    uow, caller.user_id, group_id, notice("group_renamed", group_id=group_id, name=new_name)
                )
            if new_announcement is not None:
                await self._announce(
                    uow,
                    caller.user_id,
                    group_id,
                    notice("announcement_updated", group_id=group_id, announcement=new_announcement),
                )
            return await self._group(group_id, store)

        changed, notices = await self._atomically(update)
        await self._deliver(notices)
        return changed

    async def dissolve_group(self, caller: Caller, group_id: int) -> None:
        async def dissolve(uow: RelationUnitOfWork) -> None:
            group = await self._group(group_id, uow.store)
            if await uow.store.role(group_id, caller.user_id) != GroupRole.OWNER:
                raise ImError(PERMISSION_DENIED, "only the group owner can dissolve the group")
            await self._dissolve(uow, group, notice("group_dissolved", group_id=group_id, name=group.name))

        _, notices = await self._atomically(dissolve)
        await self._group_changed(group_id)
        await self._deliver(notices)

    async def _dissolve(self, uow: RelationUnitOfWork, group: Group, content: str) -> int:
        """Dissolve and tell every former member (in the unit of work); how many members it had."""
        members = await uow.store.dissolve_group(group.group_id)
        if members is None:
            raise ImError(NOT_FOUND, f"group {group.group_id} does not exist")
        # the last message of the group: every former member gets it in the group conversation
        await uow.outbox.add(PendingNotice.to_group(group.owner_id, group.group_id, members, content))
        return len(members)

    # ---------- admin API ----------
    async def admin_dissolve_group(self, group_id: int) -> Group:
        async def dissolve(uow: RelationUnitOfWork) -> Group:
            group = await self._group(group_id, uow.store)
            # the notice owner actions send, marked as an administrator's doing (still from the owner's seat)
            content = notice("group_dissolved", group_id=group_id, name=group.name, by="admin")
            return replace(group, member_count=await self._dissolve(uow, group, content))

        dissolved, notices = await self._atomically(dissolve)
        await self._group_changed(group_id)
        await self._deliver(notices)
        return dissolved

    async def group_count(self) -> int:
        return await self._store.count_groups()

    # ---------- units of work and the notice outbox ----------
    async def _atomically(
        self, work: Callable[[RelationUnitOfWork], Awaitable[T]]
    ) -> tuple[T, list[PendingNotice]]:
        """`work` in one unit of work, committed when it returns (rolled back when it raises), run again
        when the unit of work lost a race to a concurrent one; its result, and the notices the attempt
        that committed wrote (only those: a rolled-back attempt's notices are gone with it)."""
        for attempt in range(_UNIT_OF_WORK_TRIES):
            try:
                async with self._units.begin() as uow:
                    result = await work(uow)
                    await uow.commit()
                return result, list(uow.outbox.added)
            except LostRace:
                if attempt == _UNIT_OF_WORK_TRIES - 1:
                    raise
                log.info("relation unit of work lost a race; running it again (try %d)", attempt + 2)
                await asyncio.sleep(0.005 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

    async def _deliver(self, notices: list[PendingNotice]) -> None:
        """Right after a commit: post the notices it wrote (a failure leaves them to the relay)."""
        if notices:
            await self._relay.deliver(notices)

    async def drain_outbox(self) -> int:
        """Deliver every notice still in the outbox now; how many were delivered."""
        return await self._relay.drain()

    async def relay_outbox(self, every_seconds: float = RELAY_EVERY_SECONDS) -> None:
        """Forever: deliver the notices a crash or a failed delivery left in the outbox (run in the
        background by every process of the user role)."""
        await self._relay.run(every_seconds)

    # ---------- the messaging-rules caches ----------
    async def _pair_changed(self, a: int, b: int) -> None:
        if self._changes is not None:
            await self._changes.pair_changed(a, b)

    async def _group_changed(self, group_id: int) -> None:
        if self._changes is not None:
            await self._changes.group_changed(group_id)

    # ---------- online status ----------
    async def status_watchers(self, user_id: int) -> list[int]:
        return await self._mutual_unblocked(user_id, await self._store.friend_ids(user_id))

    async def status_visible(self, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
        if len(user_ids) > MAX_PROFILES:
            raise ImError(INVALID_ARGUMENT, f"ask for at most {MAX_PROFILES} users at once")
        wanted = set(user_ids)
        mine = [f for f in await self._store.friend_ids(viewer_id) if f in wanted]
        visible = set(await self._mutual_unblocked(viewer_id, mine))
        return [u for u in dict.fromkeys(user_ids) if u in visible]

    async def _hide_status(self, a: int, b: int) -> None:
        """They saw each other's status until now and no longer may: their devices are told the other
        went offline (only then: a notice about a stranger would give a block away). A hint only."""
        if self._status is None:
            return
        try:
            await self._status.hide(a, b)
            await self._status.hide(b, a)
        except Exception:
            log.warning("status hide not delivered", exc_info=True)

    async def _mutual_unblocked(self, user_id: int, friends: Sequence[int]) -> list[int]:
        """Of user_id's friends, those who list user_id too and are not blocked either way."""
        if not friends:
            return []
        mutual = await self._store.listed_by(user_id, friends)
        blocked = set(await self._store.blocked_ids(user_id)) | await self._store.blockers_of(
            user_id, friends
        )
        return [f for f in friends if f in mutual and f not in blocked]

    # ---------- helpers ----------
    async def _announce(self, uow: RelationUnitOfWork, sender_id: int, group_id: int, content: str) -> None:
        """A notice to everyone in the group as the unit of work left it."""
        members = await uow.store.member_ids(group_id)
        await uow.outbox.add(PendingNotice.to_group(sender_id, group_id, members, content))

    async def _group(self, group_id: int, store: RelationStore | None = None) -> Group:
        group = await (store or self._store).group(group_id)
        if group is None:
            raise ImError(NOT_FOUND, f"group {group_id} does not exist")
        return group

    async def _require_user(self, user_id: int) -> None:
        if user_id not in await self._users.get_profiles([user_id]):
            raise ImError(NOT_FOUND, f"user {user_id} does not exist")

    async def _profiles_in_order(self, user_ids: Sequence[int]) -> list[UserProfile]:
        found = await self._users.get_profiles(user_ids)
        return [found[u] for u in user_ids if u in found]
