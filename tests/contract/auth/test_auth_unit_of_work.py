"""AuthUnitOfWork on every adapter: accounts, sessions, refresh tokens and invites in one transaction,
committed or not at all."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from tests.contract.conftest import Backend, fresh_id
from tinyim.modules.auth import (
    AccountRepository,
    AuthUnits,
    DeviceSessions,
    RefreshTokenStore,
    RegistrationStore,
    UsernameTaken,
)
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


@dataclass
class Committed:
    """The stores outside any unit of work: what is committed."""

    accounts: AccountRepository
    sessions: DeviceSessions
    refresh_tokens: RefreshTokenStore
    registration: RegistrationStore


@asynccontextmanager
async def open_units(backend: Backend) -> AsyncIterator[tuple[AuthUnits, Committed]]:
    async with backend.database() as db:
        if db is None:
            accounts, sessions = InMemoryAccounts(), InMemoryDeviceSessions()
            tokens, registration = InMemoryRefreshTokens(), InMemoryRegistration()
            yield (
                InMemoryAuthUnits(accounts, sessions, tokens, registration),
                Committed(accounts, sessions, tokens, registration),
            )
        else:
            committed = Committed(
                SqlAccounts(db), SqlDeviceSessions(db), SqlRefreshTokens(db), SqlRegistration(db)
            )
            yield SqlAuthUnits(db), committed


def name() -> str:
    return f"w{uuid.uuid4().hex[:20]}"


def token_hash() -> str:
    return uuid.uuid4().hex * 2


class Boom(Exception):
    pass


async def test_a_committed_unit_of_work_keeps_every_write(backend: Backend) -> None:
    async with open_units(backend) as (units, committed):
        code = token_hash()
        invite = await committed.registration.add_invite(code, "n", 1000, 0)
        old, new, username = token_hash(), token_hash(), name()
        async with units.begin() as uow:
            assert await uow.registration.claim_invite(code, 1001) == invite.invite_id
            user_id = await uow.accounts.add(username, "hash", "Nick")
            await uow.registration.finish_invite(invite.invite_id, user_id)
            await uow.refresh_tokens.add(old, user_id, "PC", "fam", 2**40)
            await uow.sessions.activate(user_id, "PC", "tok")
            # the unit of work reads its own writes
            found = await uow.accounts.by_username(username)
            assert found is not None and found.user_id == user_id
            assert await uow.sessions.current(user_id, "PC") == "tok"
            consumed = await uow.refresh_tokens.consume(old)
            assert consumed is not None and not consumed.used
            await uow.refresh_tokens.add(new, user_id, "PC", "fam", 2**40)
            await uow.commit()
        account = await committed.accounts.by_username(username)
        assert account is not None and (account.user_id, account.password_hash) == (user_id, "hash")
        assert await committed.sessions.current(user_id, "PC") == "tok"
        assert {i.invite_id: i.used_by for i in await committed.registration.invites()}[
            invite.invite_id
        ] == user_id
        assert await committed.registration.claim_invite(code, 1001) is None
        replayed = await committed.refresh_tokens.consume(old)
        assert replayed is not None and replayed.used  # consumed in the unit of work
        fresh = await committed.refresh_tokens.consume(new)
        assert fresh is not None and not fresh.used


@pytest.mark.parametrize("crash", [Boom, asyncio.CancelledError])
async def test_an_error_or_a_cancellation_rolls_back_every_write(
    backend: Backend, crash: type[BaseException]
) -> None:
    async with open_units(backend) as (units, committed):
        user_id, code, live, username = fresh_id(), token_hash(), token_hash(), name()
        invite = await committed.registration.add_invite(code, "n", 1000, 0)
        await committed.sessions.activate(user_id, "PC", "old")
        await committed.refresh_tokens.add(live, user_id, "PC", "fam", 2**40)
        with pytest.raises(crash):
            async with units.begin() as uow:
                assert await uow.registration.claim_invite(code, 1001) == invite.invite_id
                new_id = await uow.accounts.add(username, "hash", "Nick")
                await uow.registration.finish_invite(invite.invite_id, new_id)
                record = await uow.refresh_tokens.consume(live)
                assert record is not None and not record.used
                await uow.refresh_tokens.revoke_user(user_id)
                await uow.sessions.activate(user_id, "PC", "new")
                await uow.sessions.revoke_user(user_id)
                raise crash()
        assert await committed.accounts.by_username(username) is None
        assert await committed.sessions.current(user_id, "PC") == "old"
        record = await committed.refresh_tokens.consume(live)
        assert record is not None and not record.used and not record.revoked
        # the invite was given back with the rollback: still unused, and claimable
        assert {i.invite_id: i.used_by for i in await committed.registration.invites()}[invite.invite_id] == 0
        assert await committed.registration.claim_invite(code, 1001) == invite.invite_id


async def test_leaving_without_commit_rolls_back(backend: Backend) -> None:
    async with open_units(backend) as (units, committed):
        user_id, username = fresh_id(), name()
        async with units.begin() as uow:
            await uow.accounts.add(username, "hash", "Nick")
            await uow.sessions.activate(user_id, "Web", "tok")
        assert await committed.accounts.by_username(username) is None
        assert await committed.sessions.current(user_id, "Web") is None


async def test_a_taken_username_inside_a_unit_of_work_then_rollback_keeps_the_invite(
    backend: Backend,
) -> None:
    async with open_units(backend) as (units, committed):
        taken, code = name(), token_hash()
        await committed.accounts.add(taken, "h", "n")
        invite = await committed.registration.add_invite(code, "n", 1000, 0)
        with pytest.raises(UsernameTaken):
            async with units.begin() as uow:
                assert await uow.registration.claim_invite(code, 1001) == invite.invite_id
                await uow.accounts.add(taken, "h2", "n2")
        found = await committed.accounts.by_username(taken)
        assert found is not None and found.password_hash == "h"
        assert await committed.registration.claim_invite(code, 1001) == invite.invite_id


async def test_units_of_work_one_after_another_see_each_others_commits(backend: Backend) -> None:
    async with open_units(backend) as (units, committed):
        username = name()
        async with units.begin() as uow:
            user_id = await uow.accounts.add(username, "h", "n")
            await uow.commit()
        async with units.begin() as uow:
            assert await uow.accounts.set_disabled(user_id, True)
            await uow.sessions.activate(user_id, "PC", "t")
            await uow.commit()
        found = await committed.accounts.by_username(username)
        assert found is not None and found.disabled
        assert await committed.sessions.current(user_id, "PC") == "t"
        with pytest.raises(RuntimeError):  # a unit of work is used once
            await uow.commit()
