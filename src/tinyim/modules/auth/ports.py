"""Ports of the auth module: its inbound API and what it needs from the outside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from tinyim.kernel import Privacy, UserProfile
from tinyim.modules.auth.domain import Account, LoginResult, RefreshRecord, TokenClaims


class AuthApi(Protocol):
    """Inbound: what edges and other roles ask of auth."""

    async def register(self, username: str, password: str, nickname: str) -> int: ...
    async def login(self, username: str, password: str, device_id: str) -> LoginResult: ...
    async def verify_token(self, token: str) -> TokenClaims: ...
    async def logout(self, claims: TokenClaims) -> None: ...
    async def refresh(self, refresh_token: str) -> LoginResult:
        """A new token and the next refresh token of the family; UNAUTHENTICATED if the refresh token is
        unknown, expired, revoked or used before (which revokes its family)."""
        ...

    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]: ...
    async def update_nickname(self, user_id: int, nickname: str) -> None: ...

    # user search
    async def search_profiles(
        self, username: str, nickname_prefix: str, after_user_id: int, limit: int
    ) -> list[UserProfile]:
        """The account named exactly `username`, or up to `limit` accounts whose nickname starts with
        `nickname_prefix` (Latin letters case-insensitively) and who did not opt out of nickname search,
        in ascending user id above after_user_id."""
        ...

    async def privacy(self, user_id: int) -> Privacy: ...
    async def set_privacy(self, user_id: int, privacy: Privacy) -> Privacy: ...


class ProfileCache(Protocol):
    """Cache-aside for profiles (spec: `im:user:{uid}`): read through, dropped on every update."""

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, UserProfile]: ...
    async def put_many(self, profiles: Iterable[UserProfile]) -> None: ...
    async def drop(self, user_id: int) -> None: ...


class UsernameTaken(Exception):
    pass


class AccountRepository(Protocol):
    async def add(self, username: str, password_hash: str, nickname: str) -> int:
        """Store a new account and return its user id; raises UsernameTaken."""
        ...

    async def by_username(self, username: str) -> Account | None: ...
    async def by_ids(self, user_ids: Iterable[int]) -> Mapping[int, Account]: ...
    async def set_password_hash(self, user_id: int, password_hash: str) -> None: ...
    async def set_nickname(self, user_id: int, nickname: str) -> None: ...
    # user search
    async def search_nickname(self, prefix: str, after_user_id: int, limit: int) -> list[UserProfile]:
        """Accounts whose nickname starts with prefix (Latin letters case-insensitively; LIKE wildcards
        in prefix are literal) and who did not opt out, ascending user id above after_user_id."""
        ...

    async def privacy(self, user_id: int) -> Privacy | None:
        """None when there is no such account."""
        ...

    async def set_privacy(self, user_id: int, privacy: Privacy) -> None: ...


class DeviceSessions(Protocol):
    """Which token is the live one for each (user, device type): logging in again revokes the old one."""

    async def activate(self, user_id: int, device_id: str, token_id: str) -> None: ...
    async def current(self, user_id: int, device_id: str) -> str | None: ...
    async def revoke(self, user_id: int, device_id: str, token_id: str) -> None:
        """Forget the session if `token_id` is still the live one."""
        ...


class RefreshTokenStore(Protocol):
    """Refresh tokens by SHA-256 hash (the token itself is never stored)."""

    async def add(
        self, token_hash: str, user_id: int, device_id: str, family_id: str, expires_at: int
    ) -> None: ...
    async def consume(self, token_hash: str) -> RefreshRecord | None:
        """Mark the token used, atomically, and return it as it was before (used=True: a replay)."""
        ...

    async def revoke_family(self, family_id: str) -> None: ...
    async def revoke_device(self, user_id: int, device_id: str) -> None: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...
    def needs_rehash(self, password_hash: str) -> bool: ...


class TokenCodec(Protocol):
    def issue(self, claims: TokenClaims) -> str: ...
    def read(self, token: str) -> TokenClaims:
        """Check signature and expiry; raises ValueError when the token is not acceptable."""
        ...


class SessionKicker(Protocol):
    """Outbound: close the other live connections of (user, device) wherever they are."""

    async def kick(self, user_id: int, device_id: str, keep_token_id: str, reason: str) -> None: ...
