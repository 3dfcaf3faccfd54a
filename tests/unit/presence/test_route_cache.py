"""The push routes' cache (presence.route_cache) over an in-memory session table that counts its lookups:
what it answers from memory, what a change makes it forget, and when it must not keep an answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from tests.unit.fakes import RecordingGatewayLink
from tinyim.kernel import PushTarget
from tinyim.modules.presence import DeviceSession, PresenceRouter
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.modules.presence.route_cache import CachedRoutes

ALICE, BOB, CAROL = 1, 2, 3


class CountingSessions(InMemorySessionDirectory):
    """The in-memory table; `asked` lists each lookup's users; `hold` delays each answer (read at once)
    until set, as a reply on its way while the table changes."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[int]] = []
        self.hold: asyncio.Event | None = None

    async def lookup(self, user_ids: Iterable[int]) -> Mapping[int, list[DeviceSession]]:
        ids = list(user_ids)
        self.asked.append(ids)
        found = await super().lookup(ids)
        if self.hold is not None:
            await self.hold.wait()
        return found


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def setup(live: bool = True, ttl: float = 2.0) -> tuple[CountingSessions, CachedRoutes, Clock, list[bool]]:
    sessions, clock, state = CountingSessions(), Clock(), [live]
    return sessions, CachedRoutes(sessions, lambda: state[0], ttl_seconds=ttl, clock=clock), clock, state


async def test_a_route_asked_again_comes_from_memory_online_or_not() -> None:
    sessions, routes, _, _ = setup()
    alice = DeviceSession(ALICE, "PC", "gw-1", "c1")
    await sessions.bind(alice)
    assert await routes.lookup([ALICE, BOB]) == {ALICE: [alice]}
    assert await routes.lookup([BOB, ALICE, ALICE]) == {ALICE: [alice]}  # Bob is kept as offline
    assert sessions.asked == [[ALICE, BOB]]
    assert (routes.hits, routes.misses) == (2, 2)
    await routes.lookup([ALICE, CAROL])  # only the user not seen yet is asked
    assert sessions.asked[-1] == [CAROL]


async def test_a_change_makes_it_forget_that_user_only() -> None:
    sessions, routes, _, _ = setup()
    alice_pc = DeviceSession(ALICE, "PC", "gw-1", "c1")
    await sessions.bind(alice_pc)
    await routes.lookup([ALICE, BOB])
    alice_web, bob = DeviceSession(ALICE, "Web", "gw-2", "c2"), DeviceSession(BOB, "PC", "gw-2", "c3")
    await sessions.bind(alice_web)
    await sessions.bind(bob)
    routes.user_changed(BOB)  # what the feed says: Bob connected (Alice's change was not announced)
    found = await routes.lookup([ALICE, BOB])
    assert found == {ALICE: [alice_pc], BOB: [bob]} and sessions.asked[-1] == [BOB]
    routes.user_changed(ALICE)
    found = await routes.lookup([ALICE])
    assert sorted(found[ALICE], key=lambda s: s.device_id) == [alice_pc, alice_web]
    await sessions.unbind(bob)
    routes.user_changed(BOB)
    assert await routes.lookup([BOB]) == {}


async def test_an_answer_fetched_while_a_change_came_is_not_kept() -> None:
    """A lookup that started before a bind may return the route from before it: used once, not kept."""
    sessions, routes, _, _ = setup()
    sessions.hold = asyncio.Event()
    asking = asyncio.create_task(routes.lookup([ALICE]))
    await asyncio.sleep(0)
    await sessions.bind(DeviceSession(ALICE, "PC", "gw-1", "c1"))  # lands after the read it raced
    routes.user_changed(ALICE)
    sessions.hold.set()
    assert await asking == {}  # the answer from before the bind: used once
    sessions.hold = None
    before = len(sessions.asked)
    assert ALICE in await routes.lookup([ALICE])
    assert len(sessions.asked) == before + 1  # asked again: the raced answer was not kept


async def test_not_live_means_no_cache_and_nothing_kept() -> None:
    sessions, routes, _, state = setup(live=False)
    await routes.lookup([ALICE])
    await routes.lookup([ALICE])
    assert len(sessions.asked) == 2
    state[0] = True
    await routes.lookup([ALICE])
    await routes.lookup([ALICE])
    assert len(sessions.asked) == 3
    state[0] = False  # the feed was lost: whatever is kept is not trusted
    await routes.lookup([ALICE])
    assert len(sessions.asked) == 4


async def test_entries_expire_after_the_ttl_and_clear_forgets_all() -> None:
    sessions, routes, clock, _ = setup(ttl=2.0)
    await routes.lookup([ALICE, BOB])
    clock.now += 1.9
    await routes.lookup([ALICE, BOB])
    assert len(sessions.asked) == 1
    clock.now += 0.2
    await routes.lookup([ALICE])
    assert sessions.asked[-1] == [ALICE]
    routes.clear()
    await routes.lookup([ALICE, BOB])
    assert sessions.asked[-1] == [ALICE, BOB]


async def test_it_keeps_at_most_max_entries() -> None:
    sessions = CountingSessions()
    routes = CachedRoutes(sessions, lambda: True, max_entries=3)
    await routes.lookup([1, 2, 3])
    await routes.lookup([4])  # 1, the oldest, goes
    await routes.lookup([2, 3, 4])
    assert len(sessions.asked) == 2
    await routes.lookup([1])
    assert sessions.asked[-1] == [1]


async def test_the_router_uses_the_cache_for_message_signals_and_the_table_for_kicks() -> None:
    sessions, routes, _, _ = setup()
    gateways = RecordingGatewayLink()
    router = PresenceRouter(sessions, gateways, routes)
    await sessions.bind(DeviceSession(BOB, "PC", "gw-1", "c1"))
    for seq in (1, 2):
        await router.notify([PushTarget(BOB, seq)])
    assert sessions.asked == [[BOB]]  # the second signal's route came from memory
    assert [len(targets) for _, targets in gateways.pushes] == [1, 1]
    await router.kick(BOB, "PC", "", "login elsewhere")
    assert sessions.asked[-1] == [BOB]  # a kick asks the table itself
