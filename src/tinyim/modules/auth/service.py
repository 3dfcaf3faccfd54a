"""The auth service: accounts, password checks, tokens and the one-session-per-device rule."""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from tinyim.kernel import (
    CONFLICT,
    INVALID_ARGUMENT,
    NOT_FOUND,
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    UNIMPLEMENTED,
    ImError,
    Privacy,
    UserProfile,
)
from tinyim.modules.auth.domain import (
    ADMIN_PAGE_MAX,
    REGISTRATION_CLOSED,
    REGISTRATION_INVITE,
    REGISTRATION_OPEN,
    Account,
    AccountSummary,
    Invite,
    LoginResult,
    RefreshRecord,
    TokenClaims,
    check_device,
    check_invite_note,
    check_nickname,
    check_password,
    check_registration_mode,
    check_username,
)
from tinyim.modules.auth.ports import (
    AccountRepository,
    AuthUnitOfWork,
    AuthUnits,
    DeviceSessions,
    LostRace,
    PasswordHasher,
    ProfileCache,
    RefreshTokenStore,
    RegistrationStore,
    SessionKicker,
    TokenCodec,
    UsernameTaken,
)

BAD_CREDENTIALS = "wrong username or password"
BAD_REFRESH = "refresh token unknown, expired or revoked: log in with the password"
ACCOUNT_DISABLED = "this account is disabled by an administrator"
REGISTRATION_IS_CLOSED = "registration is closed on this server; ask its administrator for an account"
INVITE_NEEDED = "registration on this server needs an invite code (field 'invite_code')"
BAD_INVITE = "the invite code is unknown, used, expired or revoked"


def _digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


T = TypeVar("T")

# A unit of work that lost a race (a deadlock victim) runs again, this many times at most.
_UNIT_OF_WORK_TRIES = 5

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
        refresh_tokens: RefreshTokenStore | None = None,
        refresh_ttl_seconds: int = 30 * 24 * 3600,
        registration: RegistrationStore | None = None,
        *,
        units: AuthUnits,
    ) -> None:
        # Reads go to the stores; every command that writes more than once runs in one unit of work
        # (one transaction: a crash between its writes leaves none of them). Password hashing (slow) and
        # kicks (another process) stay outside it.
        self._units = units
        self._registration = registration  # admin API: None = always open, no invites
        self._refresh = refresh_tokens
        self._refresh_ttl = refresh_ttl_seconds
        self._cache = profiles
        self._accounts = accounts
        self._sessions = sessions
        self._hasher = hasher
        self._tokens = tokens
        self._kicker = kicker
        self._ttl = token_ttl_seconds
        self._clock = clock
        self._dummy_hash: str | None = None

    async def register(self, username: str, password: str, nickname: str, invite_code: str = "") -> int:
        username = check_username(username)
        password = check_password(password)
        nickname = check_nickname(nickname)
        needs_invite = await self._admit(invite_code)  # after validation: bad input never spends a code
        password_hash = await self._hasher.hash(password)  # slow: before the transaction, not in it

        async def admit_and_add(uow: AuthUnitOfWork) -> int:
            # The invite is spent and the account added together: neither without the other.
            invite_id = 0
            if needs_invite:
                claimed = await uow.registration.claim_invite(_digest(invite_code), int(self._clock()))
                if claimed is None:
                    raise ImError(PERMISSION_DENIED, BAD_INVITE)
                invite_id = claimed
            try:
                user_id = await uow.accounts.add(username, password_hash, nickname)
            except UsernameTaken:
                raise ImError(CONFLICT, f"username {username!r} is taken") from None
            if invite_id:
                await uow.registration.finish_invite(invite_id, user_id)
            return user_id

        return await self._atomically(admit_and_add)

    async def _atomically(self, work: Callable[[AuthUnitOfWork], Awaitable[T]]) -> T:
        """`work` in one unit of work, committed when it returns (rolled back when it raises); run again
        when the unit of work lost a race to a concurrent one."""
        for attempt in range(_UNIT_OF_WORK_TRIES):
            try:
                async with self._units.begin() as uow:
                    result = await work(uow)
                    await uow.commit()
                return result
            except LostRace:
                if attempt == _UNIT_OF_WORK_TRIES - 1:
                    raise
                await asyncio.sleep(0.005 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

    async def _admit(self, invite_code: str) -> bool:
        """Whether this registration must spend an invite (then `invite_code` is one, unused as yet), or
        PERMISSION_DENIED."""
        if self._registration is None:
            return False
        mode = await self._registration.mode()
        if mode == REGISTRATION_CLOSED:
            raise ImError(PERMISSION_DENIED, REGISTRATION_IS_CLOSED)
        if mode != REGISTRATION_INVITE:
            return False
        if not isinstance(invite_code, str) or not invite_code:
            raise ImError(PERMISSION_DENIED, INVITE_NEEDED)
        # A bad code is refused before the password is hashed (slow); the registration's unit of work
        # claims it, refusing it still if another registration took it meanwhile.
        if len(invite_code) > 256 or not await self._registration.usable_invite(
            _digest(invite_code), int(self._clock())
        ):
            raise ImError(PERMISSION_DENIED, BAD_INVITE)
        return True

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
        if account.disabled:  # said only to whoever knows the password
            raise ImError(PERMISSION_DENIED, ACCOUNT_DISABLED)
        if self._hasher.needs_rehash(account.password_hash):
            # A write of its own: the same password under a stronger hash, whether or not the session
            # below opens; the hashing (slow) must not hold a transaction open.
            await self._accounts.set_password_hash(account.user_id, await self._hasher.hash(password))

        async def replace_session(uow: AuthUnitOfWork) -> LoginResult:
            if self._refresh is not None:  # the previous session's refresh tokens go with it
                await uow.refresh_tokens.revoke_device(account.user_id, device_id)
            return await self._open_session(uow, account.user_id, device_id, secrets.token_hex(16))

        result = await self._atomically(replace_session)
        # The previous session of this device type, if any, is now revoked: close its connection too.
        await self._kicker.kick(
            account.user_id, device_id, result.token_id, "logged in on another device of this type"
        )
        return result

    async def refresh(self, refresh_token: str) -> LoginResult:
        if self._refresh is None or not isinstance(refresh_token, str) or not 16 <= len(refresh_token) <= 256:
            raise ImError(UNAUTHENTICATED, BAD_REFRESH)
        # Consumed, and renewed (or, on reuse, the family and the session revoked), in one transaction.
        # A refusal rolls the consumption back: the token is dead either way (revoked or expired; a
        # disabled account's tokens are all revoked).

        async def renew(uow: AuthUnitOfWork) -> tuple[RefreshRecord, LoginResult | None, bool]:
            """The token's record, and the renewed session (None: a replay, the session revoked or not)."""
            record = await uow.refresh_tokens.consume(_digest(refresh_token))
            if record is not None and await self._is_disabled(uow, record.user_id):
                raise ImError(PERMISSION_DENIED, ACCOUNT_DISABLED)
            if record is None or record.revoked or record.expires_at <= self._clock():
                raise ImError(UNAUTHENTICATED, BAD_REFRESH)
            if record.used:
                # A refresh token is good once: a second use means a copy is in someone else's hands.
                # The whole family goes, and so does the session it renewed.
                await uow.refresh_tokens.revoke_family(record.family_id)
                current = await uow.sessions.current(record.user_id, record.device_id)
                if current is not None:
                    await uow.sessions.revoke(record.user_id, record.device_id, current)
                return record, None, current is not None
            return (
                record,
                await self._open_session(uow, record.user_id, record.device_id, record.family_id),
                True,
            )

        record, result, replaced = await self._atomically(renew)
        if result is None:
            if replaced:
                await self._kicker.kick(record.user_id, record.device_id, "", "refresh token reused")
            raise ImError(UNAUTHENTICATED, BAD_REFRESH)
        await self._kicker.kick(
            record.user_id, record.device_id, result.token_id, "session renewed elsewhere"
        )
        return result

    async def _open_session(
        self, uow: AuthUnitOfWork, user_id: int, device_id: str, family_id: str
    ) -> LoginResult:
        """The session's new token and the family's next refresh token, written in `uow` (the caller
        commits, then kicks the session it replaced)."""
        now = int(self._clock())
        claims = TokenClaims(user_id, device_id, secrets.token_urlsafe(12), now + self._ttl)
        await uow.sessions.activate(user_id, device_id, claims.token_id)
        refresh, refresh_expires = "", 0
        if self._refresh is not None:
            refresh, refresh_expires = secrets.token_urlsafe(32), now + self._refresh_ttl
            await uow.refresh_tokens.add(_digest(refresh), user_id, device_id, family_id, refresh_expires)
        return LoginResult(
            user_id, self._tokens.issue(claims), claims.expires_at, claims.token_id, refresh, refresh_expires
        )

    async def verify_token(self, token: str) -> TokenClaims:
        try:
            claims = self._tokens.read(token)
        except ValueError as exc:
            raise ImError(UNAUTHENTICATED, f"invalid token: {exc}") from None
        if await self._sessions.current(claims.user_id, claims.device_id) != claims.token_id:
            raise ImError(UNAUTHENTICATED, "token was revoked by a newer login or a logout")
        return claims

    async def logout(self, claims: TokenClaims) -> None:

        async def end_session(uow: AuthUnitOfWork) -> None:
            if self._refresh is not None:
                await uow.refresh_tokens.revoke_device(claims.user_id, claims.device_id)
            await uow.sessions.revoke(claims.user_id, claims.device_id, claims.token_id)

        await self._atomically(end_session)
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

    # ---------- admin API ----------
    async def admin_users(self, query: str, after_user_id: int, limit: int) -> list[AccountSummary]:
        if not isinstance(query, str) or len(query) > 64:
            raise ImError(INVALID_ARGUMENT, "query must be at most 64 characters")
        limit = max(1, min(limit, ADMIN_PAGE_MAX))
        return [_summary(a) for a in await self._accounts.list_accounts(query, after_user_id, limit)]

    async def admin_set_disabled(self, user_id: int, disabled: bool) -> AccountSummary:

        async def set_disabled(uow: AuthUnitOfWork) -> Account:
            if not await uow.accounts.set_disabled(user_id, disabled):
                raise ImError(NOT_FOUND, f"user {user_id} does not exist")
            if disabled:
                await self._sign_out_everywhere(uow, user_id)
            return (await uow.accounts.by_ids([user_id]))[user_id]

        account = await self._atomically(set_disabled)
        if disabled:
            await self._kicker.kick(user_id, "", "", "account disabled by an administrator")
        return _summary(account)

    async def admin_reset_password(self, user_id: int, password: str) -> None:
        password = check_password(password)
        if user_id not in await self._accounts.by_ids([user_id]):
            raise ImError(NOT_FOUND, f"user {user_id} does not exist")
        password_hash = await self._hasher.hash(password)  # slow: before the transaction, not in it

        async def reset(uow: AuthUnitOfWork) -> None:
            await uow.accounts.set_password_hash(user_id, password_hash)
            await self._sign_out_everywhere(uow, user_id)

        await self._atomically(reset)
        await self._kicker.kick(user_id, "", "", "password reset by an administrator")

    async def _sign_out_everywhere(self, uow: AuthUnitOfWork, user_id: int) -> None:
        """Every token and refresh token of the user stops working (the caller commits, then kicks the
        connected devices, on whichever gateway they are)."""
        if self._refresh is not None:
            await uow.refresh_tokens.revoke_user(user_id)
        await uow.sessions.revoke_user(user_id)

    @staticmethod
    async def _is_disabled(uow: AuthUnitOfWork, user_id: int) -> bool:
        account = (await uow.accounts.by_ids([user_id])).get(user_id)
        return account is not None and account.disabled

    def _policy(self) -> RegistrationStore:
        if self._registration is None:
            raise ImError(UNIMPLEMENTED, "this auth service has no registration store")
        return self._registration

    async def registration_mode(self) -> str:
        return await self._registration.mode() if self._registration else REGISTRATION_OPEN

    async def set_registration_mode(self, mode: str) -> str:
        await self._policy().set_mode(check_registration_mode(mode))
        return await self.registration_mode()

    async def create_invite(self, note: str, valid_seconds: int) -> tuple[Invite, str]:
        note = check_invite_note(note)
        if not isinstance(valid_seconds, int) or not 0 <= valid_seconds <= 366 * 24 * 3600:
            raise ImError(INVALID_ARGUMENT, "valid_seconds must be 0 (no expiry) to one year")
        now = int(self._clock())
        code = secrets.token_urlsafe(18)
        invite = await self._policy().add_invite(
            _digest(code), note, now, now + valid_seconds if valid_seconds else 0
        )
        return invite, code

    async def invites(self) -> list[Invite]:
        return await self._policy().invites()

    async def revoke_invite(self, invite_id: int) -> None:
        if not await self._policy().revoke_invite(invite_id):
            raise ImError(NOT_FOUND, f"invite {invite_id} does not exist")

    async def user_count(self) -> int:
        return await self._accounts.count()

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hasher.hash(_DUMMY_PASSWORD)
        return self._dummy_hash


def _summary(account: Account) -> AccountSummary:
    return AccountSummary(account.user_id, account.username, account.nickname, account.disabled)
