"""AuthApi served by a remote auth role: the same port as AuthService, over gRPC."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tinyim.infra.node_directory import NodeDirectory
from tinyim.infra.rpc import Channels, RoleChannels
from tinyim.kernel import Privacy, UserProfile
from tinyim.modules.auth.domain import AccountSummary, Invite, LoginResult, TokenClaims
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb

# Password hashing (argon2) is slow on purpose and queues under a burst of logins: those calls get
# a longer deadline than the role's default.
HASHING_DEADLINE_FACTOR = 6


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
        return LoginResult(
            r.user_id, r.token, r.expires_at, r.token_id, r.refresh_token, r.refresh_expires_at
        )

    async def refresh(self, refresh_token: str) -> LoginResult:
        # not idempotent: a retry of a refresh that went through would look like a replay
        req = ipb.RefreshInternalReq(refresh_token=refresh_token)
        r = await self._remote.invoke(lambda s, t: s.Refresh(req, timeout=t), idempotent=False)
        return LoginResult(
            r.user_id, r.token, r.expires_at, r.token_id, r.refresh_token, r.refresh_expires_at
        )

    async def verify_token(self, token: str) -> TokenClaims:
        r = await self._remote.invoke(
            lambda s, t: s.ValidateToken(ipb.ValidateTokenReq(token=token), timeout=t)
        )
        return TokenClaims(r.user_id, r.device_id, r.token_id, r.expires_at)

    async def logout(self, claims: TokenClaims) -> None:
        req = ipb.LogoutInternalReq(
            user_id=claims.user_id,
            device_id=claims.device_id,
            token_id=claims.token_id,
            expires_at=claims.expires_at,
        )
        await self._remote.invoke(lambda s, t: s.Logout(req, timeout=t))

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        resp = await self._remote.invoke(
            lambda s, t: s.GetUserInfo(ipb.GetUserInfoReq(user_ids=list(user_ids)), timeout=t)
        )
        return {uid: UserProfile(u.user_id, u.username, u.nickname) for uid, u in resp.users.items()}

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
        return [UserProfile(u.user_id, u.username, u.nickname) for u in resp.users]

    async def privacy(self, user_id: int) -> Privacy:
        resp = await self._remote.invoke(
            lambda s, t: s.GetPrivacy(ipb.PrivacyInternalReq(user_id=user_id), timeout=t)
        )
        return Privacy(hide_from_nickname_search=resp.hide_from_nickname_search)

    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy:
        settings = pb.PrivacySettings(hide_from_nickname_search=privacy.hide_from_nickname_search)
        resp = await self._remote.invoke(
            lambda s, t: s.SetPrivacy(ipb.PrivacyInternalReq(user_id=user_id, settings=settings), timeout=t)
        )
        return Privacy(hide_from_nickname_search=resp.hide_from_nickname_search)

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


def account_summary(u: ipb.AdminUser) -> AccountSummary:
    return AccountSummary(u.user_id, u.username, u.nickname, u.disabled)


def invite(i: ipb.Invite) -> Invite:
    return Invite(i.invite_id, i.note, i.created_at, i.expires_at, i.used_by, i.revoked)
