"""The messaging rules behind a cache: answered from memory while nothing changed, asked again after any
change of the pair or the group, never kept when a change raced the question or the feed is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakePolicy, FakeUsers, RecordingNotices
from tinyim.kernel import BLOCKED, NOT_FRIENDS, NOT_MEMBER, Caller, ImError
from tinyim.modules.relation import RelationApi, RelationService
from tinyim.modules.relation.adapters.change_feed import LocalChangeFeed
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryRelationUnits
from tinyim.modules.relation.adapters.rpc import GrpcRelationClient, user_registrar
from tinyim.modules.relation.rules_cache import CachedMessagingRules
from tinyim.pb.im_internal_pb2_grpc import UserServiceStub

A, B, C, D = 1, 2, 3, 4
GROUP = 7


class CountingRules(FakePolicy):
    def __init__(self) -> None:
        super().__init__({A, B, C}, {GROUP: [A, B]})
        self.asked = 0
        self.gate: asyncio.Event | None = None  # set: a question waits here (to race a change with it)

    async def check_direct(self, sender_id: int, receiver_id: int) -> None:
        self.asked += 1
        if self.gate is not None:
            await self.gate.wait()
        await super().check_direct(sender_id, receiver_id)

    async def group_recipients(self, sender_id: int, group_id: int) -> list[int]:
        self.asked += 1
        if self.gate is not None:
            await self.gate.wait()
        return await super().group_recipients(sender_id, group_id)


async def test_an_allowed_pair_is_asked_once_until_it_changes() -> None:
    rules = CountingRules()
    cache = CachedMessagingRules(rules)
    for _ in range(5):
        await cache.check_direct(A, B)
    assert rules.asked == 1
    cache.pair_changed(B, A)  # either direction
    await cache.check_direct(A, B)
    assert rules.asked == 2


async def test_a_refusal_is_never_kept() -> None:
    rules = CountingRules()
    cache = CachedMessagingRules(rules)
    for _ in range(3):
        with pytest.raises(ImError):
            await cache.check_direct(A, D)  # no such user
    assert rules.asked == 3


async def test_an_answer_that_raced_a_change_is_not_kept() -> None:
    rules = CountingRules()
    cache = CachedMessagingRules(rules)
    rules.gate = asyncio.Event()
    asking = asyncio.create_task(cache.check_direct(A, B))
    await asyncio.sleep(0)
    cache.pair_changed(A, B)  # e.g. a block committed while the answer was on its way
    rules.gate.set()
    await asking
    await cache.check_direct(A, B)
    assert rules.asked == 2


async def test_no_answer_from_memory_while_the_feed_is_down() -> None:
    rules = CountingRules()
    live = True
    cache = CachedMessagingRules(rules, live=lambda: live)
    await cache.check_direct(A, B)
    live = False
    await cache.check_direct(A, B)
    await cache.check_direct(A, B)
    assert rules.asked == 3


async def test_entries_expire_and_the_table_is_bounded() -> None:
    rules = CountingRules()
    now = 0.0
    cache = CachedMessagingRules(rules, ttl_seconds=10, max_entries=2, clock=lambda: now)
    await cache.check_direct(A, B)
    now = 11.0
    await cache.check_direct(A, B)
    assert rules.asked == 2
    await cache.check_direct(A, C)
    await cache.check_direct(B, C)  # a third entry pushes out the oldest (A, B)
    await cache.check_direct(A, B)
    assert rules.asked == 5


async def test_entries_filled_together_expire_apart() -> None:
    """After a start every entry is filled within seconds: each lives 80-100 % of the TTL, so they do not
    all miss in the same second a minute later."""
    rules = CountingRules()
    now = 0.0
    spreads = iter([0.0, 1.0])  # the longest life, then the shortest
    cache = CachedMessagingRules(rules, ttl_seconds=10, clock=lambda: now, spread=lambda: next(spreads))
    await cache.check_direct(A, B)
    await cache.check_direct(A, C)
    now = 9.0
    assert cache.known(A, B, 0) and not cache.known(A, C, 0)  # expired at 8.0
    now = 10.0
    assert not cache.known(A, B, 0)


async def test_known_says_which_checks_would_answer_from_memory() -> None:
    """timeline.KnownRules: a msg node checks a batch's sends in turn only when every answer is known."""
    rules = CountingRules()
    now, live = 0.0, True
    cache = CachedMessagingRules(rules, live=lambda: live, ttl_seconds=10, clock=lambda: now)
    assert not cache.known(A, B, 0)
    await cache.check_direct(A, B)
    assert cache.known(A, B, 0) and not cache.known(B, A, 0)  # one direction was asked
    with pytest.raises(ImError):
        await cache.check_direct(A, D)
    assert not cache.known(A, D, 0)  # a refusal is not kept
    await cache.group_recipients(A, GROUP)
    assert cache.known(A, 0, GROUP) and cache.known(B, 0, GROUP) and not cache.known(C, 0, GROUP)
    live = False
    assert not cache.known(A, B, 0) and not cache.known(A, 0, GROUP)
    live, now = True, 11.0
    assert not cache.known(A, B, 0) and not cache.known(A, 0, GROUP)
    assert rules.asked == 3


async def test_sends_that_miss_together_ask_once() -> None:
    """An entry expires under a busy pair (or a start): its sends wait for the one question on its way."""
    rules = CountingRules()
    cache = CachedMessagingRules(rules)
    rules.gate = asyncio.Event()
    asking = [asyncio.create_task(cache.check_direct(A, B)) for _ in range(5)]
    groups = [asyncio.create_task(cache.group_recipients(s, GROUP)) for s in (A, B, A)]
    await asyncio.sleep(0)
    rules.gate.set()
    await asyncio.gather(*asking)
    assert [await g for g in groups] == [[A, B]] * 3
    assert rules.asked == 2  # one for the pair, one for the group


async def test_after_an_answer_that_was_not_kept_each_waiting_send_asks_for_itself() -> None:
    rules = CountingRules()
    cache = CachedMessagingRules(rules)
    rules.gate = asyncio.Event()
    refused = [asyncio.create_task(cache.check_direct(A, D)) for _ in range(3)]  # no such user
    await asyncio.sleep(0)
    rules.gate.set()
    outcomes = await asyncio.gather(*refused, return_exceptions=True)
    assert all(isinstance(o, ImError) for o in outcomes)
    assert rules.asked == 3  # the first, then the two that waited for it (a refusal is never kept)


async def test_a_waiting_send_that_gives_up_leaves_the_question_to_the_others() -> None:
    rules = CountingRules()
    cache = CachedMessagingRules(rules)
    rules.gate = asyncio.Event()
    first = asyncio.create_task(cache.check_direct(A, B))
    waiting = [asyncio.create_task(cache.check_direct(A, B)) for _ in range(2)]
    await asyncio.sleep(0)
    waiting[0].cancel()
    await asyncio.sleep(0)
    rules.gate.set()
    await first
    await waiting[1]
    assert waiting[0].cancelled() and rules.asked == 1


async def test_group_members_are_kept_until_the_group_changes() -> None:
    rules = CountingRules()
    cache = CachedMessagingRules(rules)
    assert await cache.group_recipients(A, GROUP) == [A, B]
    assert await cache.group_recipients(B, GROUP) == [A, B]
    assert rules.asked == 1
    rules.groups[GROUP].append(C)
    with pytest.raises(ImError):  # C is not in the cached list: asked (and the fake has not been told)
        await cache.group_recipients(D, GROUP)
    assert await cache.group_recipients(C, GROUP) == [A, B, C]  # a newcomer is asked, never refused
    cache.group_changed(GROUP)
    rules.groups[GROUP].remove(A)
    with pytest.raises(ImError):
        await cache.group_recipients(A, GROUP)


# ---------- the relation service tells the cache, in one process and through gRPC ----------
class Env:
    def __init__(self) -> None:
        self.feed = LocalChangeFeed()
        store = InMemoryRelationStore()
        self.service: RelationApi = RelationService(
            store,
            FakeUsers(A, B, C, D),
            RecordingNotices(),
            changes=self.feed,
            units=InMemoryRelationUnits(store),
        )
        self.rules: RelationApi = self.service


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    env = Env()
    async with remote_if(request.param, "user", user_registrar(env.service), UserServiceStub) as remote:
        if remote is not None:
            env.rules = GrpcRelationClient(remote)  # the msg role's cache sits in front of the client
        yield env


def me(user_id: int) -> Caller:
    return Caller(user_id, "PC")


async def refused(code: str, cache: CachedMessagingRules, sender: int, receiver: int) -> None:
    with pytest.raises(ImError) as err:
        await cache.check_direct(sender, receiver)
    assert err.value.code == code


async def test_block_delete_and_unblock_reach_the_cache_at_once(env: Env) -> None:
    cache = CachedMessagingRules(env.rules)
    env.feed.subscribe(cache)
    await env.service.apply_friend(me(A), B, "hi")
    await env.service.handle_friend(me(B), A, agree=True)
    await cache.check_direct(A, B)
    await cache.check_direct(B, A)
    await env.service.block(me(B), A)
    await refused(BLOCKED, cache, A, B)
    await refused(BLOCKED, cache, B, A)
    await env.service.unblock(me(B), A)
    await cache.check_direct(A, B)
    await env.service.delete_friend(me(A), B)
    await refused(NOT_FRIENDS, cache, B, A)


async def test_leaving_removing_and_dissolving_reach_the_cache_at_once(env: Env) -> None:
    cache = CachedMessagingRules(env.rules)
    env.feed.subscribe(cache)
    for friend in (B, C):
        await env.service.apply_friend(me(A), friend, "hi")
        await env.service.handle_friend(me(friend), A, agree=True)
    group_id = await env.service.create_group(me(A), "g", [B, C])
    assert sorted(await cache.group_recipients(B, group_id)) == [A, B, C]
    await env.service.leave_group(me(B), group_id)
    with pytest.raises(ImError) as err:
        await cache.group_recipients(B, group_id)
    assert err.value.code == NOT_MEMBER
    assert sorted(await cache.group_recipients(A, group_id)) == [A, C]  # the list was renewed
    await env.service.remove_member(me(A), group_id, C)
    assert await cache.group_recipients(A, group_id) == [A]
    await env.service.join_group(me(D), group_id)
    await env.service.handle_join(me(A), group_id, D, agree=True)
    assert sorted(await cache.group_recipients(D, group_id)) == [A, D]
    await env.service.dissolve_group(me(A), group_id)
    with pytest.raises(ImError):
        await cache.group_recipients(A, group_id)
