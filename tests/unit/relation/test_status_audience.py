"""Who may see whose online status (relation rules), on the local service and over gRPC: friends both
ways, never a stranger, never across a block in either direction, nor after a one-way delete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakeUsers, RecordingNotices
from tinyim.bootstrap.bridges import RelationAsStatusAudience
from tinyim.kernel import BLOCKED, NOT_FRIENDS, Caller, ImError
from tinyim.modules.relation import RelationApi, RelationService
from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryRelationUnits
from tinyim.modules.relation.adapters.rpc import GrpcRelationClient, user_registrar
from tinyim.pb.im_internal_pb2_grpc import UserServiceStub

A, B, C, D, E = 1, 2, 3, 4, 5


@pytest.fixture(params=["local", "grpc"])
async def relation(request: pytest.FixtureRequest) -> AsyncIterator[RelationApi]:
    store = InMemoryRelationStore()
    for x, y in ((A, B), (A, C), (A, D)):
        await store.make_friends(x, y)
    service = RelationService(
        store, FakeUsers(A, B, C, D, E), RecordingNotices(), units=InMemoryRelationUnits(store)
    )
    await service.block(Caller(D, "PC"), A)  # D blocks A (still friends on paper)
    await service.delete_friend(Caller(C, "PC"), A)  # C deleted A one-way
    async with remote_if(request.param, "user", user_registrar(service), UserServiceStub) as remote:
        yield service if remote is None else GrpcRelationClient(remote)


async def test_watchers_are_friends_both_ways_without_blocks(relation: RelationApi) -> None:
    assert await relation.status_watchers(A) == [B]
    assert await relation.status_watchers(B) == [A]
    assert await relation.status_watchers(C) == [] and await relation.status_watchers(D) == []
    assert await relation.status_watchers(E) == []


async def test_visible_answers_the_same_rule_from_the_viewer_side(relation: RelationApi) -> None:
    assert await relation.status_visible(A, [E, D, C, B, B]) == [B]
    assert await relation.status_visible(E, [A, B]) == []  # a stranger
    assert await relation.status_visible(D, [A]) == []  # the blocker does not see the blocked either
    assert await relation.status_visible(A, []) == []


async def test_typing_follows_the_messaging_rule(relation: RelationApi) -> None:
    audience = RelationAsStatusAudience(relation)
    await audience.check_typing(A, B)
    for sender, peer, code in ((A, D, BLOCKED), (E, A, NOT_FRIENDS), (A, C, NOT_FRIENDS)):
        with pytest.raises(ImError) as exc:
            await audience.check_typing(sender, peer)
        assert exc.value.code == code


class RecordingStatusNotices:
    def __init__(self) -> None:
        self.hidden: list[tuple[int, int]] = []

    async def hide(self, viewer_id: int, user_id: int) -> None:
        self.hidden.append((viewer_id, user_id))


async def test_a_block_or_delete_between_mutual_friends_hides_both_ways_and_nothing_else() -> None:
    store = InMemoryRelationStore()
    notices = RecordingStatusNotices()
    service = RelationService(
        store,
        FakeUsers(A, B, C, D, E),
        RecordingNotices(),
        status=notices,
        units=InMemoryRelationUnits(store),
    )
    for x, y in ((A, B), (A, C), (A, D)):
        await store.make_friends(x, y)
    await service.block(Caller(A, "PC"), B)
    assert sorted(notices.hidden) == [(A, B), (B, A)]
    notices.hidden.clear()
    await service.block(Caller(A, "PC"), E)  # a stranger saw nothing: told nothing (it would give it away)
    await service.block(Caller(B, "PC"), A)  # hidden already by A's block
    assert notices.hidden == []
    await service.delete_friend(Caller(C, "PC"), A)
    assert sorted(notices.hidden) == [(A, C), (C, A)]
    notices.hidden.clear()
    await service.delete_friend(Caller(A, "PC"), C)  # C had deleted A already: nothing visible to hide
    assert notices.hidden == []
