"""The auth role over gRPC: the servicer (protobuf in, the local AuthApi, protobuf out) and the client
adapter (the same port as AuthService, over typed stubs) side by side, on one protobuf mapping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import grpc

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.rpc import Channels, Ctx, Registrar, RoleChannels, translate_errors
from tinyim.kernel import UNIMPLEMENTED, ImError, Privacy, UserProfile
from tinyim.modules.auth.domain import AccountSummary, Invite, LoginResult, TokenClaims
from tinyim.modules.auth.ports import AuthAdminApi, AuthApi
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb

# Password hashing (argon2) is slow on purpose and queues under a burst of logins: those calls get
# a longer deadline than the role's default.
HASHING_DEADLINE_FACTOR = 6


# ---------- the mapping: domain -> protobuf and back, each pair once ----------
def login_result_pb(r: LoginResult) -> ipb.LoginInternalResp:
    return ipb.LoginInternalResp(
        user_id=r.user_id,
        token=r.token,
        expires_at=r.expires_at,
        token_id=r.token_id,
        refresh_token=r.refresh_token,
        refresh_expires_at=r.refresh_expires_at,
    )


def login_result(r: ipb.LoginInternalResp) -> LoginResult:
    return LoginResult(r.user_id, r.token, r.expires_at, r.token_id, r.refresh_token, r.refresh_expires_at)


def validated_pb(c: TokenClaims) -> ipb.ValidateTokenResp:
    return ipb.ValidateTokenResp(
        valid=True, user_id=c.user_id, device_id=c.device_id, token_id=c.token_id, expires_at=c.expires_at
    )


def validated(r: ipb.ValidateTokenResp) -> TokenClaims:
    return TokenClaims(r.user_id, r.device_id, r.token_id, r.expires_at)


def logout_pb(c: TokenClaims) -> ipb.LogoutInternalReq:
    return ipb.LogoutInternalReq(
        user_id=c.user_id, device_id=c.device_id, token_id=c.token_id, expires_at=c.expires_at
    )


def logout_claims(r: ipb.LogoutInternalReq) -> TokenClaims:
    return TokenClaims(r.user_id, r.device_id, r.token_id, r.expires_at)


def profile_pb(p: UserProfile) -> pb.UserInfo:
    return pb.UserInfo(user_id=p.user_id, username=p.username, nickname=p.nickname)


def profile(u: pb.UserInfo) -> UserProfile:
    return UserProfile(u.user_id, u.username, u.nickname)


def privacy_pb(p: Privacy) -> pb.PrivacySettings:
    return pb.PrivacySettings(hide_from_nickname_search=p.hide_from_nickname_search)


def privacy(p: pb.PrivacySettings) -> Privacy:
    return Privacy(hide_from_nickname_search=p.hide_from_nickname_search)


def admin_user_pb(a: AccountSummary) -> ipb.AdminUser:
    return ipb.AdminUser(user_id=a.user_id, username=a.username, nickname=a.nickname, disabled=a.disabled)


def account_summary(u: ipb.AdminUser) -> AccountSummary:
    return AccountSummary(u.user_id, u.username, u.nickname, u.disabled)


def invite_pb(i: Invite) -> ipb.Invite:
    return ipb.Invite(
        invite_id=i.invite_id,
        note=i.note,
        created_at=i.created_at,
        expires_at=i.expires_at,
        used_by=i.used_by,
        revoked=i.revoked,
    )


def invite(i: ipb.Invite) -> Invite:
    return Invite(i.invite_id, i.note, i.created_at, i.expires_at, i.used_by, i.revoked)


# ---------- server ----------
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
        return login_result_pb(await self._auth.login(request.username, request.password, request.device_id))

    @translate_errors
    async def Refresh(self, request: ipb.RefreshInternalReq, context: Ctx) -> ipb.LoginInternalResp:
        return login_result_pb(await self._auth.refresh(request.refresh_token))

    @translate_errors
    async def ValidateToken(self, request: ipb.ValidateTokenReq, context: Ctx) -> ipb.ValidateTokenResp:
        return validated_pb(await self._auth.verify_token(request.token))

    @translate_errors
    async def Logout(self, request: ipb.LogoutInternalReq, context: Ctx) -> ipb.Ack:
        await self._auth.logout(logout_claims(request))
        return ipb.Ack()

    @translate_errors
    async def GetUserInfo(self, request: ipb.GetUserInfoReq, context: Ctx) -> ipb.GetUserInfoResp:
        found = await self._auth.get_profiles(list(request.user_ids))
        return ipb.GetUserInfoResp(users={uid: profile_pb(p) for uid, p in found.items()})

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
        return ipb.SearchProfilesResp(users=[profile_pb(p) for p in found])

    @translate_errors
    async def GetPrivacy(self, request: ipb.PrivacyInternalReq, context: Ctx) -> pb.PrivacySettings:
        return privacy_pb(await self._auth.privacy(request.user_id))

    @translate_errors
    async def SetPrivacy(self, request: ipb.PrivacyInternalReq, context: Ctx) -> pb.PrivacySettings:
        return privacy_pb(await self._auth.set_privacy(request.user_id, privacy(request.settings)))

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


def auth_registrar(auth: AuthApi, admin: AuthAdminApi | None = None) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_AuthServiceServicer_to_server(AuthServicer(auth, admin), server)
        return ["im.AuthService"]

    return register


# ---------- client ----------
class GrpcAuthClient:
    @classmethod
    def connect(cls, directory: NodeDirectory, channels: Channels, deadline_seconds: float) -> GrpcAuthClient:
        """The client of the `auth` role's live nodes (the registry finds them), over typed stubs."""
        return cls(RoleChannels("auth", directory, channels, ipb_grpc.AuthServiceStub, deadline_seconds))

    def __init__(self, remote: RoleChannels[ipb_grpc.AuthServiceAsyncStub]) -> None:
        self._remote = remote
        self._hashing_deadline = remote.deadline_seconds * HASHING_DEADLINE_FACTOR

    async def register(self, username: str, password: str, nickname: str, invite_code: str = "") -> int:
        req = ipb.RegisterInternalReq(
            username=username, password=password, nickname=nickname, invite_code=invite_code
        )
        resp = await self._remote.invoke(
            lambda s, t: s.Register(req, timeout=t), idempotent=False, deadline_seconds=self._hashing_deadline
        )
        return int(resp.user_id)

    async def login(self, username: str, password: str, device_id: str) -> LoginResult:
        req = ipb.LoginInternalReq(username=username, password=password, device_id=device_id)
        # a retried login on another node at worst replaces a token the client never received
        r = await self._remote.invoke(
            lambda s, t: s.Login(req, timeout=t), deadline_seconds=self._hashing_deadline
        )
        return login_result(r)

    async def refresh(self, refresh_token: str) -> LoginResult:
        # not idempotent: a retry of a refresh that went through would look like a replay
        req = ipb.RefreshInternalReq(refresh_token=refresh_token)
        r = await self._remote.invoke(lambda s, t: s.Refresh(req, timeout=t), idempotent=False)
        return login_result(r)

    async def verify_token(self, token: str) -> TokenClaims:
        req = ipb.ValidateTokenReq(token=token)
        return validated(await self._remote.invoke(lambda s, t: s.ValidateToken(req, timeout=t)))

    async def logout(self, claims: TokenClaims) -> None:
        req = logout_pb(claims)
        await self._remote.invoke(lambda s, t: s.Logout(req, timeout=t))

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        resp = await self._remote.invoke(
            lambda s, t: s.GetUserInfo(ipb.GetUserInfoReq(user_ids=list(user_ids)), timeout=t)
        )
        return {uid: profile(u) for uid, u in resp.users.items()}

    async def update_nickname(self, user_id: int, nickname: str) -> None:
        await self._remote.invoke(
            lambda s, t: s.UpdateNickname(
                ipb.UpdateNicknameReq(user_id=user_id, nickname=nickname), timeout=t
            )
        )

    # ---------- user search ----------
    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        req = ipb.SearchProfilesReq(
            username=username, nickname_prefix=nickname_prefix, after_user_id=after_user_id, limit=limit
        )
        resp = await self._remote.invoke(lambda s, t: s.SearchProfiles(req, timeout=t))
        return [profile(u) for u in resp.users]

    async def privacy(self, user_id: int) -> Privacy:
        resp = await self._remote.invoke(
            lambda s, t: s.GetPrivacy(ipb.PrivacyInternalReq(user_id=user_id), timeout=t)
        )
        return privacy(resp)

    async def set_privacy(self, user_id: int, wanted: Privacy) -> Privacy:
        req = ipb.PrivacyInternalReq(user_id=user_id, settings=privacy_pb(wanted))
        resp = await self._remote.invoke(lambda s, t: s.SetPrivacy(req, timeout=t))
        return privacy(resp)

    # ---------- admin API ----------
    async def admin_users(self, query: str, after_user_id: int, limit: int) -> list[AccountSummary]:
        req = ipb.AdminListUsersReq(query=query, after_user_id=after_user_id, limit=limit)
        resp = await self._remote.invoke(lambda s, t: s.AdminListUsers(req, timeout=t))
        return [account_summary(u) for u in resp.users]

    async def admin_set_disabled(self, user_id: int, disabled: bool) -> AccountSummary:
        req = ipb.AdminSetDisabledReq(user_id=user_id, disabled=disabled)
        return account_summary(await self._remote.invoke(lambda s, t: s.AdminSetDisabled(req, timeout=t)))

    async def admin_reset_password(self, user_id: int, password: str) -> None:
        req = ipb.AdminResetPasswordReq(user_id=user_id, password=password)
        await self._remote.invoke(
            lambda s, t: s.AdminResetPassword(req, timeout=t), deadline_seconds=self._hashing_deadline
        )

    async def registration_mode(self) -> str:
        return str((await self._remote.invoke(lambda s, t: s.GetRegistration(ipb.Ack(), timeout=t))).mode)

    async def set_registration_mode(self, mode: str) -> str:
        resp = await self._remote.invoke(
            lambda s, t: s.SetRegistration(ipb.RegistrationPolicy(mode=mode), timeout=t)
        )
        return str(resp.mode)

    async def create_invite(self, note: str, valid_seconds: int) -> tuple[Invite, str]:
        req = ipb.CreateInviteReq(note=note, valid_seconds=valid_seconds)
        # not idempotent: a retry would make a second code
        resp = await self._remote.invoke(lambda s, t: s.CreateInvite(req, timeout=t), idempotent=False)
        return invite(resp.invite), resp.code

    async def invites(self) -> list[Invite]:
        return [
            invite(i)
            for i in (await self._remote.invoke(lambda s, t: s.ListInvites(ipb.Ack(), timeout=t))).invites
        ]

    async def revoke_invite(self, invite_id: int) -> None:
        await self._remote.invoke(
            lambda s, t: s.RevokeInvite(ipb.RevokeInviteReq(invite_id=invite_id), timeout=t)
        )

    async def user_count(self) -> int:
        return int((await self._remote.invoke(lambda s, t: s.CountUsers(ipb.Ack(), timeout=t))).count)
