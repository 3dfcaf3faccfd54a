"""Finding 9: reconnects use the token, then a rotating refresh token; a password only when both are gone."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, friend_pair, new_user, online
from tests.support.server import ServerProcess
from tinyim.client import ClientOptions

pytestmark = pytest.mark.e2e


async def _login(http: httpx.AsyncClient, name: str, device: str = "PC") -> dict[str, Any]:
    resp = await http.post("/api/login", json={"username": name, "password": PASSWORD, "device_id": device})
    assert resp.status_code == 200
    return dict(resp.json())


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(server: ServerProcess) -> None:
    name, user_id = await new_user(server.base_url, "rot")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        first = await _login(http, name)
        assert first["refresh_token"] and first["refresh_expires_at"] > time.time()
        second = await http.post("/api/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200
        body = second.json()
        assert body["user_id"] == user_id and body["token"] != first["token"]
        assert body["refresh_token"] != first["refresh_token"] and body["gateway"]["ws_url"]
        # The old access token is replaced; the new one works.
        auth = {"Authorization": f"Bearer {body['token']}"}
        assert (await http.get("/api/allocate_gateway", headers=auth)).status_code == 200
        old_auth = {"Authorization": f"Bearer {first['token']}"}
        assert (await http.get("/api/allocate_gateway", headers=old_auth)).status_code == 401
        # Replaying the first refresh token (stolen?) fails and revokes the whole family.
        replay = await http.post("/api/refresh", json={"refresh_token": first["refresh_token"]})
        assert replay.status_code == 401
        after = await http.post("/api/refresh", json={"refresh_token": body["refresh_token"]})
        assert after.status_code == 401
        assert (await http.get("/api/allocate_gateway", headers=auth)).status_code == 401


async def test_logout_and_a_newer_login_revoke_refresh_tokens(server: ServerProcess) -> None:
    name, _ = await new_user(server.base_url, "rev")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        first = await _login(http, name)
        await _login(http, name)  # same device type: the first session and its refresh token are gone
        assert (
            await http.post("/api/refresh", json={"refresh_token": first["refresh_token"]})
        ).status_code == 401
        third = await _login(http, name)
        await http.post("/api/logout", headers={"Authorization": f"Bearer {third['token']}"})
        assert (
            await http.post("/api/refresh", json={"refresh_token": third["refresh_token"]})
        ).status_code == 401
        assert (await http.post("/api/refresh", json={"refresh_token": "garbage"})).status_code == 401


async def test_sdk_reconnects_without_the_password(server: ServerProcess) -> None:
    alice, _, bob, bob_id = await friend_pair(server.base_url)
    async with (
        online(
            server.base_url, alice, options=ClientOptions(heartbeat_interval=5, backoff_initial=0.05)
        ) as a,
        online(server.base_url, bob) as b,
    ):
        logins = 0
        real_login = a.login

        async def counting_login() -> None:
            nonlocal logins
            logins += 1
            await real_login()

        a.login = counting_login  # type: ignore[method-assign]
        for _ in range(3):  # plain drops: the live token re-dispatches
            await a.drop_connection()
            await a.send_text(bob_id, "after a drop")
        a.token_expires_at = int(time.time())  # the access token ran out: the refresh token renews it
        await a.drop_connection()
        await a.send_text(bob_id, "after the token expired")
        assert logins == 0 and a.connects == 5
        assert (await b.next_message()).content == "after a drop"
