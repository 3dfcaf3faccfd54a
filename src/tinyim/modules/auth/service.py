"""The auth service: accounts, password checks, tokens and the one-session-per-device rule."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping

from tinyim.kernel import CONFLICT, NOT_FOUND, UNAUTHENTICATED, ImError, Privacy, UserProfile
from tinyim.modules.auth.domain import (
    LoginResult,
    TokenClaims,
    check_device,
    check_nickname,
    check_password,
    check_username,
)
from tinyim.modules.auth.ports import (
    AccountRepository,
    DeviceSessions,
    PasswordHasher,
    ProfileCache,
    SessionKicker,
    TokenCodec,
    UsernameTaken,
)

BAD_CREDENTIALS = "wrong username or password"
# Verified against when the username does not exist, so both failures cost the same time.
_DUMMY_PASSWORD = "not-a-real-password"


class AuthService:
    def __init__(
        self,
        accounts: AccountRepository,
        sessions: DeviceSessions,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        kicker: SessionKicker,
        token_ttl_seconds: int,
        profiles: ProfileCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = profiles
        self._accounts = accounts
        self._sessions = sessions
        self._hasher = hasher
        self._tokens = tokens
        self._kicker = kicker
        self._ttl = token_ttl_seconds
        self._clock = clock
        self._dummy_hash: str | None = None

    async def register(self, username: str, password: str, nickname: str) -> int:
        username = check_username(username)
        password = check_password(password)
        nickname = check_nickname(nickname)
        password_hash = await self._hasher.hash(password)
        try:
            return await self._accounts.add(username, password_hash, nickname)
        except UsernameTaken:
            raise ImError(CONFLICT, f"username {username!r} is taken") from None

    async def login(self, username: str, password: str, device_id: str) -> LoginResult:
        device_id = check_device(device_id)
        if not isinstance(username, str) or not isinstance(password, str):
            raise ImError(UNAUTHENTICATED, BAD_CREDENTIALS)
        account = await self._accounts.by_username(username)
        if account is None:
            await self._hasher.verify(await self._dummy(), password)
            raise ImError(UNAUTHENTICATED, BAD_CREDENTIALS)
        if not await self._hasher.verify(account.password_hash, password):
            raise ImError(UNAUTHENTICATED, BAD_CREDENTIALS)
        if self._hasher.needs_rehash(account.password_hash):
            await self._accounts.set_password_hash(account.user_id, await self._hasher.hash(password))
        claims = TokenClaims(
            user_id=account.user_id,
            device_id=device_id,
            token_id=secrets.token_urlsafe(12),
            expires_at=int(self._clock()) + self._ttl,
        )
        await self._sessions.activate(claims.user_id, device_id, claims.token_id)
        # The previous session of this device type, if any, is now revoked: close its connection too.
        await self._kicker.kick(
            claims.user_id, device_id, claims.token_id, "logged in on another device of this type"
        )
        return LoginResult(claims.user_id, self._tokens.issue(claims), claims.expires_at, claims.token_id)

    async def verify_token(self, token: str) -> TokenClaims:
        try:
            claims = self._tokens.read(token)
        except ValueError as exc:
            raise ImError(UNAUTHENTICATED, f"invalid token: {exc}") from None
        if await self._sessions.current(claims.user_id, claims.device_id) != claims.token_id:
            raise ImError(UNAUTHENTICATED, "token was revoked by a newer login or a logout")
        return claims

    async def logout(self, claims: TokenClaims) -> None:
        await self._sessions.revoke(claims.user_id, claims.device_id, claims.token_id)
        await self._kicker.kick(claims.user_id, claims.device_id, "", "logged out")

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]:
        wanted = set(user_ids)
        found = await self._cache.get_many(wanted) if self._cache else {}
        missing = wanted - set(found)
        if missing:
            accounts = await self._accounts.by_ids(missing)
            loaded = [UserProfile(a.user_id, a.username, a.nickname) for a in accounts.values()]
            if self._cache:
                await self._cache.put_many(loaded)
            found.update({p.user_id: p for p in loaded})
        return found

    async def update_nickname(self, user_id: int, nickname: str) -> None:
        await self._accounts.set_nickname(user_id, check_nickname(nickname))
        if self._cache:
            await self._cache.drop(user_id)

    # ---------- user search ----------
    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        if username:
            account = await self._accounts.by_username(username)
            # exact: some databases compare names case-insensitively
            if account is None or account.username != username or account.user_id <= after_user_id:
                return []
            return [UserProfile(account.user_id, account.username, account.nickname)]
        if not nickname_prefix or limit <= 0:
            return []
        return await self._accounts.search_nickname(nickname_prefix, after_user_id, limit)

    async def privacy(self, user_id: int) -> Privacy:
        found = await self._accounts.privacy(user_id)
        if found is None:
            raise ImError(NOT_FOUND, f"user {user_id} does not exist")
        return found

    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy:
        await self._accounts.set_privacy(user_id, privacy)
        return await self.privacy(user_id)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hasher.hash(_DUMMY_PASSWORD)
        return self._dummy_hash
