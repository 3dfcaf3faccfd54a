"""User search: the relation service over auth's accounts (local and through both gRPC hops)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_loop import remote_if
from tests.unit.fakes import FakeHasher, RecordingKicker, RecordingNotices
from tinyim.bootstrap.bridges import AuthAsUserDirectory
from tinyim.kernel import INVALID_ARGUMENT, NOT_FOUND, RATE_LIMITED, Caller, ImError, Privacy
from tinyim.modules.auth import AuthApi, AuthService
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.memory import InMemoryAccounts, InMemoryDeviceSessions
from tinyim.modules.auth.adapters.memory_unit_of_work import InMemoryAuthUnits
from tinyim.modules.auth.adapters.rpc import GrpcAuthClient, auth_registrar
from tinyim.modules.relation import RelationApi, RelationService
from tinyim.modules.relation.adapters.memory import InMemoryRateLimiter, InMemoryRelationStore
from tinyim.modules.relation.adapters.memory_unit_of_work import InMemoryRelationUnits
from tinyim.modules.relation.adapters.rpc import GrpcRelationClient, user_registrar
from tinyim.pb.im_internal_pb2_grpc import AuthServiceStub, UserServiceStub

PER_MINUTE = 5


class Env:
    def __init__(self) -> None:
        self.now = 1000.0
        self.accounts = InMemoryAccounts()
        sessions = InMemoryDeviceSessions()
        self.auth: AuthApi = AuthService(
            self.accounts,
            sessions,
            FakeHasher(),
            JwtCodec("s" * 40),
            RecordingKicker(),
            600,
            units=InMemoryAuthUnits(self.accounts, sessions),
        )
        self.limiter = InMemoryRateLimiter(clock=lambda: self.now)
        self.relation: RelationApi = self._relation()

    def _relation(self) -> RelationApi:
        store = InMemoryRelationStore()
        return RelationService(
            store,
            AuthAsUserDirectory(self.auth),
            RecordingNotices(),
            units=InMemoryRelationUnits(store),
            limiter=self.limiter,
            searches_per_minute=PER_MINUTE,
        )

    async def users(self, *nicknames: str) -> list[int]:
        return [
            await self.auth.register(f"user{i}_{n.encode().hex()[:8]}", "password1", n)
            for i, n in enumerate(nicknames)
        ]


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """Local services, or the relation service reached over gRPC and reaching auth over gRPC."""
    env = Env()
    async with remote_if(request.param, "auth", auth_registrar(env.auth), AuthServiceStub) as auth_remote:
        if auth_remote is not None:
            env.auth = GrpcAuthClient(auth_remote)
            env.relation = env._relation()
        registrar = user_registrar(env.relation)
        async with remote_if(request.param, "user", registrar, UserServiceStub) as user_remote:
            if user_remote is not None:
                env.relation = GrpcRelationClient(user_remote)
            yield env


def me(user_id: int = 999) -> Caller:
    return Caller(user_id, "PC")


async def expect(code: str, coro: object) -> None:
    with pytest.raises(ImError) as exc:
        await coro  # type: ignore[misc]
    assert exc.value.code == code, exc.value.message


async def test_exact_username_finds_one_user_and_nothing_else(env: Env) -> None:
    await env.auth.register("alice", "password1", "Alice")
    await env.auth.register("alice2", "password1", "Alice Two")
    page = await env.relation.search_users(me(), "alice", "", 0, "")
    assert [(u.username, u.nickname) for u in page.users] == [("alice", "Alice")] and page.next_cursor == ""
    assert (await env.relation.search_users(me(), "alic", "", 0, "")).users == []
    assert (await env.relation.search_users(me(), "ALICE", "", 0, "")).users == []  # exact


async def test_nickname_prefix_pages_through_every_match_once(env: Env) -> None:
    ids = await env.users(*[f"Ann {i}" for i in range(7)], "Bob", "anna", "Anne")
    pages, cursor = [], ""
    while True:
        page = await env.relation.search_users(me(), "", "ann", 3, cursor)
        pages.append([u.user_id for u in page.users])
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    found = [u for p in pages for u in p]
    assert found == sorted(found) and set(found) == set(ids) - {ids[7]}  # all but Bob, case-insensitive
    assert [len(p) for p in pages] == [3, 3, 3]


async def test_opted_out_users_are_never_found_by_nickname_but_still_by_username(env: Env) -> None:
    shy, loud = await env.users("Shy Sam", "Shy Sue")
    assert await env.relation.privacy(me(shy)) == Privacy(hide_from_nickname_search=False)
    stored = await env.relation.set_privacy(me(shy), Privacy(hide_from_nickname_search=True))
    assert stored == Privacy(hide_from_nickname_search=True) == await env.relation.privacy(me(shy))
    page = await env.relation.search_users(me(), "", "Shy", 50, "")
    assert [u.user_id for u in page.users] == [loud]
    username = env.accounts.rows[shy].username
    assert [u.user_id for u in (await env.relation.search_users(me(), username, "", 0, "")).users] == [shy]
    await env.relation.set_privacy(me(shy), Privacy(hide_from_nickname_search=False))
    assert {u.user_id for u in (await env.relation.search_users(me(), "", "shy", 0, "")).users} == {shy, loud}


async def test_wildcards_in_a_prefix_are_literal(env: Env) -> None:
    (pct,) = await env.users("100% sure")
    await env.users("1000 things")
    assert [u.user_id for u in (await env.relation.search_users(me(), "", "100%", 0, "")).users] == [pct]
    assert (await env.relation.search_users(me(), "", "_", 0, "")).users == []


async def test_searches_are_rate_limited_per_user_and_per_minute(env: Env) -> None:
    await env.users("Zed")
    for _ in range(PER_MINUTE):
        await env.relation.search_users(me(1), "", "Z", 0, "")
    await expect(RATE_LIMITED, env.relation.search_users(me(1), "", "Z", 0, ""))
    await expect(RATE_LIMITED, env.relation.search_users(me(1), "zed", "", 0, ""))
    assert (await env.relation.search_users(me(2), "", "Z", 0, "")).users  # someone else is not limited
    env.now += 61
    assert (await env.relation.search_users(me(1), "", "Z", 0, "")).users


@pytest.mark.parametrize(
    ("username", "prefix", "limit", "cursor"),
    [
        ("", "", 0, ""),  # neither
        ("alice", "Al", 0, ""),  # both
        ("", "   ", 0, ""),  # blank
        ("", "a\x00", 0, ""),  # control character
        ("", "a" * 65, 0, ""),
        ("", "Al", 0, "not-a-cursor"),
        ("", "Al", 0, "u12x"),
    ],
)
async def test_bad_queries_get_a_clear_error(
    env: Env, username: str, prefix: str, limit: int, cursor: str
) -> None:
    await expect(INVALID_ARGUMENT, env.relation.search_users(me(), username, prefix, limit, cursor))


async def test_limit_defaults_to_20_and_is_capped_at_50(env: Env) -> None:
    await env.users(*[f"Many {i}" for i in range(60)])
    assert len((await env.relation.search_users(me(), "", "Many", 0, "")).users) == 20
    page = await env.relation.search_users(me(), "", "Many", 500, "")
    assert len(page.users) == 50 and page.next_cursor


async def test_privacy_of_an_unknown_user_is_not_found(env: Env) -> None:
    await expect(NOT_FOUND, env.relation.privacy(me(424242)))
