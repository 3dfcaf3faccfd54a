"""Auth commands are all or nothing (issue #9), on every adapter.

The work is killed between its steps (the Nth write of a unit of work raises, or the task is cancelled
there): afterwards the command is either entirely done or not at all — no invite spent without its
account, no session replaced without its refresh token, no refresh token consumed without the session
it renews, no account disabled with its sessions still live. Without a unit of work the same kills leave
things half done (the last test shows it, so these checks can fail).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import pytest

from tests.contract.conftest import Backend
from tests.unit.fakes import FakeHasher, RecordingKicker
from tinyim.kernel import PERMISSION_DENIED, UNAUTHENTICATED, ImError
from tinyim.modules.auth import (
    AccountRepository,
    AuthService,
    AuthUnitOfWork,
    AuthUnits,
    DeviceSessions,
    LostRace,
    RefreshTokenStore,
    RegistrationStore,
)
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.memory import (
    InMemoryAccounts,
    InMemoryDeviceSessions,
    InMemoryRefreshTokens,
    InMemoryRegistration,
)
from tinyim.modules.auth.adapters.memory_unit_of_work import InMemoryAuthUnits
from tinyim.modules.auth.adapters.sql import (
    SqlAccounts,
    SqlDeviceSessions,
    SqlRefreshTokens,
    SqlRegistration,
)
from tinyim.modules.auth.adapters.sql_unit_of_work import SqlAuthUnits

WRITES = {
    "add", "set_password_hash", "set_nickname", "set_privacy", "set_disabled",  # accounts (+ refresh add)
    "activate", "revoke", "revoke_user",  # sessions (+ refresh revoke_user)
    "consume", "revoke_family", "revoke_device",  # refresh tokens
    "set_mode", "add_invite", "claim_invite", "finish_invite", "release_invite", "revoke_invite",
}  # fmt: skip
PASSWORD = "password1"


class Crash(Exception):
    """The process died here."""


class CrashingUnits:
    """Units of work whose `crash_at`-th write does not happen: it raises `crash` instead. 0: no crash.
    Counts the writes of the last unit of work."""

    def __init__(self, inner: AuthUnits) -> None:
        self.inner = inner
        self.crash_at = 0
        self.crash: type[BaseException] = Crash
        self.crashes = -1  # how many more times to crash; -1: every time
        self.steps = 0
        self.begun = 0

    def begin(self) -> AuthUnitOfWork:
        self.steps = 0
        self.begun += 1
        return CrashingUnitOfWork(self, self.inner.begin())

    def step(self) -> None:
        self.steps += 1
        if self.steps == self.crash_at and self.crashes != 0:
            self.crashes -= 1
            raise self.crash()


class _Counted:
    def __init__(self, units: CrashingUnits, inner: Any) -> None:
        self._units, self._inner = units, inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in WRITES:
            return value

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._units.step()
            return await value(*args, **kwargs)

        return counted


class CrashingUnitOfWork:
    def __init__(self, units: CrashingUnits, inner: AuthUnitOfWork) -> None:
        self._units, self._inner = units, inner

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        self.accounts: Any = _Counted(self._units, self._inner.accounts)
        self.sessions: Any = _Counted(self._units, self._inner.sessions)
        self.refresh_tokens: Any = _Counted(self._units, self._inner.refresh_tokens)
        self.registration: Any = _Counted(self._units, self._inner.registration)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        await self._inner.commit()

    async def rollback(self) -> None:
        await self._inner.rollback()


class NoUnits:
    """No unit of work: the committed stores themselves, each write committing on its own (as auth was
    before units of work). Only for showing what the checks below catch."""

    def __init__(
        self,
        accounts: AccountRepository,
        sessions: DeviceSessions,
        refresh_tokens: RefreshTokenStore,
        registration: RegistrationStore,
    ) -> None:
        self.accounts, self.sessions = accounts, sessions
        self.refresh_tokens, self.registration = refresh_tokens, registration

    def begin(self) -> NoUnits:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def commit(self) -> None:
        pass

    async def rollback(self) -> None:
        pass


@dataclass
class World:
    service: AuthService
    accounts: AccountRepository  # what is committed
    sessions: DeviceSessions
    registration: RegistrationStore
    units: CrashingUnits
    kicker: RecordingKicker

    async def invite_used_by(self, invite_id: int) -> int:
        return {i.invite_id: i.used_by for i in await self.registration.invites()}[invite_id]


@asynccontextmanager
async def world(backend: Backend, atomic: bool = True) -> AsyncIterator[World]:
    async with backend.database() as db:
        accounts: AccountRepository
        sessions: DeviceSessions
        tokens: RefreshTokenStore
        registration: RegistrationStore
        units: AuthUnits
        if db is None:
            memory = (
                InMemoryAccounts(),
                InMemoryDeviceSessions(),
                InMemoryRefreshTokens(),
                InMemoryRegistration(),
            )
            accounts, sessions, tokens, registration = memory
            units = InMemoryAuthUnits(*memory)
        else:
            accounts, sessions = SqlAccounts(db), SqlDeviceSessions(db)
            tokens, registration = SqlRefreshTokens(db), SqlRegistration(db)
            units = SqlAuthUnits(db)
        if not atomic:
            units = NoUnits(accounts, sessions, tokens, registration)
        crashing, kicker = CrashingUnits(units), RecordingKicker()
        service = AuthService(
            accounts,
            sessions,
            FakeHasher(),
            JwtCodec("s" * 40),
            kicker,
            600,
            refresh_tokens=tokens,
            registration=registration,
            units=crashing,
        )
        # the mode is server-wide, and MariaDB's tests share a database: open unless a test says not
        await registration.set_mode("open")
        try:
            yield World(service, accounts, sessions, registration, crashing, kicker)
        finally:
            await registration.set_mode("open")


def username() -> str:
    return f"a{uuid.uuid4().hex[:20]}"


async def invite_only(w: World) -> tuple[int, str]:
    """Registration by invitation, and a new code."""
    await w.service.set_registration_mode("invite")
    invite, code = await w.service.create_invite("for a test", 0)
    return invite.invite_id, code


@pytest.mark.parametrize("crash", [Crash, asyncio.CancelledError])
async def test_register_killed_between_steps_spends_no_invite_and_adds_no_account(
    backend: Backend, crash: type[BaseException]
) -> None:
    async with world(backend) as w:
        invite_id, code = await invite_only(w)
        name = username()
        # claim the invite, add the account, mark the invite used: killed before each of the three
        for step in (1, 2, 3):
            w.units.crash_at, w.units.crash = step, crash
            with pytest.raises(crash):
                await w.service.register(name, PASSWORD, "Nick", code)
            assert await w.accounts.by_username(name) is None, step
            assert await w.invite_used_by(invite_id) == 0, step
        w.units.crash_at = 0
        user_id = await w.service.register(name, PASSWORD, "Nick", code)  # the code was never spent
        assert w.units.steps == 3  # the three steps, in one unit of work
        assert await w.invite_used_by(invite_id) == user_id
        with pytest.raises(ImError) as refused:
            await w.service.register(username(), PASSWORD, "Other", code)
        assert refused.value.code == PERMISSION_DENIED


@pytest.mark.parametrize("crash", [Crash, asyncio.CancelledError])
async def test_login_killed_between_steps_leaves_the_old_session_and_its_refresh_token(
    backend: Backend, crash: type[BaseException]
) -> None:
    async with world(backend) as w:
        name = username()
        user_id = await w.service.register(name, PASSWORD, "Nick")
        first = await w.service.login(name, PASSWORD, "PC")
        kicks = len(w.kicker.kicks)
        # revoke the device's refresh tokens, activate the new session, add its refresh token
        for step in (1, 2, 3):
            w.units.crash_at, w.units.crash = step, crash
            with pytest.raises(crash):
                await w.service.login(name, PASSWORD, "PC")
            assert await w.service.verify_token(first.token), step
            assert len(w.kicker.kicks) == kicks, step  # nobody is kicked for a login that did not happen
        w.units.crash_at = 0
        # the old refresh token was never revoked (nor its session replaced): it still renews
        renewed = await w.service.refresh(first.refresh_token)
        second = await w.service.login(name, PASSWORD, "PC")
        assert w.units.steps == 3
        assert (await w.service.verify_token(second.token)).user_id == user_id
        for old in (first.token, renewed.token):
            with pytest.raises(ImError):
                await w.service.verify_token(old)
        with pytest.raises(ImError) as refused:  # the login revoked the renewed refresh token
            await w.service.refresh(renewed.refresh_token)
        assert refused.value.code == UNAUTHENTICATED
        assert (await w.service.refresh(second.refresh_token)).user_id == user_id


@pytest.mark.parametrize("crash", [Crash, asyncio.CancelledError])
async def test_refresh_killed_between_steps_consumes_nothing_and_keeps_the_session(
    backend: Backend, crash: type[BaseException]
) -> None:
    async with world(backend) as w:
        name = username()
        user_id = await w.service.register(name, PASSWORD, "Nick")
        first = await w.service.login(name, PASSWORD, "Web")
        kicks = len(w.kicker.kicks)
        # consume the refresh token, activate the new session, add the family's next refresh token
        for step in (1, 2, 3):
            w.units.crash_at, w.units.crash = step, crash
            with pytest.raises(crash):
                await w.service.refresh(first.refresh_token)
            assert await w.service.verify_token(first.token), step
            assert len(w.kicker.kicks) == kicks, step
        w.units.crash_at = 0
        # not consumed by the killed attempts: this use is the first, not a replay
        renewed = await w.service.refresh(first.refresh_token)
        assert w.units.steps == 3
        assert (await w.service.verify_token(renewed.token)).user_id == user_id
        with pytest.raises(ImError):
            await w.service.verify_token(first.token)
        # a replay now is one: the family and the renewed session go
        with pytest.raises(ImError):
            await w.service.refresh(first.refresh_token)
        with pytest.raises(ImError):
            await w.service.verify_token(renewed.token)
        with pytest.raises(ImError):
            await w.service.refresh(renewed.refresh_token)


@pytest.mark.parametrize("crash", [Crash, asyncio.CancelledError])
async def test_disable_killed_between_steps_leaves_the_account_and_its_sessions(
    backend: Backend, crash: type[BaseException]
) -> None:
    async with world(backend) as w:
        name = username()
        user_id = await w.service.register(name, PASSWORD, "Nick")
        session = await w.service.login(name, PASSWORD, "Mobile")
        # disable, revoke the refresh tokens, revoke the sessions
        for step in (1, 2, 3):
            w.units.crash_at, w.units.crash = step, crash
            with pytest.raises(crash):
                await w.service.admin_set_disabled(user_id, True)
            account = await w.accounts.by_username(name)
            assert account is not None and not account.disabled, step
            assert await w.sessions.current(user_id, "Mobile") == session.token_id, step
        w.units.crash_at = 0
        assert (await w.service.admin_set_disabled(user_id, True)).disabled
        assert w.units.steps == 3
        assert await w.sessions.current(user_id, "Mobile") is None
        assert w.kicker.kicks[-1][:3] == (user_id, "", "")  # kicked after the commit


async def test_without_a_unit_of_work_the_same_kills_leave_things_half_done() -> None:
    async with world(Backend("memory"), atomic=False) as w:
        _, code = await invite_only(w)
        name = username()
        w.units.crash_at = 2  # the invite claimed, then killed before the account is added
        with pytest.raises(Crash):
            await w.service.register(name, PASSWORD, "Nick", code)
        assert await w.accounts.by_username(name) is None
        w.units.crash_at = 0
        with pytest.raises(ImError) as refused:  # the invite is gone all the same
            await w.service.register(name, PASSWORD, "Nick", code)
        assert refused.value.code == PERMISSION_DENIED
        await w.service.set_registration_mode("open")
        await w.service.register(name, PASSWORD, "Nick")
        first = await w.service.login(name, PASSWORD, "PC")
        w.units.crash_at = 2  # the refresh token consumed, then killed before the new session
        with pytest.raises(Crash):
            await w.service.refresh(first.refresh_token)
        w.units.crash_at = 0
        with pytest.raises(ImError):  # taken for a replay: the user is signed out
            await w.service.refresh(first.refresh_token)
        with pytest.raises(ImError):
            await w.service.verify_token(first.token)


async def test_a_unit_of_work_that_lost_a_race_runs_again(backend: Backend) -> None:
    async with world(backend) as w:
        name = username()
        user_id = await w.service.register(name, PASSWORD, "Nick")
        first = await w.service.login(name, PASSWORD, "PC")
        # a deadlock victim after its second write (the session activated): rolled back, run again
        w.units.crash_at, w.units.crash, w.units.crashes, w.units.begun = 2, LostRace, 1, 0
        second = await w.service.login(name, PASSWORD, "PC")
        assert w.units.begun == 2 and w.units.steps == 3
        assert (await w.service.verify_token(second.token)).user_id == user_id
        with pytest.raises(ImError):
            await w.service.verify_token(first.token)
        # one that loses every time gives up, having written nothing
        w.units.crashes, w.units.begun = -1, 0
        with pytest.raises(LostRace):
            await w.service.refresh(second.refresh_token)
        assert w.units.begun == 5
        assert await w.service.verify_token(second.token)
        w.units.crash_at = 0
        assert (await w.service.refresh(second.refresh_token)).user_id == user_id  # not consumed


async def test_concurrent_logins_on_one_device_all_succeed_and_one_session_stays(backend: Backend) -> None:
    """On MariaDB two such logins can deadlock (gap locks of the refresh tokens' device index): the
    victim's unit of work runs again."""
    async with world(backend) as w:
        name = username()
        user_id = await w.service.register(name, PASSWORD, "Nick")
        for _ in range(3):
            results = await asyncio.gather(*(w.service.login(name, PASSWORD, "PC") for _ in range(6)))
            live = [r for r in results if await w.sessions.current(user_id, "PC") == r.token_id]
            assert len(live) == 1
            renewed = []
            for r in results:  # only the live session's refresh token renews (a refusal consumes nothing)
                try:
                    renewed.append(await w.service.refresh(r.refresh_token))
                except ImError as exc:
                    assert exc.code == UNAUTHENTICATED
            assert len(renewed) == 1 and renewed[0].user_id == user_id
