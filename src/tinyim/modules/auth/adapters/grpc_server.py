"""AuthService over gRPC: protobuf in, the local AuthApi, protobuf out."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from tinyim.infra.rpc import Ctx, Registrar, translate_errors
from tinyim.kernel import UNIMPLEMENTED, ImError, Privacy
from tinyim.modules.auth.domain import AccountSummary, Invite, LoginResult, TokenClaims
from tinyim.modules.auth.ports import AuthAdminApi, AuthApi
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb


def _login_resp(r: LoginResult) -> ipb.LoginInternalResp:
    return ipb.LoginInternalResp(
        user_id=r.user_id,
        token=r.token,
        expires_at=r.expires_at,
        token_id=r.token_id,
        refresh_token=r.refresh_token,
        refresh_expires_at=r.refresh_expires_at,
    )


class AuthServicer(ipb_grpc.AuthServiceServicer):
    def __init__(self, auth: AuthApi, admin: AuthAdminApi | None = None) -> None:
        self._auth = auth
        self._admin_api = admin  # admin API: served only where the role's service is given

    @property
    def _admin(self) -> AuthAdminApi:
        if self._admin_api is None:
            raise ImError(UNIMPLEMENTED, "this auth server does not serve the admin API")
        return self._admin_api

    @translate_errors
    async def Register(self, request: ipb.RegisterInternalReq, context: Ctx) -> ipb.RegisterInternalResp:
        user_id = await self._auth.register(
            request.username, request.password, request.nickname, request.invite_code
        )
        return ipb.RegisterInternalResp(user_id=user_id)

    @translate_errors
    async def Login(self, request: ipb.LoginInternalReq, context: Ctx) -> ipb.LoginInternalResp:
        return _login_resp(await self._auth.login(request.username, request.password, request.device_id))

    @translate_errors
    async def Refresh(self, request: ipb.RefreshInternalReq, context: Ctx) -> ipb.LoginInternalResp:
        return _login_resp(await self._auth.refresh(request.refresh_token))

    @translate_errors
    async def ValidateToken(self, request: ipb.ValidateTokenReq, context: Ctx) -> ipb.ValidateTokenResp:
        c = await self._auth.verify_token(request.token)
        return ipb.ValidateTokenResp(
            valid=True, user_id=c.user_id, device_id=c.device_id, token_id=c.token_id, expires_at=c.expires_at
        )

    @translate_errors
    async def Logout(self, request: ipb.LogoutInternalReq, context: Ctx) -> ipb.Ack:
        claims = TokenClaims(request.user_id, request.device_id, request.token_id, request.expires_at)
        await self._auth.logout(claims)
        return ipb.Ack()

    @translate_errors
    async def GetUserInfo(self, request: ipb.GetUserInfoReq, context: Ctx) -> ipb.GetUserInfoResp:
        found = await self._auth.get_profiles(list(request.user_ids))
        return ipb.GetUserInfoResp(
            users={
                uid: pb.UserInfo(user_id=p.user_id, username=p.username, nickname=p.nickname)
                for uid, p in found.items()
            }
        )

    @translate_errors
    async def UpdateNickname(self, request: ipb.UpdateNicknameReq, context: Ctx) -> ipb.Ack:
        await self._auth.update_nickname(request.user_id, request.nickname)
        return ipb.Ack()

    # ---------- user search ----------
    @translate_errors
    async def SearchProfiles(self, request: ipb.SearchProfilesReq, context: Ctx) -> ipb.SearchProfilesResp:
        found = await self._auth.search_profiles(
            request.username, request.nickname_prefix, request.after_user_id, request.limit
        )
        return ipb.SearchProfilesResp(
            users=[pb.UserInfo(user_id=p.user_id, username=p.username, nickname=p.nickname) for p in found]
        )

    @translate_errors
    async def GetPrivacy(self, request: ipb.PrivacyInternalReq, context: Ctx) -> pb.PrivacySettings:
        return privacy_pb(await self._auth.privacy(request.user_id))

    @translate_errors
    async def SetPrivacy(self, request: ipb.PrivacyInternalReq, context: Ctx) -> pb.PrivacySettings:
        wanted = Privacy(hide_from_nickname_search=request.settings.hide_from_nickname_search)
        return privacy_pb(await self._auth.set_privacy(request.user_id, wanted))

    # ---------- admin API ----------
    @translate_errors
    async def AdminListUsers(self, request: ipb.AdminListUsersReq, context: Ctx) -> ipb.AdminUsersResp:
        found = await self._admin.admin_users(request.query, request.after_user_id, request.limit)
        return ipb.AdminUsersResp(users=[admin_user_pb(a) for a in found])

    @translate_errors
    async def AdminSetDisabled(self, request: ipb.AdminSetDisabledReq, context: Ctx) -> ipb.AdminUser:
        return admin_user_pb(await self._admin.admin_set_disabled(request.user_id, request.disabled))

    @translate_errors
    async def AdminResetPassword(self, request: ipb.AdminResetPasswordReq, context: Ctx) -> ipb.Ack:
        await self._admin.admin_reset_password(request.user_id, request.password)
        return ipb.Ack()

    @translate_errors
    async def GetRegistration(self, request: ipb.Ack, context: Ctx) -> ipb.RegistrationPolicy:
        return ipb.RegistrationPolicy(mode=await self._admin.registration_mode())

    @translate_errors
    async def SetRegistration(self, request: ipb.RegistrationPolicy, context: Ctx) -> ipb.RegistrationPolicy:
        return ipb.RegistrationPolicy(mode=await self._admin.set_registration_mode(request.mode))

    @translate_errors
    async def CreateInvite(self, request: ipb.CreateInviteReq, context: Ctx) -> ipb.CreateInviteResp:
        created, code = await self._admin.create_invite(request.note, request.valid_seconds)
        return ipb.CreateInviteResp(invite=invite_pb(created), code=code)

    @translate_errors
    async def ListInvites(self, request: ipb.Ack, context: Ctx) -> ipb.InviteList:
        return ipb.InviteList(invites=[invite_pb(i) for i in await self._admin.invites()])

    @translate_errors
    async def RevokeInvite(self, request: ipb.RevokeInviteReq, context: Ctx) -> ipb.Ack:
        await self._admin.revoke_invite(request.invite_id)
        return ipb.Ack()

    @translate_errors
    async def CountUsers(self, request: ipb.Ack, context: Ctx) -> ipb.Count:
        return ipb.Count(count=await self._admin.user_count())


def admin_user_pb(a: AccountSummary) -> ipb.AdminUser:
    return ipb.AdminUser(user_id=a.user_id, username=a.username, nickname=a.nickname, disabled=a.disabled)


def invite_pb(i: Invite) -> ipb.Invite:
    return ipb.Invite(
        invite_id=i.invite_id,
        note=i.note,
        created_at=i.created_at,
        expires_at=i.expires_at,
        used_by=i.used_by,
        revoked=i.revoked,
    )


def privacy_pb(p: Privacy) -> pb.PrivacySettings:
    return pb.PrivacySettings(hide_from_nickname_search=p.hide_from_nickname_search)


def auth_registrar(auth: AuthApi, admin: AuthAdminApi | None = None) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_AuthServiceServicer_to_server(AuthServicer(auth, admin), server)
        return ["im.AuthService"]

    return register
