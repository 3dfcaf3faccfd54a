"""Ports of the auth module: its inbound API and what it needs from the outside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Protocol, Self

from tinyim.kernel import LostRace as LostRace  # one type for every module's units of work
from tinyim.kernel import Privacy, UserProfile
from tinyim.modules.auth.domain import (
    Account,
    AccountSummary,
    Invite,
    LoginResult,
    RefreshRecord,
    TokenClaims,
)


class AuthApi(Protocol):
    """Inbound: what edges and other roles ask of auth."""

    async def register(self, username: str, password: str, nickname: str, invite_code: str = "") -> int:
        """PERMISSION_DENIED when registration is closed, or by invitation and the code is not a valid
        unused one."""
        ...

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


class AuthAdminApi(Protocol):
    """Inbound: what the admin API (dispatch, behind the admin token) asks of auth."""

    async def admin_users(self, query: str, after_user_id: int, limit: int) -> list[AccountSummary]:
        """Accounts whose username or nickname starts with `query` (all when empty), ascending user id
        above after_user_id."""
        ...

    async def admin_set_disabled(self, user_id: int, disabled: bool) -> AccountSummary:
        """Disabling revokes every session and refresh token of the user and kicks their devices."""
        ...

    async def admin_reset_password(self, user_id: int, password: str) -> None:
        """A new password; every session and refresh token of the user is revoked."""
        ...

    async def registration_mode(self) -> str: ...
    async def set_registration_mode(self, mode: str) -> str: ...
    async def create_invite(self, note: str, valid_seconds: int) -> tuple[Invite, str]:
        """The new invite and its code (returned once; only its hash is kept)."""
        ...

    async def invites(self) -> list[Invite]: ...
    async def revoke_invite(self, invite_id: int) -> None: ...
    async def user_count(self) -> int: ...


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

    # admin API
    async def set_disabled(self, user_id: int, disabled: bool) -> bool:
        """False when there is no such account."""
        ...

    async def list_accounts(self, query: str, after_user_id: int, limit: int) -> list[Account]:
        """Username or nickname starting with query (LIKE wildcards literal), ascending user id."""
        ...

    async def count(self) -> int: ...


class RegistrationStore(Protocol):
    """admin API: the registration mode and invite codes (by SHA-256 hash)."""

    async def mode(self) -> str:
        """The stored mode; open when none was ever set."""
        ...

    async def set_mode(self, mode: str) -> None: ...
    async def add_invite(self, code_hash: str, note: str, created_at: int, expires_at: int) -> Invite: ...
    async def invites(self) -> list[Invite]: ...
    async def usable_invite(self, code_hash: str, now: int) -> bool:
        """Whether an unused, unrevoked, unexpired invite has this code (a read: claim_invite takes it)."""
        ...

    async def claim_invite(self, code_hash: str, now: int) -> int | None:
        """Take an unused, unrevoked, unexpired invite atomically; its id, or None."""
        ...

    async def finish_invite(self, invite_id: int, user_id: int) -> None: ...
    async def release_invite(self, invite_id: int) -> None:
        """Give a claimed invite back (the registration it was claimed for failed)."""
        ...

    async def revoke_invite(self, invite_id: int) -> bool: ...


class DeviceSessions(Protocol):
    """Which token is the live one for each (user, device type): logging in again revokes the old one."""

    async def activate(self, user_id: int, device_id: str, token_id: str) -> None: ...
    async def current(self, user_id: int, device_id: str) -> str | None: ...
    async def revoke(self, user_id: int, device_id: str, token_id: str) -> None:
        """Forget the session if `token_id` is still the live one."""
        ...

    async def revoke_user(self, user_id: int) -> None:
        """Forget every session of the user (admin API: disable, password reset)."""
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
    async def revoke_user(self, user_id: int) -> None: ...


class AuthUnitOfWork(Protocol):
    """One transaction of a command that writes more than once (cosmicpython's unit of work): the stores
    inside it see its own writes, and nothing they write is seen by anyone else before `commit`.

    `async with units.begin() as uow:` ... `await uow.commit()`; leaving the block without commit (an
    error, a cancellation, or simply no commit) rolls every write back; an adapter whose database broke
    a deadlock by rolling this one back raises LostRace when the block is left."""

    @property
    def accounts(self) -> AccountRepository: ...
    @property
    def sessions(self) -> DeviceSessions: ...
    @property
    def refresh_tokens(self) -> RefreshTokenStore: ...
    @property
    def registration(self) -> RegistrationStore: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None:
        """Make every write of this unit of work durable; a unit of work commits once (RuntimeError)."""
        ...

    async def rollback(self) -> None: ...


class AuthUnits(Protocol):
    """Where the auth module's units of work begin."""

    def begin(self) -> AuthUnitOfWork: ...


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
