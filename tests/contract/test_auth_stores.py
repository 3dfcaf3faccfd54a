"""AccountRepository and DeviceSessions contracts, on every adapter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.contract.conftest import Backend, fresh_id
from tinyim.modules.auth import AccountRepository, DeviceSessions, RefreshTokenStore, UsernameTaken
from tinyim.modules.auth.adapters.memory import (
    InMemoryAccounts,
    InMemoryDeviceSessions,
    InMemoryRefreshTokens,
)
from tinyim.modules.auth.adapters.sql import SqlAccounts, SqlDeviceSessions, SqlRefreshTokens


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
