"""AccountRepository and DeviceSessions contracts, on every adapter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.contract.conftest import Backend, fresh_id
from tinyim.modules.auth import (
    AccountRepository,
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
from tinyim.modules.auth.adapters.sql import (
    SqlAccounts,
    SqlDeviceSessions,
    SqlRefreshTokens,
    SqlRegistration,
)


@asynccontextmanager
async def open_stores(backend: Backend) -> AsyncIterator[tuple[AccountRepository, DeviceSessions]]:
    async with backend.database() as db:
        if db is None:
            yield InMemoryAccounts(), InMemoryDeviceSessions()
        else:
            yield SqlAccounts(db), SqlDeviceSessions(db)


def name() -> str:
    return f"u{uuid.uuid4().hex[:20]}"


async def test_accounts_add_and_find(backend: Backend) -> None:
    async with open_stores(backend) as (accounts, _):
        alice, bob = name(), name()
        a = await accounts.add(alice, "hash-a", "Alice")
        b = await accounts.add(bob, "hash-b", "鲍勃")
        assert a != b
        found = await accounts.by_username(alice)
        assert found is not None and (found.user_id, found.password_hash, found.nickname) == (
            a,
            "hash-a",
            "Alice",
        )
        assert await accounts.by_username(name()) is None
        many = await accounts.by_ids([a, b, b, 10**15])
        assert {uid: acc.nickname for uid, acc in many.items()} == {a: "Alice", b: "鲍勃"}
        assert await accounts.by_ids([]) == {}


async def test_accounts_refuse_a_taken_username(backend: Backend) -> None:
    async with open_stores(backend) as (accounts, _):
        taken = name()
        await accounts.add(taken, "h", "n")
        with pytest.raises(UsernameTaken):
            await accounts.add(taken, "h2", "n2")
        found = await accounts.by_username(taken)
        assert found is not None and found.password_hash == "h"


async def test_accounts_update_the_password_hash(backend: Backend) -> None:
    async with open_stores(backend) as (accounts, _):
        username = name()
        uid = await accounts.add(username, "old", "n")
        await accounts.set_password_hash(uid, "new")
        found = await accounts.by_username(username)
        assert found is not None and found.password_hash == "new"


async def test_device_sessions_keep_one_live_token_per_device(backend: Backend) -> None:
    async with open_stores(backend) as (_, sessions):
        uid = fresh_id()
        assert await sessions.current(uid, "PC") is None
        await sessions.activate(uid, "PC", "t1")
        await sessions.activate(uid, "Web", "w1")
        await sessions.activate(uid, "PC", "t2")
        assert (await sessions.current(uid, "PC"), await sessions.current(uid, "Web")) == ("t2", "w1")
        await sessions.revoke(uid, "PC", "t1")  # no longer the live one: nothing happens
        assert await sessions.current(uid, "PC") == "t2"
        await sessions.revoke(uid, "PC", "t2")
        assert await sessions.current(uid, "PC") is None and await sessions.current(uid, "Web") == "w1"


# ---------- refresh tokens (reliability) ----------
@asynccontextmanager
async def refresh_store(backend: Backend) -> AsyncIterator[RefreshTokenStore]:
    async with backend.database() as db:
        yield InMemoryRefreshTokens() if db is None else SqlRefreshTokens(db)


async def test_refresh_token_is_consumed_once(backend: Backend) -> None:
    async with refresh_store(backend) as store:
        user = fresh_id()
        h = uuid.uuid4().hex * 2
        await store.add(h, user, "PC", "fam1", 2_000_000_000)
        first = await store.consume(h)
        assert first is not None and (first.user_id, first.device_id, first.family_id) == (user, "PC", "fam1")
        assert not first.used and not first.revoked
        again = await store.consume(h)
        assert again is not None and again.used
        assert await store.consume("0" * 64) is None


async def test_refresh_tokens_are_revoked_by_family_and_by_device(backend: Backend) -> None:
    async with refresh_store(backend) as store:
        user = fresh_id()
        a, b, c = (uuid.uuid4().hex * 2 for _ in range(3))
        await store.add(a, user, "PC", "famA", 2_000_000_000)
        await store.add(b, user, "PC", "famB", 2_000_000_000)
        await store.add(c, user, "Web", "famC", 2_000_000_000)
        await store.revoke_family("famA")
        got_a = await store.consume(a)
        assert got_a is not None and got_a.revoked
        await store.revoke_device(user, "PC")
        got_b, got_c = await store.consume(b), await store.consume(c)
        assert got_b is not None and got_b.revoked
        assert got_c is not None and not got_c.revoked


# ---------- admin API ----------
@asynccontextmanager
async def registration_store(backend: Backend) -> AsyncIterator[RegistrationStore]:
    async with backend.database() as db:
        yield InMemoryRegistration() if db is None else SqlRegistration(db)


async def test_accounts_disable_list_and_count(backend: Backend) -> None:
    async with open_stores(backend) as (accounts, _):
        prefix = f"adm{uuid.uuid4().hex[:8]}"
        ids = [await accounts.add(f"{prefix}_{i}", "h", f"Nick {i}") for i in range(3)]
        before = await accounts.count()
        assert before >= 3
        assert await accounts.set_disabled(ids[1], True)
        assert await accounts.set_disabled(ids[1], True)  # again: still there
        assert not await accounts.set_disabled(10**15, True)
        assert [a.disabled for a in (await accounts.by_ids(ids)).values()] == [False, True, False]
        found = await accounts.by_username(f"{prefix}_1")
        assert found is not None and found.disabled
        page = await accounts.list_accounts(prefix, 0, 2)
        assert [a.user_id for a in page] == ids[:2]
        assert [a.user_id for a in await accounts.list_accounts(prefix, ids[1], 5)] == ids[2:]
        assert await accounts.list_accounts(prefix + "%", 0, 5) == []  # wildcards are literal
        await accounts.add(f"{prefix}_x", "h", "n")
        assert await accounts.count() == before + 1


async def test_device_sessions_and_refresh_tokens_revoked_per_user(backend: Backend) -> None:
    async with open_stores(backend) as (_, sessions), refresh_store(backend) as tokens:
        uid = fresh_id()
        for device in ("PC", "Web"):
            await sessions.activate(uid, device, f"t-{device}")
            await tokens.add(f"{uid}-{device}".ljust(64, "0"), uid, device, f"f{device}", 2**40)
        await sessions.activate(uid + 1, "PC", "other")
        await sessions.revoke_user(uid)
        await tokens.revoke_user(uid)
        assert await sessions.current(uid, "PC") is None and await sessions.current(uid, "Web") is None
        assert await sessions.current(uid + 1, "PC") == "other"
        record = await tokens.consume(f"{uid}-PC".ljust(64, "0"))
        assert record is not None and record.revoked


async def test_registration_mode_and_invites(backend: Backend) -> None:
    async with registration_store(backend) as store:
        assert await store.mode() == "open"
        await store.set_mode("invite")
        await store.set_mode("closed")
        assert await store.mode() == "closed"
        h = uuid.uuid4().hex.ljust(64, "0")
        invite = await store.add_invite(h, "note", 1000, 0)
        assert invite.note == "note" and invite.used_by == 0 and not invite.revoked
        assert await store.claim_invite("f" * 64, 1001) is None
        assert await store.usable_invite(h, 1001) and not await store.usable_invite("f" * 64, 1001)
        assert await store.claim_invite(h, 1001) == invite.invite_id
        assert not await store.usable_invite(h, 1001)  # claimed
        assert await store.claim_invite(h, 1001) is None  # once
        await store.release_invite(invite.invite_id)
        assert await store.claim_invite(h, 1001) == invite.invite_id
        await store.finish_invite(invite.invite_id, 42)
        await store.release_invite(invite.invite_id)  # a finished invite stays used
        assert await store.claim_invite(h, 1001) is None
        expiring_hash = uuid.uuid4().hex.ljust(64, "1")
        expiring = await store.add_invite(expiring_hash, "", 1000, 2000)
        assert await store.usable_invite(expiring_hash, 1999)
        assert not await store.usable_invite(expiring_hash, 2000)
        assert await store.claim_invite(expiring_hash, 2000) is None  # expired
        revoked_hash = uuid.uuid4().hex.ljust(64, "3")
        revoked = await store.add_invite(revoked_hash, "", 1000, 0)
        assert await store.revoke_invite(revoked.invite_id)
        assert not await store.revoke_invite(10**12)
        assert await store.claim_invite(revoked_hash, 1001) is None
        assert not await store.usable_invite(revoked_hash, 1001)
        listed = {i.invite_id: i for i in await store.invites()}
        assert listed[invite.invite_id].used_by == 42 and listed[revoked.invite_id].revoked
        assert listed[expiring.invite_id].expires_at == 2000
