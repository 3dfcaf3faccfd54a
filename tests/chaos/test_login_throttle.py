"""Finding 5: password guessing is throttled per account and per address, and costs no hash when it is."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, new_user, unique
from tests.support.server import ServerProcess, free_port
from tests.support.services import delete_prefix, require_redis, throwaway_mariadb

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


@pytest.fixture(scope="module")
def two_dispatchers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two dispatch processes (each with its own auth role) on one database and one Redis."""
    redis_url = require_redis()
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    with throwaway_mariadb() as db_url:
        env = {
            "IM_ROLES": "dispatch,auth",
            "IM_DATABASE_URL": db_url,
            "IM_REDIS_URL": redis_url,
            "IM_REDIS_PREFIX": prefix,
            "IM_JWT_SECRET": uuid.uuid4().hex,
            "IM_AUTO_MIGRATE": "false",
        }
        procs: list[ServerProcess] = []
        try:
            for _ in range(2):
                env["IM_GRPC_PORT"] = str(free_port())
                procs.append(ServerProcess(tmp_path_factory.mktemp("dispatch"), dict(env)).start())
            yield procs[0], procs[1]
        finally:
            for p in procs:
                p.stop()
            asyncio.run(delete_prefix(redis_url, prefix))


async def test_guesses_spread_over_two_dispatch_processes_meet_one_limit(
    two_dispatchers: tuple[ServerProcess, ServerProcess],
) -> None:
    """With IM_REDIS_URL the failure counts are shared: the five free failures and the sixth (which starts
    the backoff) split over two processes, and the seventh is refused (counted per process, each would
    have answered six and the thirteenth would be the first refused)."""
    a, b = two_dispatchers
    name, _ = await new_user(a.base_url, "spread")
    body = {"username": name, "password": "wrong password!", "device_id": "PC"}
    async with httpx.AsyncClient(timeout=30) as http:
        order = [a, b, a, b, a, b, b]
        statuses = [(await http.post(f"{p.base_url}/api/login", json=body)).status_code for p in order]
        assert statuses == [401] * 6 + [429], statuses
        right = {"username": name, "password": PASSWORD, "device_id": "PC"}
        refused = await http.post(f"{a.base_url}/api/login", json=right)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
