"""The app of any combination of roles, built and served in process (Starlette's TestClient).

Combinations come from the role table, so a new role is covered without touching this file: every subset
of roles is built (routes are static: a role's routes exist iff the process runs it, the Web app's catch-all
comes after them), and one process with every role plus each role on its own (a Redis registry under a
unique prefix, as `make cluster` runs them) is started and asked for real answers.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import migrate_sqlite
from tests.support.server import free_port
from tests.support.services import delete_prefix, require_redis
from tinyim.bootstrap.app import build_app
from tinyim.bootstrap.roles import ROLE_TABLE
from tinyim.infra.redis import Keys
from tinyim.infra.registry import RedisRegistry
from tinyim.settings import ALL_ROLES, Settings

NAMES = tuple(role.name for role in ROLE_TABLE)


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    started: int  # the answer once the process has started (before start: anything but 404)
    body: Any = None


# A request each role with HTTP routes answers without calling another role (404 in every other process).
PROBES: dict[str, tuple[Probe, ...]] = {
    "dispatch": (
        Probe("POST", "/api/login", 400, body={}),  # no username: refused before auth is asked
        Probe("GET", "/openapi.json", 200),
        Probe("GET", "/api/client_config", 200),  # the Web app's routes
    ),
    "filegw": (Probe("GET", "/files/downloads/t-1?token=forged", 401),),
}


def _ask(client: TestClient, probe: Probe) -> int:
    status: int = client.request(probe.method, probe.path, json=probe.body).status_code
    return status


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrate_sqlite(tmp_path_factory.mktemp("roles-db"))


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built Web app stand-in: its catch-all at / must not shadow any role's routes."""
    path = tmp_path_factory.mktemp("web")
    (path / "index.html").write_text("<!doctype html><title>TinyIM</title>")
    return path


def _settings(roles: str, tmp: Path, web: Path, **extra: Any) -> Settings:
    return Settings(
        roles=roles,
        data_dir=tmp,
        web_dir=str(web),
        jwt_secret="s" * 32,
        metrics_token="m" * 20,
        grpc_port=free_port(),
        file_port=free_port(),
        registry_ttl_seconds=2.0,
        registry_renew_seconds=0.5,
        **extra,
    )


def test_every_role_with_http_routes_has_a_probe() -> None:
    assert {r.name for r in ROLE_TABLE} == ALL_ROLES
    with_routes = {r.name for r in ROLE_TABLE if r.entry.routes or r.entry.fallback_routes}
    assert with_routes == set(PROBES), "give each role with HTTP routes a probe"


def _subsets() -> Iterator[tuple[str, ...]]:
    for size in range(1, len(NAMES) + 1):
        yield from itertools.combinations(NAMES, size)


def test_every_combination_has_exactly_its_roles_routes_before_it_starts(
    tmp_path: Path, web_dir: Path
) -> None:
    checked = 0
    for subset in _subsets():
        settings = _settings(
            ",".join(subset),
            tmp_path,
            web_dir,
            database_url="sqlite+aiosqlite:///unused.sqlite3",  # not opened: nothing starts
            redis_url="redis://127.0.0.1:1/0",
        )
        client = TestClient(build_app(settings), raise_server_exceptions=False)  # no lifespan
        for role, probes in PROBES.items():
            for probe in probes:
                status = _ask(client, probe)
                if role in subset:
                    # the route exists; its services are not started yet (the error is ours, not a 404)
                    assert status != 404, (subset, probe)
                else:
                    assert status == 404, (subset, probe, status)
        checked += 1
    assert checked == 2 ** len(NAMES) - 1


def _registered(redis_url: str, prefix: str, role: str) -> list[str]:
    async def ask() -> list[str]:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            return [n.node_id for n in await RedisRegistry(client, Keys(prefix)).nodes(role)]
        finally:
            await client.aclose()

    return asyncio.run(ask())


def _started_answers(client: TestClient, roles: set[str]) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200 and set(health.json()["roles"]) == roles
    for role, probes in PROBES.items():
        for probe in probes:
            assert _ask(client, probe) == (probe.started if role in roles else 404), (roles, probe)


def test_one_process_with_every_role_serves_each_role(
    tmp_path: Path, web_dir: Path, database_url: str
) -> None:
    settings = _settings("all", tmp_path, web_dir, database_url=database_url)
    with TestClient(build_app(settings)) as client:
        _started_answers(client, set(ALL_ROLES))
        account = {"username": "ann", "password": "pw-123456", "nickname": "Ann"}
        assert client.post("/api/register", json=account).status_code == 201
        login = client.post("/api/login", json={**account, "device_id": "PC"})
        assert login.status_code == 200 and login.json()["gateway"]


@pytest.mark.parametrize("role", NAMES)
def test_each_role_on_its_own_serves_its_routes_and_registers(
    role: str, tmp_path: Path, web_dir: Path, database_url: str
) -> None:
    redis_url = require_redis()
    prefix = f"test-roles-{uuid.uuid4().hex[:8]}:"
    settings = _settings(
        role, tmp_path, web_dir, database_url=database_url, redis_url=redis_url, redis_prefix=prefix
    )
    entry = next(r.entry for r in ROLE_TABLE if r.name == role)
    try:
        with TestClient(build_app(settings)) as client:
            _started_answers(client, {role})
            if entry.registration is not None:  # other processes find it (dispatch: only clients call it)
                assert _registered(redis_url, prefix, role) == [settings.node_id(role)]
        if entry.registration is not None:  # withdrawn on shutdown
            assert _registered(redis_url, prefix, role) == []
    finally:
        asyncio.run(delete_prefix(redis_url, prefix))


def test_a_module_input_left_unwired_fails_at_start_up(tmp_path: Path) -> None:
    from dependency_injector.errors import Error

    from tinyim.bootstrap.container import Container, wired

    settings = Settings(data_dir=tmp_path, jwt_secret="s" * 32)
    wired(settings)  # every input provided
    with pytest.raises(Error, match="rules"):  # timeline's messaging rules come from relation
        Container(settings=settings).check_dependencies()
