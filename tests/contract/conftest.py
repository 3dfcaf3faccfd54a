"""Adapters under contract: every port's suite runs against each of them.

`memory` (the fakes), `sqlite` (a migrated file per test) and `mariadb` (one migrated throwaway database
per session; tests use fresh ids so they never see each other's rows).
"""

from __future__ import annotations

import itertools
import random
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.conftest import migrate_sqlite
from tests.support.services import delete_prefix, require_redis, throwaway_mariadb
from tinyim.infra.db import Database
from tinyim.infra.redis import Keys

ADAPTERS = ["memory", "sqlite", "mariadb"]
# The timeline store also comes with seqs from Redis (IM_SEQ_ALLOCATOR=redis) on each SQL database.
TIMELINE_ADAPTERS = [*ADAPTERS, "sqlite+redis", "mariadb+redis"]

_ids = itertools.count(random.randrange(10**9, 2 * 10**9, 10**6))


def fresh_id() -> int:
    """A user id no other test (or earlier run on a shared database) has used."""
    return next(_ids)


@dataclass(frozen=True)
class Backend:
    kind: str
    url: str = ""  # SQL backends: the database to open

    @asynccontextmanager
    async def database(self) -> AsyncIterator[Database | None]:
        if self.kind == "memory":
            yield None
            return
        db = Database(self.url)
        try:
            yield db
        finally:
            await db.dispose()


@pytest.fixture
async def redis_env() -> AsyncIterator[tuple[Redis, Keys]]:
    """A Redis client and a key prefix of this test's own, removed afterwards."""
    url = require_redis()
    keys = Keys(f"tinyim-test-{uuid.uuid4().hex[:8]}:")
    client = Redis.from_url(url, decode_responses=True)
    yield client, keys
    await client.aclose()
    await delete_prefix(url, keys.prefix)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sqlite-template")
    migrate_sqlite(directory)
    return directory / "tinyim.sqlite3"


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    with throwaway_mariadb() as url:
        yield url


def sqlite_copy(template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh migrated SQLite database (a copy of the session's template) as a URL."""
    path = tmp_path_factory.mktemp("db") / "tinyim.sqlite3"
    shutil.copy(template, path)
    return f"sqlite+aiosqlite:///{path}"


def make_backend(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Backend:
    if kind.startswith("sqlite"):
        return Backend(kind, sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path_factory))
    if kind.startswith("mariadb"):
        return Backend(kind, request.getfixturevalue("mariadb_database"))
    return Backend(kind)


@pytest.fixture(params=ADAPTERS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend(request.param, request, tmp_path_factory)


@pytest.fixture(params=TIMELINE_ADAPTERS)
def timeline_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend(request.param, request, tmp_path_factory)
