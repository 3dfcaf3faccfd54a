"""Server drivers are extras (tinyim[mysql], [redis], [etcd], [cluster]): one process runs without any of
them, and a setting that needs a missing one stops `tinyim` with the extra to install, not a traceback.

The packages are hidden from a real `tinyim` process (tests/support/hide_packages.py): importing one
raises ModuleNotFoundError, as in an installation without the extra.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import friend_pair, online
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = "asyncmy,redis,aetcd,grpc_health"


def hiding(packages: str) -> list[str]:
    return [sys.executable, "-m", "tests.support.hide_packages", packages]


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One process (the defaults: SQLite, memory presence, no registry) with every server driver hidden."""
    server = ServerProcess(
        tmp_path_factory.mktemp("bare"), env={"PYTHONPATH": str(ROOT)}, command=hiding(DRIVERS)
    ).start()
    yield server
    server.stop()


async def test_one_process_serves_chat_without_any_server_driver(bare_server: ServerProcess) -> None:
    url = bare_server.base_url
    alice, _, bob, bob_id = await friend_pair(url)
    async with online(url, alice) as a, online(url, bob) as b:
        sent = await a.send_text(bob_id, "no drivers needed")
        got = await b.next_message(timeout=10)
        assert (got.msg_id, got.content) == (sent.msg_id, "no drivers needed")
    assert "ModuleNotFoundError" not in bare_server.log()


@pytest.mark.parametrize(
    ("hidden", "env", "command", "says"),
    [
        (
            "asyncmy",
            {"IM_DATABASE_URL": "mysql+asyncmy://tinyim@127.0.0.1:1/tinyim"},
            "migrate",
            "IM_DATABASE_URL=mysql+asyncmy://… needs the Python package 'asyncmy', which is not installed: "
            "pip install 'tinyim[mysql]'",
        ),
        (
            "redis",
            {"IM_REDIS_URL": "redis://127.0.0.1:1/0"},
            "run",
            "IM_REDIS_URL needs the Python package 'redis', which is not installed: "
            "pip install 'tinyim[redis]'",
        ),
        (
            "aetcd",
            {"IM_ETCD_ENDPOINTS": "127.0.0.1:1"},
            "run",
            "IM_ETCD_ENDPOINTS needs the Python package 'aetcd', which is not installed: "
            "pip install 'tinyim[etcd]'",
        ),
        (
            "grpc_health",
            {"IM_REDIS_URL": "redis://127.0.0.1:1/0"},
            "run",
            "needs the Python package 'grpcio-health-checking', which is not installed: "
            "pip install 'tinyim[cluster]'",
        ),
    ],
)
def test_a_setting_that_needs_a_missing_driver_names_the_extra(
    tmp_path: Path, hidden: str, env: dict[str, str], command: str, says: str
) -> None:
    done = subprocess.run(
        [*hiding(hidden), command],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "IM_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "tinyim.sqlite3").exists()  # stopped before touching anything
