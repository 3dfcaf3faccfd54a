"""Ports of the auth module: its inbound API and what it needs from the outside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from tinyim.modules.auth.domain import Account, LoginResult, TokenClaims, UserProfile


class AuthApi(Protocol):
    """Inbound: what edges and other roles ask of auth."""

    async def register(self, username: str, password: str, nickname: str) -> int: ...
    async def login(self, username: str, password: str, device_id: str) -> LoginResult: ...
    async def verify_token(self, token: str) -> TokenClaims: ...
    async def logout(self, claims: TokenClaims) -> None: ...
    async def get_profiles(self, user_ids: Iterable[int]) -> Mapping[int, UserProfile]: ...


class UsernameTaken(Exception):
    pass


class AccountRepository(Protocol):
    async def add(self, username: str, password_hash: str, nickname: str) -> int:
        """Store a new account and return its user id; raises UsernameTaken."""
        ...

    async def by_username(self, username: str) -> Account | None: ...
    async def by_ids(self, user_ids: Iterable[int]) -> Mapping[int, Account]: ...
    async def set_password_hash(self, user_id: int, password_hash: str) -> None: ...


class DeviceSessions(Protocol):
    """Which token is the live one for each (user, device type): logging in again revokes the old one."""

    async def activate(self, user_id: int, device_id: str, token_id: str) -> None: ...
    async def current(self, user_id: int, device_id: str) -> str | None: ...
    async def revoke(self, user_id: int, device_id: str, token_id: str) -> None:
        """Forget the session if `token_id` is still the live one."""
        ...


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
