"""Finding 8: profile visibility, reused client_msg_id, JSON-only login, /metrics behind a token."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, befriend, friend_pair, new_user, online
from tests.support.server import ServerProcess
from tinyim.client import ServerError
from tinyim.wire import ErrorCode

pytestmark = pytest.mark.e2e


async def test_profiles_by_id_only_for_people_you_have_a_reason_to_see(server: ServerProcess) -> None:
    alice, alice_id, _bob, bob_id = await friend_pair(server.base_url)
    _, stranger_id = await new_user(server.base_url, "stranger")
    async with online(server.base_url, alice) as a:
        seen = {u.user_id for u in await a.users([alice_id, bob_id, stranger_id])}
    assert seen == {alice_id, bob_id}


async def test_a_sender_who_left_the_group_is_still_named_in_its_history(server: ServerProcess) -> None:
    """Bob writes in the group and leaves; Carol (never his friend) still reads his profile next to his old
    message. Someone who joined after he left does not."""
    alice, _, bob, bob_id = await friend_pair(server.base_url)
    carol, carol_id = await new_user(server.base_url, "carol")
    late, late_id = await new_user(server.base_url, "late")  # a stranger to bob, joins after he left
    await befriend(server.base_url, alice, carol)
    async with online(server.base_url, alice) as a:
        group_id = await a.create_group("history", [bob_id, carol_id])
        async with online(server.base_url, bob) as b:
            await b.send_group(group_id, "hello from bob")
            await b.leave_group(group_id)
        await asyncio.sleep(1.1)  # membership times are whole seconds: join strictly after the leave
        async with online(server.base_url, late) as z:
            await z.join_group(group_id)
        await a.handle_join(group_id, late_id, agree=True)
    async with online(server.base_url, carol) as c:
        messages, _ = await c.history(group_id=group_id)
        assert bob_id in {m.sender_id for m in messages}
        assert [u.user_id for u in await c.users([bob_id])] == [bob_id]
    async with online(server.base_url, late) as z:
        assert await z.users([bob_id]) == []


async def test_a_reused_client_msg_id_with_other_content_is_refused(server: ServerProcess) -> None:
    alice, _, _bob, bob_id = await friend_pair(server.base_url)
    async with online(server.base_url, alice) as a:
        first = await a.send_text(bob_id, "first", client_msg_id="same-id-1")
        again = await a.send_text(bob_id, "first", client_msg_id="same-id-1")
        assert again.duplicate and again.msg_id == first.msg_id
        with pytest.raises(ServerError) as refused:
            await a.send_text(bob_id, "something else", client_msg_id="same-id-1")
        assert refused.value.code == ErrorCode.ERR_CLIENT_MSG_ID_REUSED


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_login_accepts_json_only(server: ServerProcess, content_type: str | None) -> None:
    name, _ = await new_user(server.base_url, "ctype")
    body = f'{{"username": "{name}", "password": "{PASSWORD}", "device_id": "PC"}}'
    headers = {"Content-Type": content_type} if content_type else {}
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        resp = await http.post("/api/login", content=body, headers=headers)
    assert resp.status_code == 415 and resp.json()["error"] == "unsupported_media_type"


async def test_metrics_need_the_token(server: ServerProcess) -> None:
    token = (server.data_dir / "metrics.token").read_text().strip()
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        ok = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and "tinyim_ws_connections" in ok.text
