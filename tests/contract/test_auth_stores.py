"""AccountRepository and DeviceSessions contracts, on every adapter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.contract.conftest import Backend, fresh_id
from tinyim.modules.auth import AccountRepository, DeviceSessions, UsernameTaken
from tinyim.modules.auth.adapters.memory import InMemoryAccounts, InMemoryDeviceSessions
from tinyim.modules.auth.adapters.sql import SqlAccounts, SqlDeviceSessions


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
