"""TransferSlots contract (the per-user cap on concurrent transfers), in memory and in Redis; and two file
gateways sharing one store: the cap holds across them, and a gateway that dies without releasing its
slots gives them back when their leases expire."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.unit.files.test_files_service import Env
from tinyim.edges.filegw import transfers
from tinyim.edges.filegw.transfers import FileGateway, FileLimits
from tinyim.kernel import ImError
from tinyim.modules.files import FILE_TOO_MANY, TransferSlots
from tinyim.modules.files.adapters.memory import InMemoryTransferSlots
from tinyim.modules.files.adapters.redis import RedisTransferSlots

USER = 7
TTL = 30.0


@pytest.fixture(params=["memory", "redis"])
def slots(request: pytest.FixtureRequest) -> TransferSlots:
    if request.param == "memory":
        return InMemoryTransferSlots()
    client, keys = request.getfixturevalue("redis_env")
    return RedisTransferSlots(client, keys)


async def test_a_user_holds_at_most_the_limit_and_a_release_frees_one(slots: TransferSlots) -> None:
    assert await slots.acquire(USER, "a", 2, TTL)
    assert await slots.acquire(USER, "b", 2, TTL)
    assert not await slots.acquire(USER, "c", 2, TTL)
    assert await slots.acquire(USER, "a", 2, TTL)  # a slot already held is not counted twice
    assert await slots.acquire(USER + 1, "c", 2, TTL)  # other users have their own
    await slots.release(USER, "b")
    assert await slots.acquire(USER, "c", 2, TTL)
    await slots.release(USER, "unknown")  # harmless


async def test_a_lease_not_renewed_expires_and_a_renewed_one_lives_on(slots: TransferSlots) -> None:
    assert await slots.acquire(USER, "dead", 1, 0.2)
    assert not await slots.acquire(USER, "b", 1, TTL)
    await asyncio.sleep(0.3)
    assert await slots.acquire(USER, "b", 1, 0.3)  # the dead holder's lease ran out
    await asyncio.sleep(0.2)
    await slots.renew(USER, "b", 0.5)
    await asyncio.sleep(0.2)  # past the first lease, within the renewed one
    assert not await slots.acquire(USER, "c", 1, TTL)
    await slots.renew(USER, "gone", TTL)  # renewing a lease not held takes no slot
    await slots.release(USER, "b")
    assert await slots.acquire(USER, "c", 1, TTL)


async def test_the_cap_holds_across_gateways_sharing_the_store(
    slots: TransferSlots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = Env(tmp_path)

    def gateway() -> FileGateway:
        return FileGateway(env.service, env.blobs, env.tickets, FileLimits(max_transfers_per_user=2), slots)

    one, two = gateway(), gateway()
    async with one.transfer_slot(USER), two.transfer_slot(USER):
        for gw in (one, two):
            with pytest.raises(ImError) as err:
                async with gw.transfer_slot(USER):
                    pass
            assert err.value.code == FILE_TOO_MANY
    async with one.transfer_slot(USER), two.transfer_slot(USER):
        pass  # released on the way out

    # a transfer outlives its first lease: it is renewed meanwhile
    monkeypatch.setattr(transfers, "SLOT_LEASE_SECONDS", 0.3)
    async with one.transfer_slot(USER), one.transfer_slot(USER):
        await asyncio.sleep(0.5)
        with pytest.raises(ImError):
            async with two.transfer_slot(USER):
                pass

    # a gateway killed mid-transfer never releases: its leases expire
    await slots.acquire(USER, "killed-1", 2, 0.2)
    await slots.acquire(USER, "killed-2", 2, 0.2)
    with pytest.raises(ImError):
        async with two.transfer_slot(USER):
            pass
    await asyncio.sleep(0.3)
    async with two.transfer_slot(USER):
        pass
