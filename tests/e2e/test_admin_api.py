"""The admin API end to end on a real `tinyim run` (and the disable -> kick path on the multi-process
topology): disable/enable, registration closed and by invitation, password reset, group dissolve, stats;
every admin action and auth event in the audit log, no token, password or invite code in any log line,
and the login / registration metrics moving."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import running_cluster
from tests.e2e.helpers import PASSWORD, befriend, new_user, online, unique
from tests.support.server import ServerProcess
from tinyim.client import Client
from tinyim.pb import im_protocol_pb2 as pb

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "adm-" + secrets.token_urlsafe(24)
METRICS_TOKEN = "met-" + secrets.token_urlsafe(24)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Admin-Operator": "ops-alice"}
# Every credential a test used: none may appear in any log line of the run.
USED_SECRETS: set[str] = {ADMIN_TOKEN, METRICS_TOKEN, PASSWORD}


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("admin")
    env = {
        "IM_ADMIN_TOKEN": ADMIN_TOKEN,
        "IM_METRICS_TOKEN": METRICS_TOKEN,
        "IM_AUDIT_LOG": str(data / "audit.log"),
    }
    proc = ServerProcess(data, env=env).start()
    yield proc
    proc.stop()


def audit_lines(server: ServerProcess) -> list[dict[str, Any]]:
    path = server.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def admin(server: ServerProcess, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        r = await http.request(method, path, json=body, headers=ADMIN)
    assert r.status_code == expect, r.text
    return r.json() if r.content else None


async def login(
    base_url: str, username: str, password: str = PASSWORD, device: str = "Pad"
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await http.post(
            "/api/login", json={"username": username, "password": password, "device_id": device}
        )
    if r.status_code == 200:
        USED_SECRETS.update({r.json()["token"], r.json()["refresh_token"]})
    return r


async def register(base_url: str, username: str, invite_code: str | None = None) -> httpx.Response:
    body = {"username": username, "password": PASSWORD, "nickname": "N"}
    if invite_code is not None:
        body["invite_code"] = invite_code
    async with httpx.AsyncClient(base_url=base_url) as http:
        return await http.post("/api/register", json=body)


def test_the_admin_api_is_off_without_a_token(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base_url}/admin/stats", headers=ADMIN).status_code == 404
    assert not any(
        p.startswith("/admin") for p in httpx.get(f"{server.base_url}/openapi.json").json()["paths"]
    )


async def test_admin_calls_need_the_admin_token(admin_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=admin_server.base_url) as http:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-of-some-length"},
            {"Authorization": ADMIN_TOKEN},
        ):
            r = await http.get("/admin/stats", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        # a user's own token is not an admin token
        name, _ = await new_user(admin_server.base_url, "plain")
        user_token = (await login(admin_server.base_url, name)).json()["token"]
        r = await http.get("/admin/stats", headers={"Authorization": f"Bearer {user_token}"})
        assert r.status_code == 401
        doc = (await http.get("/openapi.json")).json()
    assert "/admin/users/{user_id}/disable" in doc["paths"]


async def test_disable_kicks_every_device_and_refuses_logins_until_enabled(
    admin_server: ServerProcess,
) -> None:
    url = admin_server.base_url
    name, uid = await new_user(url, "dis")
    earlier = (await login(url, name)).json()
    async with online(url, name, "PC") as pc, online(url, name, "Web") as web:
        user = await admin(admin_server, "POST", f"/admin/users/{uid}/disable")
        assert user == {"user_id": uid, "username": name, "nickname": "Dis", "disabled": True}
        await asyncio.wait_for(asyncio.gather(pc.kicked.wait(), web.kicked.wait()), 10)
        assert "disabled" in pc.kick_reason and "disabled" in web.kick_reason
    r = await login(url, name)
    assert r.status_code == 403 and "disabled" in r.json()["message"]
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/api/refresh", json={"refresh_token": earlier["refresh_token"]})
        assert r.status_code == 403 and "disabled" in r.json()["message"]
        r = await http.get("/api/allocate_gateway", headers={"Authorization": f"Bearer {earlier['token']}"})
        assert r.status_code == 401  # its session ended
    listed = await admin(admin_server, "GET", f"/admin/users?q={name}")
    assert listed["users"] == [user] and listed["next_after"] is None

    assert not (await admin(admin_server, "POST", f"/admin/users/{uid}/enable"))["disabled"]
    assert (await login(url, name)).status_code == 200
    await admin(admin_server, "POST", "/admin/users/999999999/disable", expect=404)


async def test_registration_closed_then_by_invitation(admin_server: ServerProcess) -> None:
    url = admin_server.base_url
    try:
        assert await admin(admin_server, "PUT", "/admin/registration", {"mode": "closed"}) == {
            "mode": "closed"
        }
        r = await register(url, unique("closed"))
        assert r.status_code == 403 and "closed" in r.json()["message"]

        await admin(admin_server, "PUT", "/admin/registration", {"mode": "invite"})
        assert (await admin(admin_server, "GET", "/admin/registration")) == {"mode": "invite"}
        r = await register(url, unique("noinvite"))
        assert r.status_code == 403 and "invite" in r.json()["message"]
        created = await admin(admin_server, "POST", "/admin/invites", {"note": "for Carol"}, expect=201)
        USED_SECRETS.add(created["code"])
        assert (await register(url, unique("wrong"), "not-a-real-code")).status_code == 403
        r = await register(url, unique("carol"), created["code"])
        assert r.status_code == 201, r.text
        assert (await register(url, unique("again"), created["code"])).status_code == 403  # once only
        invites = {i["invite_id"]: i for i in (await admin(admin_server, "GET", "/admin/invites"))["invites"]}
        assert invites[created["invite_id"]]["used_by"] == r.json()["user_id"]
        assert all("code" not in i for i in invites.values())

        spare = await admin(admin_server, "POST", "/admin/invites", {}, expect=201)
        USED_SECRETS.add(spare["code"])
        await admin(admin_server, "DELETE", f"/admin/invites/{spare['invite_id']}", expect=204)
        assert (await register(url, unique("revoked"), spare["code"])).status_code == 403
        await admin(admin_server, "PUT", "/admin/registration", {"mode": "sometimes"}, expect=400)
    finally:
        await admin(admin_server, "PUT", "/admin/registration", {"mode": "open"})
    assert (await register(url, unique("open"))).status_code == 201


async def test_password_reset_revokes_the_old_sessions(admin_server: ServerProcess) -> None:
    url = admin_server.base_url
    name, uid = await new_user(url, "reset")
    old = (await login(url, name)).json()
    new_password = "reset-" + secrets.token_urlsafe(12)
    USED_SECRETS.add(new_password)
    await admin(admin_server, "POST", f"/admin/users/{uid}/password", {"password": new_password}, expect=204)
    assert (await login(url, name)).status_code == 401
    async with httpx.AsyncClient(base_url=url) as http:
        assert (
            await http.post("/api/refresh", json={"refresh_token": old["refresh_token"]})
        ).status_code == 401
    assert (await login(url, name, new_password)).status_code == 200
    await admin(admin_server, "POST", f"/admin/users/{uid}/password", {"password": "short"}, expect=400)


async def test_dissolve_a_group_and_the_stats(admin_server: ServerProcess) -> None:
    url = admin_server.base_url
    owner, _ = await new_user(url, "gowner")
    member, member_id = await new_user(url, "gmember")
    await befriend(url, member, owner)
    async with online(url, owner) as o, online(url, member) as m:
        gid = await o.create_group("doomed", [member_id])
        stats = await admin(admin_server, "GET", "/admin/stats")
        assert stats["users"] >= 2 and stats["groups"] >= 1 and stats["messages"] >= 1
        assert stats["online_connections"] >= 2
        dissolved = await admin(admin_server, "POST", f"/admin/groups/{gid}/dissolve")
        assert (dissolved["group_id"], dissolved["name"], dissolved["member_count"]) == (gid, "doomed", 2)
        while True:  # the member gets the group's last SYSTEM message
            msg = await m.next_message(10)
            if msg.type == pb.SYSTEM and json.loads(msg.content)["event"] == "group_dissolved":
                assert json.loads(msg.content) == {
                    "event": "group_dissolved",
                    "group_id": gid,
                    "name": "doomed",
                    "by": "admin",
                }
                break
        assert await m.groups() == []
    await admin(admin_server, "POST", f"/admin/groups/{gid}/dissolve", expect=404)
    after = await admin(admin_server, "GET", "/admin/stats")
    assert after["groups"] == stats["groups"] - 1


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_login_and_registration_metrics_move(admin_server: ServerProcess) -> None:
    url = admin_server.base_url
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=auth) as http:
        before = (await http.get("/metrics")).text
    name, _ = await new_user(url, "metr")
    assert (await login(url, name)).status_code == 200
    assert (await login(url, name, "wrong password!")).status_code == 401
    assert (await login(url, unique("nobody"))).status_code == 401
    assert (await register(url, name)).status_code == 409
    async with httpx.AsyncClient(base_url=url, headers=auth) as http:
        after = (await http.get("/metrics")).text
    moved = {
        ("tinyim_logins_total", "ok"): 1,
        ("tinyim_logins_total", "bad_credentials"): 2,
        ("tinyim_registrations_total", "ok"): 1,
        ("tinyim_registrations_total", "taken"): 1,
    }
    for (name_, outcome), delta in moved.items():
        assert metric(after, name_, outcome=outcome) - metric(before, name_, outcome=outcome) == delta, name_
    assert metric(after, "tinyim_logins_total", outcome="disabled") >= 1  # the disable test's refusal
    assert metric(after, "tinyim_registrations_total", outcome="refused") >= 1  # closed / invite
    for name_ in ("tinyim_push_queued_frames", "tinyim_push_dropped_total", "tinyim_admin_actions_total"):
        assert name_ in after
    assert metric(after, "tinyim_admin_actions_total", action="disable_user") >= 1


async def test_logout_is_audited(admin_server: ServerProcess) -> None:
    url = admin_server.base_url
    name, uid = await new_user(url, "bye")
    token = (await login(url, name)).json()["token"]
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/api/logout", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 204
    assert any(x["event"] == "logout" and x["user_id"] == uid for x in audit_lines(admin_server))


def test_every_action_is_audited_and_no_secret_is_logged(admin_server: ServerProcess) -> None:
    """Runs last in this module: the audit log of everything above."""
    lines = audit_lines(admin_server)
    events = {line["event"] for line in lines}
    for wanted in (
        "admin.denied",
        "admin.disable_user",
        "admin.enable_user",
        "admin.list_users",
        "admin.set_registration",
        "admin.get_registration",
        "admin.create_invite",
        "admin.list_invites",
        "admin.revoke_invite",
        "admin.reset_password",
        "admin.dissolve_group",
        "admin.stats",
        "register",
        "login",
        "refresh",
        "kick",
    ):
        assert wanted in events, wanted
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"]), line
    admin_lines = [x for x in lines if x["event"].startswith("admin.") and x["event"] != "admin.denied"]
    assert all(x["actor"] == "ops-alice" and x["ip"] == "127.0.0.1" for x in admin_lines)
    disable = next(x for x in lines if x["event"] == "admin.disable_user")
    assert isinstance(disable["target_user_id"], int)
    outcomes = {x["outcome"] for x in lines if x["event"] == "login"}
    assert {"ok", "bad_credentials", "disabled"} <= outcomes
    failed = next(x for x in lines if x["event"] == "login" and x["outcome"] == "bad_credentials")
    assert failed["ip"] == "127.0.0.1" and failed["reason"] and failed["username"]
    assert {x["outcome"] for x in lines if x["event"] == "register"} >= {"ok", "refused", "taken"}
    kicks = [x for x in lines if x["event"] == "kick"]
    assert any("disabled" in k["reason"] for k in kicks) and all(k["gateway"] for k in kicks)

    logs = (admin_server.data_dir / "audit.log").read_text() + Path(str(admin_server.log_path)).read_text()
    leaked = [s for s in USED_SECRETS if s in logs]
    assert not leaked, f"{len(leaked)} secrets found in the logs"
    assert len(USED_SECRETS) > 10


@pytest.fixture
def admin_cluster(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The multi-process topology with the admin API on; (dispatch URL, the shared audit log)."""
    audit_log = tmp_path / "audit.log"
    with running_cluster(tmp_path, IM_ADMIN_TOKEN=ADMIN_TOKEN, IM_AUDIT_LOG=str(audit_log)) as cluster:
        yield cluster.dispatch_url, audit_log


async def test_disable_kicks_devices_on_every_gateway_of_the_cluster(admin_cluster: tuple[str, Path]) -> None:
    url, audit_log = admin_cluster
    name, uid = await new_user(url, "clus")
    devices = ("PC", "Web", "Mobile", "Pad")
    async with all_devices(url, name, devices) as clients:
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post(f"/admin/users/{uid}/disable", headers=ADMIN)
            assert r.status_code == 200, r.text
        await asyncio.wait_for(asyncio.gather(*(c.kicked.wait() for c in clients)), 15)
    assert (await login(url, name)).status_code == 403
    kicks = [
        json.loads(x)
        for x in audit_log.read_text().splitlines()
        if '"kick"' in x and f'"user_id": {uid},' in x
    ]
    # the dispatch and auth roles run elsewhere: each gateway was asked over gRPC
    assert {k["device_id"] for k in kicks} == set(devices)
    assert {k["origin"] for k in kicks} == {"remote"}
    assert len({k["gateway"] for k in kicks}) == 2, "the devices were spread over both gateways"
    assert any(
        x.startswith('{"ts"') and '"admin.disable_user"' in x for x in audit_log.read_text().splitlines()
    )


@asynccontextmanager
async def all_devices(url: str, name: str, devices: tuple[str, ...]) -> AsyncIterator[list[Client]]:
    """Every device of `name` online at once."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(online(url, name, d)) for d in devices]
