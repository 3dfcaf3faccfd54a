"""The dispatch HTTP contract (DESIGN.md §4): shapes, status codes, clear JSON errors, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, unique
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


async def test_register_then_login_shapes(http: httpx.AsyncClient, server: ServerProcess) -> None:
    name = unique("carol")
    reg = await http.post("/api/register", json={"username": name, "password": PASSWORD, "nickname": "Carol"})
    assert reg.status_code == 201 and isinstance(reg.json()["user_id"], int)
    login = await http.post("/api/login", json={"username": name, "password": PASSWORD, "device_id": "Web"})
    body = login.json()
    assert login.status_code == 200
    assert body["user_id"] == reg.json()["user_id"] and body["token"] and body["expires_at"] > 0
    assert body["gateway"] == {
        "host": "127.0.0.1",
        "port": server.port,
        "ws_url": f"ws://127.0.0.1:{server.port}/ws",
    }
    alloc = await http.get("/api/allocate_gateway", headers={"Authorization": f"Bearer {body['token']}"})
    assert alloc.status_code == 200 and alloc.json() == body["gateway"]


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"username": "ab", "password": "long enough", "nickname": "n"}', 400),
        (b'{"username": "okname", "password": "short", "nickname": "n"}', 400),
        (b'{"username": "okname2", "password": "long enough", "nickname": ""}', 400),
        (b'{"username": "okname3", "password": "long enough", "nickname": "a\\u0000b"}', 400),
        (b'{"username": "okname4", "password": "long enough"}', 400),
        (b'{"username": 5, "password": "long enough", "nickname": "n"}', 400),
    ],
)
async def test_register_rejects_bad_input(http: httpx.AsyncClient, payload: bytes, status: int) -> None:
    resp = await http.post("/api/register", content=payload, headers={"Content-Type": "application/json"})
    assert resp.status_code == status
    assert resp.json()["error"] == "invalid_argument" and resp.json()["message"]


async def test_register_taken_username_is_409(http: httpx.AsyncClient) -> None:
    name = unique("dup")
    payload = {"username": name, "password": PASSWORD, "nickname": "D"}
    assert (await http.post("/api/register", json=payload)).status_code == 201
    again = await http.post("/api/register", json=payload)
    assert again.status_code == 409 and again.json()["error"] == "conflict"


async def test_login_failures(http: httpx.AsyncClient) -> None:
    name = unique("erin")
    await http.post("/api/register", json={"username": name, "password": PASSWORD, "nickname": "E"})
    wrong = await http.post(
        "/api/login", json={"username": name, "password": "wrong password", "device_id": "PC"}
    )
    nobody = await http.post(
        "/api/login", json={"username": unique("x"), "password": PASSWORD, "device_id": "PC"}
    )
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json()  # no hint whether the username exists
    bad_device = await http.post(
        "/api/login", json={"username": name, "password": PASSWORD, "device_id": "Toaster"}
    )
    assert bad_device.status_code == 400


async def test_allocate_gateway_needs_a_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/allocate_gateway")).status_code == 401
    assert (
        await http.get("/api/allocate_gateway", headers={"Authorization": "Bearer junk"})
    ).status_code == 401


async def test_health_and_metrics(http: httpx.AsyncClient, server: ServerProcess) -> None:
    health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    token = (server.data_dir / "metrics.token").read_text().strip()
    metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert metrics.status_code == 200 and "tinyim_ws_connections" in metrics.text
