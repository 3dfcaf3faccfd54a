"""AuthService over gRPC: protobuf in, the local AuthApi, protobuf out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from tinyim.infra.rpc import Ctx, Registrar, translate_errors
from tinyim.kernel import Privacy
from tinyim.modules.auth.domain import TokenClaims
from tinyim.modules.auth.ports import AuthApi
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb


class AuthServicer(ipb_grpc.AuthServiceServicer):
    def __init__(self, auth: AuthApi) -> None:
        self._auth = auth

    @translate_errors
    async def Register(self, request: ipb.RegisterInternalReq, context: Ctx) -> Any:
        user_id = await self._auth.register(request.username, request.password, request.nickname)
        return ipb.RegisterInternalResp(user_id=user_id)

    @translate_errors
    async def Login(self, request: ipb.LoginInternalReq, context: Ctx) -> Any:
        r = await self._auth.login(request.username, request.password, request.device_id)
        return ipb.LoginInternalResp(
            user_id=r.user_id, token=r.token, expires_at=r.expires_at, token_id=r.token_id
        )

    @translate_errors
    async def ValidateToken(self, request: ipb.ValidateTokenReq, context: Ctx) -> Any:
        c = await self._auth.verify_token(request.token)
        return ipb.ValidateTokenResp(
            valid=True, user_id=c.user_id, device_id=c.device_id, token_id=c.token_id, expires_at=c.expires_at
        )

    @translate_errors
    async def Logout(self, request: ipb.LogoutInternalReq, context: Ctx) -> Any:
        claims = TokenClaims(request.user_id, request.device_id, request.token_id, request.expires_at)
        await self._auth.logout(claims)
        return ipb.Ack()

    @translate_errors
    async def GetUserInfo(self, request: ipb.GetUserInfoReq, context: Ctx) -> Any:
        found = await self._auth.get_profiles(list(request.user_ids))
        return ipb.GetUserInfoResp(
            users={
                uid: pb.UserInfo(user_id=p.user_id, username=p.username, nickname=p.nickname)
                for uid, p in found.items()
            }
        )

    @translate_errors
    async def UpdateNickname(self, request: ipb.UpdateNicknameReq, context: Ctx) -> Any:
        await self._auth.update_nickname(request.user_id, request.nickname)
        return ipb.Ack()

    # ---------- user search ----------
    @translate_errors
    async def SearchProfiles(self, request: ipb.SearchProfilesReq, context: Ctx) -> Any:
        found = await self._auth.search_profiles(
            request.username, request.nickname_prefix, request.after_user_id, request.limit
        )
        return ipb.SearchProfilesResp(
            users=[pb.UserInfo(user_id=p.user_id, username=p.username, nickname=p.nickname) for p in found]
        )

    @translate_errors
    async def GetPrivacy(self, request: ipb.PrivacyInternalReq, context: Ctx) -> Any:
        return privacy_pb(await self._auth.privacy(request.user_id))

    @translate_errors
    async def SetPrivacy(self, request: ipb.PrivacyInternalReq, context: Ctx) -> Any:
        wanted = Privacy(hide_from_nickname_search=request.settings.hide_from_nickname_search)
        return privacy_pb(await self._auth.set_privacy(request.user_id, wanted))


def privacy_pb(p: Privacy) -> pb.PrivacySettings:
    return pb.PrivacySettings(hide_from_nickname_search=p.hide_from_nickname_search)


def auth_registrar(auth: AuthApi) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_AuthServiceServicer_to_server(AuthServicer(auth), server)  # type: ignore[no-untyped-call]
        return ["im.AuthService"]

    return register
