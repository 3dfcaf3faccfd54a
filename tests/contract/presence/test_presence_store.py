"""PresenceStore contract (online status records), in memory and in Redis; and two gateways sharing
Redis: one dies, the other announces its users offline once their devices expire."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from tests.support.services import delete_prefix, require_redis
from tests.unit.fakes import RecordingGatewayLink
from tests.unit.presence.test_online_status import FakeAudience
from tinyim.infra.redis import Keys
from tinyim.kernel import Caller
from tinyim.modules.presence import DeviceSession, PresenceRecord, PresenceStore, Status, StatusService
from tinyim.modules.presence.adapters.memory import InMemoryPresenceStore
from tinyim.modules.presence.adapters.redis import RedisPresenceStore, RedisSessionDirectory
from tinyim.modules.presence.ports import Change

T0 = 1_800_000_000_000
TTL = 10_000


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> PresenceStore:
    if request.param == "memory":
        return InMemoryPresenceStore()
    client, keys = request.getfixturevalue("redis_env")
    return RedisPresenceStore(client, keys)


def up(device: str, conn: str, idle: bool | None = False) -> Change:
    return lambda r, now: r.device_up(device, conn, now, TTL, idle)


def down(device: str, conn: str) -> Change:
    return lambda r, now: r.device_down(device, conn, now)


async def test_updates_aggregate_devices_and_report_each_change_once(store: PresenceStore) -> None:
    view, changed = await store.update(7, up("PC", "c1"), T0)
    assert (view.status, view.last_seen_ms, changed) == (Status.ONLINE, T0, True)
    view, changed = await store.update(7, up("Web", "c2"), T0 + 1)
    assert (view.status, changed) == (Status.ONLINE, False)
    await store.update(7, up("PC", "c1", idle=True), T0 + 2)
    view, changed = await store.update(7, up("Web", "c2", idle=True), T0 + 3)
    assert (view.status, changed) == (Status.AWAY, True)
    view, changed = await store.update(7, up("Web", "c2", idle=None), T0 + 4)  # a heartbeat keeps idle
    assert (view.status, changed) == (Status.AWAY, False)

    def manual(r: PresenceRecord, now: int) -> None:
        r.manual_away = True

    await store.update(7, manual, T0 + 5)
    await store.update(7, up("Web", "c2", idle=False), T0 + 6)
    assert (await store.update(7, lambda r, now: None, T0 + 7))[0].status == Status.AWAY  # manual wins
    await store.update(7, lambda r, now: r.device_down("Web", "other-conn", now), T0 + 8)  # not its conn
    await store.update(7, lambda r, now: r.device_down("Web", "c2", now), T0 + 9)
    view, changed = await store.update(7, lambda r, now: r.device_down("PC", "c1", now), T0 + 10)
    assert (view.status, view.last_seen_ms, changed) == (Status.OFFLINE, T0 + 10, True)
    record = (await store.records([7, 8]))[7]
    assert record.devices == {} and record.manual_away and record.shown == Status.OFFLINE
    assert 8 not in await store.records([8])


async def test_expired_devices_are_due_and_pruned_by_any_update(store: PresenceStore) -> None:
    await store.update(1, up("PC", "a"), T0)
    await store.update(2, up("PC", "b"), T0 + 5_000)
    assert await store.due(T0 + TTL - 1, 10) == []
    assert await store.due(T0 + TTL, 10) == [1]
    assert sorted(await store.due(T0 + 5_000 + TTL, 10)) == [1, 2]
    assert len(await store.due(T0 + 5_000 + TTL, 1)) == 1
    view, changed = await store.update(1, lambda r, now: None, T0 + TTL)
    assert (view.status, view.last_seen_ms, changed) == (Status.OFFLINE, T0, True)
    assert await store.due(T0 + 5_000 + TTL, 10) == [2]
    await store.update(2, up("PC", "b", idle=None), T0 + 6_000)  # a heartbeat moves the deadline
    assert await store.due(T0 + 5_000 + TTL, 10) == []


async def test_concurrent_updates_report_a_change_exactly_once(store: PresenceStore) -> None:
    results = await asyncio.gather(*(store.update(3, up(f"D{i}", f"c{i}"), T0) for i in range(8)))
    assert sum(changed for _, changed in results) == 1
    assert len((await store.records([3]))[3].devices) == 8
    results = await asyncio.gather(*(store.update(3, down(f"D{i}", f"c{i}"), T0 + 1) for i in range(8)))
    assert sum(changed for _, changed in results) == 1
    assert (await store.records([3]))[3].status(T0 + 2) == Status.OFFLINE


async def test_two_gateways_on_redis_a_killed_ones_users_go_offline_after_expiry(
    redis_env: tuple[Redis, Keys],
) -> None:
    client, keys = redis_env
    ttl = 0.6
    sessions = RedisSessionDirectory(client, keys, ttl_seconds=ttl)
    store = RedisPresenceStore(client, keys)
    link = RecordingGatewayLink()
    audience = FakeAudience()
    gw1 = StatusService(store, audience, sessions, link, ttl)
    gw2 = StatusService(store, audience, sessions, link, ttl)
    alice, bob = 1, 2  # friends (FakeAudience)
    await sessions.bind(DeviceSession(bob, "PC", "gw-2", "b"))
    await gw2.connected(bob, "PC", "b")
    await sessions.bind(DeviceSession(alice, "PC", "gw-1", "a"))
    await gw1.connected(alice, "PC", "a")
    assert [v.status for v in await gw2.query(Caller(bob, "PC"), [alice])] == [Status.ONLINE]
    link.statuses.clear()
    # gw-1 is killed: nothing more from it. gw-2 keeps Bob alive and reaps.
    deadline = time.monotonic() + 5
    while not link.statuses and time.monotonic() < deadline:
        await asyncio.sleep(ttl / 4)
        await sessions.refresh(DeviceSession(bob, "PC", "gw-2", "b"))
        await gw2.heartbeat(bob, "PC", "b")
        await gw2.reap()
    assert [(g, users, s.user_id, s.status) for g, users, s in link.statuses] == [
        ("gw-2", [bob], alice, Status.OFFLINE)  # Alice's own entry expired from the routing table too
    ]
    assert [v.status for v in await gw2.query(Caller(bob, "PC"), [alice])] == [Status.OFFLINE]
    assert [v.status for v in await gw1.query(Caller(alice, "PC"), [bob])] == [Status.ONLINE]
    assert await client.pttl(keys.presence(alice)) > 0


# ---------- property: any series of events, memory and Redis agree with a plain model ----------
Op = tuple[str, str, str, object]

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("up"),
            st.sampled_from(["PC", "Web"]),
            st.sampled_from(["c1", "c2"]),
            st.sampled_from([False, True, None]),
        ),
        st.tuples(st.just("down"), st.sampled_from(["PC", "Web"]), st.sampled_from(["c1", "c2"]), st.none()),
        st.tuples(st.just("away"), st.just(""), st.just(""), st.booleans()),
        st.tuples(st.just("wait"), st.just(""), st.just(""), st.integers(0, 2 * TTL)),
    ),
    max_size=25,
)


class Model:
    """The rules written plainly: devices by last sign of life, the user's own away, last seen."""

    def __init__(self) -> None:
        self.devices: dict[str, tuple[str, int, bool]] = {}  # device -> (conn, last up, idle)
        self.away = False
        self.seen = 0

    def apply(self, op: Op, now: int) -> None:
        kind, device, conn, arg = op
        live = {k: v for k, v in self.devices.items() if v[1] + TTL > now}
        if kind == "up":
            old = live.get(device)
            idle = (old[2] if old is not None and old[0] == conn else False) if arg is None else bool(arg)
            live[device] = (conn, now, idle)
            self.seen = max(self.seen, now)
        elif kind == "down" and device in live and live[device][0] == conn:
            del live[device]
            self.seen = max(self.seen, now)
        elif kind == "away":
            self.away = bool(arg)
        self.devices = live

    def status(self, now: int) -> Status:
        live = [v for v in self.devices.values() if v[1] + TTL > now]
        if not live:
            return Status.OFFLINE
        return Status.AWAY if self.away or all(v[2] for v in live) else Status.ONLINE


def change_of(op: Op) -> Change:
    kind, device, conn, arg = op
    if kind == "up":
        return up(device, conn, None if arg is None else bool(arg))
    if kind == "down":
        return down(device, conn)

    def other(r: PresenceRecord, now: int) -> None:
        if kind == "away":
            r.manual_away = bool(arg)

    return other


@settings(max_examples=40, deadline=None)
@given(events=ops)
def test_property_memory_and_redis_follow_the_model(events: list[Op]) -> None:
    url = require_redis()

    async def scenario() -> None:
        client = Redis.from_url(url, decode_responses=True)
        keys = Keys(f"tinyim-test-{uuid.uuid4().hex[:8]}:")
        stores: list[PresenceStore] = [InMemoryPresenceStore(), RedisPresenceStore(client, keys)]
        model, now, shown = Model(), T0, Status.OFFLINE
        try:
            for op in events:
                if op[0] == "wait":
                    now += int(op[3])  # type: ignore[call-overload]
                model.apply(op, now)
                results = [await s.update(9, change_of(op), now) for s in stores]
                expected = model.status(now)
                for view, changed in results:
                    assert (view.status, changed) == (expected, expected != shown), op
                    assert view.last_seen_ms == max([model.seen, *(v[1] for v in model.devices.values())])
                shown = expected
                due = [await s.due(now + TTL, 5) for s in stores]
                assert due[0] == due[1] == ([9] if model.devices else [])
        finally:
            await client.aclose()
            await delete_prefix(url, keys.prefix)

    asyncio.run(scenario())
