"""Find a user end to end (one process and the multi-process topology): exact username, nickname
prefix paged, opting out of nickname search, the rate limit, then adding the found user as a friend."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Served
from tests.e2e.helpers import PASSWORD, new_user, online
from tinyim.client import ServerError, register
from tinyim.wire import ErrorCode

pytestmark = pytest.mark.e2e


async def test_find_by_username_and_by_nickname_prefix_then_add_as_friend(deployment: Served) -> None:
    url = deployment.base_url
    tag = f"Q{uuid.uuid4().hex[:8]}"
    names = [f"s{uuid.uuid4().hex[:12]}" for _ in range(5)]
    ids = [await register(url, n, PASSWORD, f"{tag} friend {i}") for i, n in enumerate(names)]
    seeker, seeker_id = await new_user(url, "seeker")
    async with online(url, seeker) as s, online(url, names[0]) as shy:
        users, cursor = await s.search_users(username=names[3])
        assert [(u.user_id, u.username, u.nickname) for u in users] == [(ids[3], names[3], f"{tag} friend 3")]
        assert cursor == ""
        assert await shy.set_hidden_from_nickname_search(True) is True
        assert await shy.hidden_from_nickname_search() is True
        found, cursor, pages = [], "", 0
        while True:
            users, cursor = await s.search_users(nickname_prefix=tag.lower(), limit=2, cursor=cursor)
            found += [u.user_id for u in users]
            pages += 1
            if not cursor:
                break
        assert found == ids[1:] and pages == 2  # the opted-out user never appears
        users, _ = await s.search_users(username=names[0])
        assert [u.user_id for u in users] == [ids[0]]  # but an exact username still finds them
        with pytest.raises(ServerError) as exc:
            await s.search_users(username=names[0], nickname_prefix=tag)
        assert exc.value.code == ErrorCode.ERR_INVALID_ARGUMENT
        # found without knowing the id: add as a friend
        assert not await s.apply_friend(found[0], "found you by name")
        async with online(url, names[1]) as target:
            await target.handle_friend(seeker_id, agree=True)
            assert [u.user_id for u in await s.friends()] == [found[0]]


async def test_searches_are_rate_limited(deployment: Served) -> None:
    name, _ = await new_user(deployment.base_url, "walker")
    async with online(deployment.base_url, name) as c:
        with pytest.raises(ServerError) as exc:
            for _ in range(31):  # IM_SEARCH_PER_MINUTE defaults to 30
                await c.search_users(nickname_prefix="a")
        assert exc.value.code == ErrorCode.ERR_RATE_LIMITED
        assert await c.friends() == []  # the connection itself is fine
