"""The user role over gRPC: the servicer (protobuf in, the local RelationApi, protobuf out) and the
client adapter (the same port as RelationService, over typed stubs) side by side, on the mapping of
`protocol.py` (which the gateway edge shares, since the internal RPCs carry client-protocol messages)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.rpc import Channels, Ctx, Registrar, RoleChannels, caller_of, context_of, translate_errors
from tinyim.kernel import Caller, Privacy, UserProfile
from tinyim.modules.relation.domain import Group, Member, SearchPage
from tinyim.modules.relation.ports import RelationApi
from tinyim.modules.relation.protocol import (
    group,
    group_info,
    group_members,
    group_members_resp,
    group_update_fields,
    group_update_req,
    privacy,
    privacy_pb,
    profile,
    search_page,
    search_resp,
    user_info,
)
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb


# ---------- server ----------
class UserServicer(ipb_grpc.UserServiceServicer):
    def __init__(self, relation: RelationApi) -> None:
        self._relation = relation

    @translate_errors
    async def CheckDirect(self, request: ipb.CheckDirectReq, context: Ctx) -> ipb.Ack:
        await self._relation.check_direct(request.sender_id, request.receiver_id)
        return ipb.Ack()

    @translate_errors
    async def GroupRecipients(self, request: ipb.GroupRecipientsReq, context: Ctx) -> ipb.UserIds:
        return ipb.UserIds(
            user_ids=await self._relation.group_recipients(request.sender_id, request.group_id)
        )

    @translate_errors
    async def AddFriend(self, request: ipb.AddFriendInternalReq, context: Ctx) -> pb.FriendApplyResp:
        now = await self._relation.apply_friend(
            caller_of(request.ctx), request.req.target_user_id, request.req.reason
        )
        return pb.FriendApplyResp(success=True, now_friends=now)

    @translate_errors
    async def HandleFriendApply(
        self, request: ipb.HandleFriendInternalReq, context: Ctx
    ) -> pb.FriendHandleResp:
        await self._relation.handle_friend(
            caller_of(request.ctx), request.req.request_user_id, request.req.agree
        )
        return pb.FriendHandleResp(success=True)

    @translate_errors
    async def GetFriendList(self, request: ipb.FriendListInternalReq, context: Ctx) -> pb.FriendListResp:
        friends = await self._relation.friends(caller_of(request.ctx))
        return pb.FriendListResp(friends=[user_info(p) for p in friends])

    @translate_errors
    async def DeleteFriend(self, request: ipb.DeleteFriendInternalReq, context: Ctx) -> pb.FriendDelResp:
        await self._relation.delete_friend(caller_of(request.ctx), request.req.friend_id)
        return pb.FriendDelResp(success=True)

    @translate_errors
    async def Block(self, request: ipb.BlockInternalReq, context: Ctx) -> pb.BlacklistAddResp:
        await self._relation.block(caller_of(request.ctx), request.req.user_id)
        return pb.BlacklistAddResp(success=True)

    @translate_errors
    async def Unblock(self, request: ipb.UnblockInternalReq, context: Ctx) -> pb.BlacklistDelResp:
        await self._relation.unblock(caller_of(request.ctx), request.req.user_id)
        return pb.BlacklistDelResp(success=True)

    @translate_errors
    async def GetBlacklist(self, request: ipb.BlacklistInternalReq, context: Ctx) -> pb.BlacklistListResp:
        users = await self._relation.blacklist(caller_of(request.ctx))
        return pb.BlacklistListResp(users=[user_info(p) for p in users])

    @translate_errors
    async def GetUserInfo(self, request: pb.UserInfoReq, context: Ctx) -> pb.UserInfoResp:
        users = await self._relation.profiles(list(request.user_ids))
        return pb.UserInfoResp(users=[user_info(p) for p in users])

    @translate_errors
    async def GetVisibleUserInfo(
        self, request: ipb.VisibleUserInfoInternalReq, context: Ctx
    ) -> pb.UserInfoResp:
        users = await self._relation.visible_profiles(caller_of(request.ctx), list(request.req.user_ids))
        return pb.UserInfoResp(users=[user_info(p) for p in users])

    @translate_errors
    async def UpdateProfile(
        self, request: ipb.ProfileUpdateInternalReq, context: Ctx
    ) -> pb.ProfileUpdateResp:
        await self._relation.update_nickname(caller_of(request.ctx), request.req.nickname)
        return pb.ProfileUpdateResp(success=True)

    @translate_errors
    async def CreateGroup(self, request: ipb.CreateGroupInternalReq, context: Ctx) -> pb.GroupCreateResp:
        group_id = await self._relation.create_group(
            caller_of(request.ctx), request.req.group_name, list(request.req.member_ids)
        )
        return pb.GroupCreateResp(group_id=group_id, success=True)

    @translate_errors
    async def JoinGroup(self, request: ipb.JoinGroupInternalReq, context: Ctx) -> pb.GroupJoinResp:
        await self._relation.join_group(caller_of(request.ctx), request.req.group_id)
        return pb.GroupJoinResp(success=True, pending=True)

    @translate_errors
    async def HandleJoin(self, request: ipb.HandleJoinInternalReq, context: Ctx) -> pb.GroupJoinHandleResp:
        r = request.req
        await self._relation.handle_join(caller_of(request.ctx), r.group_id, r.applicant_id, r.agree)
        return pb.GroupJoinHandleResp(success=True)

    @translate_errors
    async def LeaveGroup(self, request: ipb.LeaveGroupInternalReq, context: Ctx) -> pb.GroupLeaveResp:
        await self._relation.leave_group(caller_of(request.ctx), request.req.group_id)
        return pb.GroupLeaveResp(success=True)

    @translate_errors
    async def RemoveMember(self, request: ipb.RemoveMemberInternalReq, context: Ctx) -> pb.GroupRemoveResp:
        await self._relation.remove_member(
            caller_of(request.ctx), request.req.group_id, request.req.member_id
        )
        return pb.GroupRemoveResp(success=True)

    @translate_errors
    async def GetGroupList(self, request: ipb.GroupListInternalReq, context: Ctx) -> pb.GroupListResp:
        groups = await self._relation.my_groups(caller_of(request.ctx))
        return pb.GroupListResp(groups=[group_info(g) for g in groups])

    @translate_errors
    async def GetGroupMembers(self, request: ipb.GroupMemberInternalReq, context: Ctx) -> pb.GroupMemberResp:
        return group_members_resp(
            await self._relation.group_members(caller_of(request.ctx), request.req.group_id)
        )

    # recall: a member's role
    @translate_errors
    async def GetGroupRole(self, request: ipb.GroupRoleReq, context: Ctx) -> ipb.GroupRoleResp:
        role = await self._relation.group_role(request.group_id, request.user_id)
        return ipb.GroupRoleResp(role=pb.GroupRole.ValueType(role))

    # ---------- user search ----------
    @translate_errors
    async def SearchUsers(self, request: ipb.UserSearchInternalReq, context: Ctx) -> pb.UserSearchResp:
        r = request.req
        page = await self._relation.search_users(
            caller_of(request.ctx), r.username, r.nickname_prefix, r.limit, r.cursor
        )
        return search_resp(page)

    @translate_errors
    async def GetPrivacy(self, request: ipb.PrivacyGetInternalReq, context: Ctx) -> pb.PrivacyGetResp:
        return pb.PrivacyGetResp(settings=privacy_pb(await self._relation.privacy(caller_of(request.ctx))))

    @translate_errors
    async def SetPrivacy(self, request: ipb.PrivacySetInternalReq, context: Ctx) -> pb.PrivacySetResp:
        stored = await self._relation.set_privacy(caller_of(request.ctx), privacy(request.req.settings))
        return pb.PrivacySetResp(settings=privacy_pb(stored))

    # ---------- group owner actions ----------
    @translate_errors
    async def TransferGroup(
        self, request: ipb.GroupTransferInternalReq, context: Ctx
    ) -> pb.GroupTransferResp:
        r = request.req
        await self._relation.transfer_group(caller_of(request.ctx), r.group_id, r.new_owner_id)
        return pb.GroupTransferResp(success=True)

    @translate_errors
    async def SetGroupAdmin(self, request: ipb.GroupAdminInternalReq, context: Ctx) -> pb.GroupAdminResp:
        r = request.req
        await self._relation.set_group_admin(caller_of(request.ctx), r.group_id, r.member_id, r.admin)
        return pb.GroupAdminResp(success=True)

    @translate_errors
    async def UpdateGroup(self, request: ipb.GroupUpdateInternalReq, context: Ctx) -> pb.GroupUpdateResp:
        name, announcement = group_update_fields(request.req)
        stored = await self._relation.update_group(
            caller_of(request.ctx), request.req.group_id, name, announcement
        )
        return pb.GroupUpdateResp(group=group_info(stored))

    @translate_errors
    async def DissolveGroup(
        self, request: ipb.GroupDissolveInternalReq, context: Ctx
    ) -> pb.GroupDissolveResp:
        await self._relation.dissolve_group(caller_of(request.ctx), request.req.group_id)
        return pb.GroupDissolveResp(success=True)

    # admin API
    @translate_errors
    async def AdminDissolveGroup(self, request: ipb.AdminGroupReq, context: Ctx) -> pb.GroupInfo:
        return group_info(await self._relation.admin_dissolve_group(request.group_id))

    @translate_errors
    async def CountGroups(self, request: ipb.Ack, context: Ctx) -> ipb.Count:
        return ipb.Count(count=await self._relation.group_count())

    # ---------- online status ----------
    @translate_errors
    async def StatusWatchers(self, request: ipb.StatusWatchersReq, context: Ctx) -> ipb.UserIds:
        return ipb.UserIds(user_ids=await self._relation.status_watchers(request.user_id))

    @translate_errors
    async def StatusVisible(self, request: ipb.StatusVisibleReq, context: Ctx) -> ipb.UserIds:
        visible = await self._relation.status_visible(request.viewer_id, list(request.user_ids))
        return ipb.UserIds(user_ids=visible)


def user_registrar(relation: RelationApi) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_UserServiceServicer_to_server(UserServicer(relation), server)
        return ["im.UserService"]

    return register


# ---------- client ----------
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
        return group_members(resp)

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
        return search_page(resp)

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
        req = ipb.GroupUpdateInternalReq(
            ctx=context_of(caller), req=group_update_req(group_id, name, announcement)
        )
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
