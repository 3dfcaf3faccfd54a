"""RelationApi served by a remote user role: the same port as RelationService, over gRPC."""

from __future__ import annotations

from collections.abc import Sequence

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.rpc import Channels, RoleChannels, context_of
from tinyim.kernel import Caller, Privacy, UserProfile
from tinyim.modules.relation.domain import Group, GroupRole, Member, SearchPage
from tinyim.modules.relation.protocol import group, privacy, privacy_pb, profile
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb


class GrpcRelationClient:
    @classmethod
    def connect(
        cls, directory: NodeDirectory, channels: Channels, deadline_seconds: float
    ) -> GrpcRelationClient:
        """The client of the `user` role's live nodes (the registry finds them), over typed stubs."""
        return cls(RoleChannels("user", directory, channels, ipb_grpc.UserServiceStub, deadline_seconds))

    def __init__(self, remote: RoleChannels[ipb_grpc.UserServiceAsyncStub]) -> None:
        self._remote = remote

    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        await self._remote.invoke(
            lambda s, t: s.CheckDirect(
                ipb.CheckDirectReq(sender_id=sender_id, receiver_id=receiver_id), timeout=t
            )
        )

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        resp = await self._remote.invoke(
            lambda s, t: s.GroupRecipients(
                ipb.GroupRecipientsReq(sender_id=sender_id, group_id=group_id), timeout=t
            )
        )
        return list(resp.user_ids)

    async def apply_friend(self, caller: Caller, target_id: int, reason: str) -> bool:
        req = ipb.AddFriendInternalReq(
            ctx=context_of(caller), req=pb.FriendApplyReq(target_user_id=target_id, reason=reason)
        )
        return bool(
            (
                await self._remote.invoke(lambda s, t: s.AddFriend(req, timeout=t), idempotent=False)
            ).now_friends
        )

    async def handle_friend(self, caller: Caller, applicant_id: int, agree: bool) -> None:
        req = ipb.HandleFriendInternalReq(
            ctx=context_of(caller), req=pb.FriendHandleReq(request_user_id=applicant_id, agree=agree)
        )
        await self._remote.invoke(lambda s, t: s.HandleFriendApply(req, timeout=t), idempotent=False)

    async def friends(self, caller: Caller) -> list[UserProfile]:
        resp = await self._remote.invoke(
            lambda s, t: s.GetFriendList(ipb.FriendListInternalReq(ctx=context_of(caller)), timeout=t)
        )
        return [profile(u) for u in resp.friends]

    async def delete_friend(self, caller: Caller, friend_id: int) -> None:
        req = ipb.DeleteFriendInternalReq(ctx=context_of(caller), req=pb.FriendDelReq(friend_id=friend_id))
        await self._remote.invoke(lambda s, t: s.DeleteFriend(req, timeout=t), idempotent=False)

    async def block(self, caller: Caller, user_id: int) -> None:
        req = ipb.BlockInternalReq(ctx=context_of(caller), req=pb.BlacklistAddReq(user_id=user_id))
        await self._remote.invoke(lambda s, t: s.Block(req, timeout=t))

    async def unblock(self, caller: Caller, user_id: int) -> None:
        req = ipb.UnblockInternalReq(ctx=context_of(caller), req=pb.BlacklistDelReq(user_id=user_id))
        await self._remote.invoke(lambda s, t: s.Unblock(req, timeout=t))

    async def blacklist(self, caller: Caller) -> list[UserProfile]:
        resp = await self._remote.invoke(
            lambda s, t: s.GetBlacklist(ipb.BlacklistInternalReq(ctx=context_of(caller)), timeout=t)
        )
        return [profile(u) for u in resp.users]

    async def profiles(self, user_ids: Sequence[int]) -> list[UserProfile]:
        resp = await self._remote.invoke(
            lambda s, t: s.GetUserInfo(pb.UserInfoReq(user_ids=list(user_ids)), timeout=t)
        )
        return [profile(u) for u in resp.users]

    async def visible_profiles(self, caller: Caller, user_ids: Sequence[int]) -> list[UserProfile]:
        req = ipb.VisibleUserInfoInternalReq(
            ctx=context_of(caller), req=pb.UserInfoReq(user_ids=list(user_ids))
        )
        resp = await self._remote.invoke(lambda s, t: s.GetVisibleUserInfo(req, timeout=t))
        return [profile(u) for u in resp.users]

    async def update_nickname(self, caller: Caller, nickname: str) -> None:
        req = ipb.ProfileUpdateInternalReq(ctx=context_of(caller), req=pb.ProfileUpdateReq(nickname=nickname))
        await self._remote.invoke(lambda s, t: s.UpdateProfile(req, timeout=t))

    async def create_group(self, caller: Caller, name: str, member_ids: Sequence[int]) -> int:
        req = ipb.CreateGroupInternalReq(
            ctx=context_of(caller), req=pb.GroupCreateReq(group_name=name, member_ids=list(member_ids))
        )
        return int(
            (await self._remote.invoke(lambda s, t: s.CreateGroup(req, timeout=t), idempotent=False)).group_id
        )

    async def join_group(self, caller: Caller, group_id: int) -> None:
        req = ipb.JoinGroupInternalReq(ctx=context_of(caller), req=pb.GroupJoinReq(group_id=group_id))
        await self._remote.invoke(lambda s, t: s.JoinGroup(req, timeout=t), idempotent=False)

    async def handle_join(self, caller: Caller, group_id: int, applicant_id: int, agree: bool) -> None:
        req = ipb.HandleJoinInternalReq(
            ctx=context_of(caller),
            req=pb.GroupJoinHandleReq(group_id=group_id, applicant_id=applicant_id, agree=agree),
        )
        await self._remote.invoke(lambda s, t: s.HandleJoin(req, timeout=t), idempotent=False)

    async def leave_group(self, caller: Caller, group_id: int) -> None:
        req = ipb.LeaveGroupInternalReq(ctx=context_of(caller), req=pb.GroupLeaveReq(group_id=group_id))
        await self._remote.invoke(lambda s, t: s.LeaveGroup(req, timeout=t), idempotent=False)

    async def remove_member(self, caller: Caller, group_id: int, member_id: int) -> None:
        req = ipb.RemoveMemberInternalReq(
            ctx=context_of(caller), req=pb.GroupRemoveReq(group_id=group_id, member_id=member_id)
        )
        await self._remote.invoke(lambda s, t: s.RemoveMember(req, timeout=t), idempotent=False)

    async def my_groups(self, caller: Caller) -> list[Group]:
        resp = await self._remote.invoke(
            lambda s, t: s.GetGroupList(ipb.GroupListInternalReq(ctx=context_of(caller)), timeout=t)
        )
        return [group(g) for g in resp.groups]

    async def group_members(self, caller: Caller, group_id: int) -> list[tuple[UserProfile, Member]]:
        req = ipb.GroupMemberInternalReq(ctx=context_of(caller), req=pb.GroupMemberReq(group_id=group_id))
        resp = await self._remote.invoke(lambda s, t: s.GetGroupMembers(req, timeout=t))
        return [(profile(m.user), Member(m.user.user_id, GroupRole(int(m.role)))) for m in resp.member_infos]

    # recall: a member's role
    async def group_role(self, group_id: int, user_id: int) -> int:
        resp = await self._remote.invoke(
            lambda s, t: s.GetGroupRole(ipb.GroupRoleReq(group_id=group_id, user_id=user_id), timeout=t)
        )
        return int(resp.role)

    # ---------- user search ----------
    async def search_users(
        self, caller: Caller, username: str, nickname_prefix: str, limit: int, cursor: str
    ) -> SearchPage:
        req = ipb.UserSearchInternalReq(
            ctx=context_of(caller),
            req=pb.UserSearchReq(
                username=username, nickname_prefix=nickname_prefix, limit=limit, cursor=cursor
            ),
        )
        resp = await self._remote.invoke(
            lambda s, t: s.SearchUsers(req, timeout=t)
        )  # a read: retried elsewhere after a failure
        return SearchPage([profile(u) for u in resp.users], resp.next_cursor)

    async def privacy(self, caller: Caller) -> Privacy:
        resp = await self._remote.invoke(
            lambda s, t: s.GetPrivacy(ipb.PrivacyGetInternalReq(ctx=context_of(caller)), timeout=t)
        )
        return privacy(resp.settings)

    async def set_privacy(self, caller: Caller, settings: Privacy) -> Privacy:
        req = ipb.PrivacySetInternalReq(
            ctx=context_of(caller), req=pb.PrivacySetReq(settings=privacy_pb(settings))
        )
        return privacy((await self._remote.invoke(lambda s, t: s.SetPrivacy(req, timeout=t))).settings)

    # ---------- group owner actions ----------
    async def transfer_group(self, caller: Caller, group_id: int, new_owner_id: int) -> None:
        req = ipb.GroupTransferInternalReq(
            ctx=context_of(caller), req=pb.GroupTransferReq(group_id=group_id, new_owner_id=new_owner_id)
        )
        await self._remote.invoke(lambda s, t: s.TransferGroup(req, timeout=t), idempotent=False)

    async def set_group_admin(self, caller: Caller, group_id: int, member_id: int, admin: bool) -> None:
        req = ipb.GroupAdminInternalReq(
            ctx=context_of(caller), req=pb.GroupAdminReq(group_id=group_id, member_id=member_id, admin=admin)
        )
        await self._remote.invoke(lambda s, t: s.SetGroupAdmin(req, timeout=t), idempotent=False)

    async def update_group(
        self, caller: Caller, group_id: int, name: str | None, announcement: str | None
    ) -> Group:
        update = pb.GroupUpdateReq(group_id=group_id)
        if name is not None:
            update.group_name = name
        if announcement is not None:
            update.announcement = announcement
        req = ipb.GroupUpdateInternalReq(ctx=context_of(caller), req=update)
        return group(
            (await self._remote.invoke(lambda s, t: s.UpdateGroup(req, timeout=t), idempotent=False)).group
        )

    async def dissolve_group(self, caller: Caller, group_id: int) -> None:
        req = ipb.GroupDissolveInternalReq(ctx=context_of(caller), req=pb.GroupDissolveReq(group_id=group_id))
        await self._remote.invoke(lambda s, t: s.DissolveGroup(req, timeout=t), idempotent=False)

    # admin API
    async def admin_dissolve_group(self, group_id: int) -> Group:
        req = ipb.AdminGroupReq(group_id=group_id)
        return group(
            await self._remote.invoke(lambda s, t: s.AdminDissolveGroup(req, timeout=t), idempotent=False)
        )

    async def group_count(self) -> int:
        return int((await self._remote.invoke(lambda s, t: s.CountGroups(ipb.Ack(), timeout=t))).count)

    # ---------- online status ----------
    async def status_watchers(self, user_id: int) -> list[int]:
        resp = await self._remote.invoke(
            lambda s, t: s.StatusWatchers(ipb.StatusWatchersReq(user_id=user_id), timeout=t)
        )
        return list(resp.user_ids)

    async def status_visible(self, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
        req = ipb.StatusVisibleReq(viewer_id=viewer_id, user_ids=list(user_ids))
        return list((await self._remote.invoke(lambda s, t: s.StatusVisible(req, timeout=t))).user_ids)
