"""Finding 5: password guessing is throttled per account and per address, and costs no hash when it is."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, new_user, unique
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def _attempts(http: httpx.AsyncClient, username: str, n: int, password: str = "wrong password!"):
    body = {"username": username, "password": password, "device_id": "PC"}
    return [await http.post("/api/login", json=body) for _ in range(n)]


async def test_wrong_passwords_are_throttled_with_retry_after(server: ServerProcess) -> None:
    name, _ = await new_user(server.base_url, "victim")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        answers = await _attempts(http, name, 12)
        statuses = [r.status_code for r in answers]
        assert statuses[:5] == [401] * 5
        assert 429 in statuses, statuses
        limited = next(r for r in answers if r.status_code == 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        # While the account is throttled even the right password waits: guessing gains nothing.
        right = await _attempts(http, name, 1, PASSWORD)
        assert right[0].status_code == 429


async def test_unknown_and_existing_accounts_answer_alike(server: ServerProcess) -> None:
    name, _ = await new_user(server.base_url, "real")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        real = [r.status_code for r in await _attempts(http, name, 8)]
        ghost = [r.status_code for r in await _attempts(http, unique("ghost"), 8)]
    assert real == ghost


async def test_a_burst_of_logins_queues_on_the_hash_limit(server: ServerProcess) -> None:
    """16 concurrent logins of distinct sessions all answer (they queue for the hasher)."""
    users = [await new_user(server.base_url, "burst") for _ in range(4)]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        results = await asyncio.gather(
            *(
                http.post("/api/login", json={"username": n, "password": PASSWORD, "device_id": d})
                for n, _ in users
                for d in ("PC", "Web", "Mobile", "Pad")
            )
        )
    assert [r.status_code for r in results] == [200] * 16
