"""User search ports: nickname search and privacy on every account store; rate counters (memory, Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from tests.contract.conftest import Backend
from tinyim.infra.redis import Keys
from tinyim.kernel import Privacy
from tinyim.modules.auth import AccountRepository
from tinyim.modules.auth.adapters.memory import InMemoryAccounts
from tinyim.modules.auth.adapters.sql import SqlAccounts
from tinyim.modules.relation import RateLimiter
from tinyim.modules.relation.adapters.memory import InMemoryRateLimiter
from tinyim.modules.relation.adapters.redis import RedisRateLimiter


@asynccontextmanager
async def open_accounts(backend: Backend) -> AsyncIterator[AccountRepository]:
    async with backend.database() as db:
        yield InMemoryAccounts() if db is None else SqlAccounts(db)


def tag() -> str:
    """A nickname prefix no other test (or earlier run on the shared database) uses."""
    return f"q{uuid.uuid4().hex[:10]}"


async def test_nickname_prefix_matches_latin_letters_case_insensitively_in_user_id_order(
    backend: Backend,
) -> None:
    t = tag()
    async with open_accounts(backend) as accounts:
        ids = [
            await accounts.add(f"n{uuid.uuid4().hex[:20]}", "h", nick)
            for nick in (f"{t} Ann", f"{t.upper()} Bob", f"{t}张三", f"x{t}", f"{t}_under", f"{t}%pct")
        ]
        found = await accounts.search_nickname(t, 0, 50)
        assert [p.user_id for p in found] == [ids[0], ids[1], ids[2], ids[4], ids[5]]
        assert found[2].nickname == f"{t}张三" and found[0].username.startswith("n")
        assert [p.user_id for p in await accounts.search_nickname(f"{t}张", 0, 50)] == [ids[2]]
        # paging: above a user id, at most `limit`
        assert [p.user_id for p in await accounts.search_nickname(t, ids[0], 2)] == [ids[1], ids[2]]
        # LIKE wildcards in the prefix are plain characters
        assert [p.user_id for p in await accounts.search_nickname(f"{t}_", 0, 50)] == [ids[4]]
        assert [p.user_id for p in await accounts.search_nickname(f"{t}%", 0, 50)] == [ids[5]]
        assert await accounts.search_nickname(f"{t}!", 0, 50) == []


async def test_privacy_defaults_and_opting_out_of_nickname_search(backend: Backend) -> None:
    t = tag()
    async with open_accounts(backend) as accounts:
        shy = await accounts.add(f"n{uuid.uuid4().hex[:20]}", "h", f"{t} shy")
        other = await accounts.add(f"n{uuid.uuid4().hex[:20]}", "h", f"{t} other")
        assert await accounts.privacy(shy) == Privacy(hide_from_nickname_search=False)
        assert await accounts.privacy(10**15) is None
        await accounts.set_privacy(shy, Privacy(hide_from_nickname_search=True))
        assert await accounts.privacy(shy) == Privacy(hide_from_nickname_search=True)
        assert [p.user_id for p in await accounts.search_nickname(t, 0, 50)] == [other]
        found = await accounts.by_username((await accounts.by_ids([shy]))[shy].username)
        assert found is not None and found.user_id == shy  # exact username lookups are unaffected
        await accounts.set_privacy(shy, Privacy(hide_from_nickname_search=False))
        assert [p.user_id for p in await accounts.search_nickname(t, 0, 50)] == [shy, other]


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "memory":
        return InMemoryRateLimiter()
    client, keys = request.getfixturevalue("redis_env")
    return RedisRateLimiter(client, keys)


async def test_rate_counters_allow_limit_uses_per_window_and_key(limiter: RateLimiter) -> None:
    results = await asyncio.gather(*(limiter.hit("search:1", 3, 0.5) for _ in range(5)))
    assert sorted(results) == [False, False, True, True, True]  # concurrent uses are counted exactly
    assert await limiter.hit("search:2", 3, 0.5)  # another key has its own window
    await asyncio.sleep(0.6)
    assert await limiter.hit("search:1", 3, 0.5)  # a new window


async def test_redis_rate_counters_expire(redis_env: tuple[Redis, Keys]) -> None:
    client, keys = redis_env
    limiter = RedisRateLimiter(client, keys)
    await limiter.hit("typing:9", 1, 5)
    assert 0 < await client.pttl(keys.rate("typing:9")) <= 5000
