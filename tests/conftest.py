"""Fixtures shared by every test layer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tinyim.infra import grpc_io
from tinyim.infra.db import Database
from tinyim.settings import Settings

# The gRPC servers and clients the tests start in this process run with the I/O settings the `tinyim`
# command gives every server process; gRPC reads them when it is imported, so nothing above may import it.
assert grpc_io.apply_defaults(), "grpc was imported before tests/conftest.py applied its settings"

# The servers the tests start hash passwords cheaply (argon2id, 1 pass over 1 MiB: ~1 ms of CPU instead of
# ~0.4 s): the suite registers and logs in hundreds of users. Production keeps the library's profile.
os.environ.setdefault("IM_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("IM_PASSWORD_HASH_MEMORY_KIB", "1024")

TIERS = ("unit", "contract", "integration", "chaos", "fuzz", "soak", "e2e")
TESTS = Path(__file__).parent


# The longest files of the slow tiers, run first: `make test` spreads those tiers over two workers a file
# at a time, and the 2.5-minute soak started last would run alone at the end.
LONGEST_FIRST = ("soak/test_soak_short.py", "e2e/test_web.py", "e2e/test_social.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the directory it lives in (`make unit` = `pytest -m unit`)."""
    for item in items:
        parts = Path(item.fspath).relative_to(TESTS).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))

    def rank(item: pytest.Item) -> int:
        path = Path(item.fspath).relative_to(TESTS).as_posix()
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every file keeps its own order


def migrate_sqlite(path: Path) -> str:
    """A migrated SQLite file: the schema always comes from migrations/, as in production."""
    from tinyim.cli import migrate

    settings = Settings(data_dir=path)
    migrate(settings)
    return settings.effective_database_url


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    url = await asyncio.to_thread(migrate_sqlite, tmp_path)
    db = Database(url)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `tinyim run` (IM_ROLES=all, embedded defaults) per test module."""
    proc = ServerProcess(tmp_path_factory.mktemp("tinyim")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def etcd_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private etcd for the session (Debian's etcd-server), as IM_ETCD_ENDPOINTS names it."""
    from tests.support.etcd_server import EtcdServer

    etcd = EtcdServer(tmp_path_factory.mktemp("etcd")).start()
    yield etcd.endpoints
    etcd.stop()
