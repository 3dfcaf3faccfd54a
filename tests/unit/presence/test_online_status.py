"""Online status and typing (presence.StatusService) with in-memory stores and a recording gateway link:
aggregation over devices, idle and manual away, disconnects and expiry, who is told, who may ask."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tests.unit.fakes import RecordingGatewayLink
from tests.unit.presence.test_presence_and_hub import connection
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.edges.gateway.status import StatusTracker
from tinyim.kernel import INVALID_ARGUMENT, NOT_FRIENDS, RATE_LIMITED, Caller, ImError
from tinyim.modules.presence import DeviceSession, Status, StatusService, StatusView
from tinyim.modules.presence.adapters.memory import InMemoryPresenceStore, InMemorySessionDirectory
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode

ALICE, BOB, CAROL, EVE = 1, 2, 3, 4
TTL = 20.0


class FakeAudience:
    """Alice, Bob and Carol are friends of each other; Eve is a stranger."""

    def __init__(self) -> None:
        self.friends = {ALICE: {BOB, CAROL}, BOB: {ALICE, CAROL}, CAROL: {ALICE, BOB}, EVE: set()}

    async def watchers(self, user_id: int) -> list[int]:
        return sorted(self.friends.get(user_id, set()))

    async def visible(self, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
        return [u for u in user_ids if u in self.friends.get(viewer_id, set())]

    async def check_typing(self, sender_id: int, peer_id: int) -> None:
        if peer_id not in self.friends.get(sender_id, set()):
            raise ImError(NOT_FRIENDS, "not friends")


class Env:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sessions = InMemorySessionDirectory()
        self.link = RecordingGatewayLink()
        self.audience = FakeAudience()
        self.store = InMemoryPresenceStore()
        self.status = StatusService(
            self.store, self.audience, self.sessions, self.link, TTL, clock=lambda: self.now
        )

    async def connect(self, user: int, device: str = "PC", gateway: str = "gw-1", conn: str = "") -> str:
        conn = conn or f"c-{user}-{device}"
        await self.sessions.bind(DeviceSession(user, device, gateway, conn))
        await self.status.connected(user, device, conn)
        return conn

    async def disconnect(self, user: int, device: str = "PC", gateway: str = "gw-1", conn: str = "") -> None:
        conn = conn or f"c-{user}-{device}"
        await self.sessions.unbind(DeviceSession(user, device, gateway, conn))
        await self.status.disconnected(user, device, conn)

    def told(self) -> list[tuple[str, list[int], int, Status]]:
        """(gateway, recipients, whose status, status) of every push since the last call."""
        pushes = [(g, users, s.user_id, s.status) for g, users, s in self.link.statuses]
        self.link.statuses.clear()
        return pushes

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


@pytest.fixture
async def env() -> Env:
    e = Env()
    await e.connect(BOB, gateway="gw-1")
    await e.connect(EVE, gateway="gw-2")
    e.told()
    return e


async def expect(code: str, coro: object) -> None:
    with pytest.raises(ImError) as exc:
        await coro  # type: ignore[misc]
    assert exc.value.code == code, exc.value.message


async def test_a_connect_is_pushed_to_online_friends_only(env: Env) -> None:
    await env.connect(ALICE, gateway="gw-2")
    # Bob (on gw-1) is told; Carol is offline, Eve is no friend, Alice gets no unasked frame about herself
    assert env.told() == [("gw-1", [BOB], ALICE, Status.ONLINE)]
    await env.connect(ALICE, "Web", gateway="gw-1")  # a second device changes nothing
    assert env.told() == []


async def test_away_when_every_device_is_idle_and_back_on_activity(env: Env) -> None:
    await env.connect(ALICE, "PC")
    await env.connect(ALICE, "Web")
    env.told()
    await env.status.idle(ALICE, "PC", "c-1-PC", True)
    assert env.told() == []  # the Web device is still in use
    await env.status.idle(ALICE, "Web", "c-1-Web", True)
    assert [(u, s) for _, _, u, s in env.told()] == [(ALICE, Status.AWAY)]
    await env.status.heartbeat(ALICE, "Web", "c-1-Web")  # a heartbeat is no activity
    assert env.told() == []
    await env.status.idle(ALICE, "PC", "c-1-PC", False)
    assert [(u, s) for _, _, u, s in env.told()] == [(ALICE, Status.ONLINE)]


async def test_away_set_by_the_user_stays_until_they_say_online(env: Env) -> None:
    await env.connect(ALICE)
    env.told()
    mine = await env.status.set_status(Caller(ALICE, "PC"), Status.AWAY)
    assert mine.status == Status.AWAY and [s for *_, s in env.told()] == [Status.AWAY]
    await env.status.idle(ALICE, "PC", "c-1-PC", False)  # using the device does not undo it
    await env.disconnect(ALICE)
    await env.connect(ALICE)  # nor does reconnecting
    assert [s for *_, s in env.told()] == [Status.OFFLINE, Status.AWAY]
    assert (await env.status.set_status(Caller(ALICE, "PC"), Status.ONLINE)).status == Status.ONLINE
    await expect(INVALID_ARGUMENT, env.status.set_status(Caller(ALICE, "PC"), Status.OFFLINE))
    await expect(INVALID_ARGUMENT, env.status.set_status(Caller(ALICE, "PC"), 7))


async def test_offline_when_the_last_device_leaves_with_its_last_seen_time(env: Env) -> None:
    await env.connect(ALICE, "PC")
    await env.connect(ALICE, "Web")
    env.told()
    env.now += 5
    await env.disconnect(ALICE, "PC")
    assert env.told() == []
    env.now += 5
    await env.disconnect(ALICE, "Web")
    assert [(u, s) for _, _, u, s in env.told()] == [(ALICE, Status.OFFLINE)]
    (seen,) = await env.status.query(Caller(BOB, "PC"), [ALICE])
    assert seen == StatusView(ALICE, Status.OFFLINE, env.ms)


async def test_a_replaced_connection_leaving_does_not_take_the_device_offline(env: Env) -> None:
    await env.connect(ALICE, conn="old")
    await env.connect(ALICE, gateway="gw-2", conn="new")  # logged in again on another gateway
    env.told()
    await env.status.disconnected(ALICE, "PC", "old")  # the kicked one closes late
    assert env.told() == []
    assert [v.status for v in await env.status.query(Caller(BOB, "PC"), [ALICE])] == [Status.ONLINE]


async def test_devices_of_a_dead_gateway_expire_and_reaping_announces_it() -> None:
    env = Env()
    await env.connect(BOB)
    await env.connect(ALICE, "PC", gateway="gw-dead")
    await env.connect(ALICE, "Web", gateway="gw-1")
    env.told()
    for _ in range(3):  # Alice's Web device and Bob keep beating; gw-dead went silent
        env.now += TTL / 2
        await env.status.heartbeat(ALICE, "Web", "c-1-Web")
        await env.status.heartbeat(BOB, "PC", "c-2-PC")
    last_beat = env.now
    assert await env.status.reap() == 0 and env.told() == []  # PC pruned on the way; Web still counts
    assert list(env.store.records_by_user[ALICE].devices) == ["Web"]
    env.now += TTL / 2
    await env.status.heartbeat(BOB, "PC", "c-2-PC")
    env.now += TTL / 2 + 1
    assert [v.status for v in await env.status.query(Caller(BOB, "PC"), [ALICE])] == [Status.OFFLINE]
    assert await env.status.reap() == 1  # Alice's last device ran out; Bob's did not
    assert env.told() == [("gw-1", [BOB], ALICE, Status.OFFLINE)]
    assert await env.status.reap() == 0  # nothing left to prune, nothing announced twice
    (seen,) = await env.status.query(Caller(BOB, "PC"), [ALICE])
    assert seen.last_seen_ms == int(last_beat * 1000)  # her last heartbeat


async def test_query_answers_friends_and_yourself_only(env: Env) -> None:
    await env.connect(ALICE)
    found = await env.status.query(Caller(ALICE, "PC"), [EVE, BOB, CAROL, ALICE, BOB, 999])
    assert [(v.user_id, v.status) for v in found] == [
        (BOB, Status.ONLINE),
        (CAROL, Status.OFFLINE),
        (ALICE, Status.ONLINE),
    ]
    assert found[1].last_seen_ms == 0  # never connected
    assert await env.status.query(Caller(EVE, "PC"), [ALICE, BOB]) == []
    await expect(INVALID_ARGUMENT, env.status.query(Caller(ALICE, "PC"), list(range(201))))


async def test_a_dead_watcher_gateway_does_not_stop_the_others() -> None:
    e = Env()
    e.link.dead = frozenset({"gw-dead"})
    await e.connect(BOB, gateway="gw-dead")
    await e.connect(CAROL, gateway="gw-1")
    e.told()
    await e.connect(ALICE, gateway="gw-1")
    assert e.told() == [("gw-1", [CAROL], ALICE, Status.ONLINE)]


async def test_typing_reaches_only_the_peers_connected_devices(env: Env) -> None:
    await env.connect(ALICE, "PC", gateway="gw-1")
    await env.connect(BOB, "Web", gateway="gw-3")
    await env.status.typing(Caller(ALICE, "PC"), BOB, stopped=False)
    assert sorted(env.link.typings) == [("gw-1", BOB, ALICE, False), ("gw-3", BOB, ALICE, False)]
    env.link.typings.clear()
    await env.status.typing(Caller(ALICE, "PC"), CAROL, stopped=True)  # offline: nothing, no error
    assert env.link.typings == []
    await expect(NOT_FRIENDS, env.status.typing(Caller(EVE, "PC"), BOB, stopped=False))
    await expect(INVALID_ARGUMENT, env.status.typing(Caller(ALICE, "PC"), ALICE, stopped=False))
    assert env.link.typings == []


# ---------- the gateway's side: idle detection and the typing rate limit ----------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def tracked_env(
    away_after: float = 10.0, typing_burst: int = 5
) -> tuple[Env, GatewayHub, StatusTracker, Clock]:
    env = Env()
    clock = Clock()
    hub = GatewayHub("gw-1", env.sessions)
    tracker = StatusTracker(
        env.status, away_after, typing_per_second=0.001, typing_burst=typing_burst, clock=clock
    )
    hub.add_listener(tracker)
    return env, hub, tracker, clock


async def test_a_connection_goes_idle_without_requests_and_back_with_one() -> None:
    env, hub, tracker, clock = await tracked_env()
    bob, _ = connection(BOB, "PC")
    await hub.attach(bob)
    alice, _ = connection(ALICE, "PC")
    await hub.attach(alice)
    env.told()
    clock.now += 6
    await hub.activity(alice, Cmd.CMD_HEARTBEAT_REQ)  # passive: sent by the client by itself
    await hub.activity(alice, Cmd.CMD_MSG_SYNC_REQ)
    await hub.activity(bob, Cmd.CMD_MSG_SEND_REQ)  # Bob does something
    clock.now += 5
    await tracker.sweep()
    assert [(u, s) for _, _, u, s in env.told() if u == ALICE] == [(ALICE, Status.AWAY)]
    assert [v.status for v in await env.status.query(Caller(ALICE, "PC"), [BOB])] == [Status.ONLINE]
    await hub.activity(alice, Cmd.CMD_MSG_SEND_REQ)
    assert [(u, s) for _, _, u, s in env.told() if u == ALICE] == [(ALICE, Status.ONLINE)]
    await hub.detach(alice)
    assert [(u, s) for _, _, u, s in env.told() if u == ALICE] == [(ALICE, Status.OFFLINE)]


async def test_heartbeats_through_the_hub_keep_a_device_counted_with_few_writes() -> None:
    env = Env()
    clock = Clock()
    hub = GatewayHub("gw-1", env.sessions)
    writes: list[int] = []

    class CountingStore(InMemoryPresenceStore):
        async def update(self, user_id, change, now_ms):
            writes.append(now_ms)
            return await super().update(user_id, change, now_ms)

    status = StatusService(CountingStore(), env.audience, env.sessions, env.link, TTL, clock=lambda: env.now)
    hub.add_listener(StatusTracker(status, 1000.0, refresh_every=TTL / 3, clock=clock))
    alice, _ = connection(ALICE, "PC")
    await hub.attach(alice)
    for _ in range(12):  # a heartbeat every TTL / 4, a write at most every TTL / 3: every second one
        env.now += TTL / 4
        clock.now += TTL / 4
        await hub.heartbeat(alice)
        assert [v.status for v in await status.query(Caller(ALICE, "PC"), [ALICE])] == [Status.ONLINE]
    assert len(writes) == 1 + 6
    env.now += TTL + 1  # the gateway dies: no more heartbeats
    assert [v.status for v in await status.query(Caller(ALICE, "PC"), [ALICE])] == [Status.OFFLINE]


async def test_typing_is_rate_limited_per_connection() -> None:
    env, hub, tracker, _ = await tracked_env(typing_burst=2)
    alice, _ = connection(ALICE, "PC")
    web, _ = connection(ALICE, "Web")
    await hub.attach(alice)
    await hub.attach(web)
    await env.connect(BOB)
    for _ in range(2):
        await tracker.typing(alice, BOB, stopped=False)
    await expect(RATE_LIMITED, tracker.typing(alice, BOB, stopped=False))
    await tracker.typing(web, BOB, stopped=True)  # another connection has its own allowance
    assert len(env.link.typings) == 3


async def test_the_hub_pushes_status_and_typing_frames_to_connected_devices() -> None:
    hub = GatewayHub("gw-1", InMemorySessionDirectory())
    pc, pc_sock = connection(ALICE, "PC")
    web, web_sock = connection(ALICE, "Web")
    other, other_sock = connection(BOB, "PC")
    for conn in (pc, web, other):
        await hub.attach(conn)
    await hub.push_status([ALICE], StatusView(BOB, Status.AWAY, 123))
    await hub.push_typing(BOB, ALICE, stopped=False)
    await asyncio.sleep(0.05)
    for sock in (pc_sock, web_sock):
        (frame,) = [decode(d) for d in sock.sent]
        assert frame.cmd == Cmd.CMD_STATUS_NOTIFY
        info = pb.StatusNotify.FromString(frame.body).status
        assert (info.user_id, info.status, info.last_seen) == (BOB, pb.STATUS_AWAY, 123)
    (frame,) = [decode(d) for d in other_sock.sent]
    assert frame.cmd == Cmd.CMD_TYPING_NOTIFY and pb.TypingNotify.FromString(frame.body).user_id == ALICE


async def test_a_login_that_replaces_a_connection_on_the_same_gateway_never_shows_offline() -> None:
    env, hub, _, _ = await tracked_env()
    await env.connect(BOB)
    old, sock = connection(ALICE, "PC", token="old")

    async def close_and_leave(code: int, reason: str) -> None:  # its socket loop ends during the kick
        await hub.detach(old)

    sock.close = close_and_leave  # type: ignore[method-assign]
    old._close = sock.close
    await hub.attach(old)
    env.told()
    new, _ = connection(ALICE, "PC", token="new")
    await hub.attach(new)  # kicks the old one
    assert env.told() == []
    assert [v.status for v in await env.status.query(Caller(BOB, "PC"), [ALICE])] == [Status.ONLINE]


async def test_after_the_records_are_lost_heartbeats_restore_them_as_they_were() -> None:
    env, hub, tracker, clock = await tracked_env(away_after=10.0)
    await env.connect(BOB)
    alice, _ = connection(ALICE, "PC")
    await hub.attach(alice)
    clock.now += 11
    await tracker.sweep()  # Alice idle: away
    env.store.records_by_user.clear()  # Redis restarted empty
    clock.now += 1
    await hub.heartbeat(alice)
    assert [v.status for v in await env.status.query(Caller(BOB, "PC"), [ALICE])] == [Status.AWAY]
