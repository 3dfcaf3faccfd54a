"""UserService over gRPC: the relation module's RelationApi, protobuf in and out."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from tinyim.infra.rpc import Ctx, Registrar, caller_of, translate_errors
from tinyim.modules.relation.ports import RelationApi
from tinyim.modules.relation.protocol import (
    group_info,
    group_members_resp,
    group_update_fields,
    privacy,
    privacy_pb,
    user_info,
)
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb


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
        return pb.UserSearchResp(users=[user_info(p) for p in page.users], next_cursor=page.next_cursor)

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
