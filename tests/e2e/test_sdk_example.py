"""The README's SDK example is examples/sdk_quickstart.py verbatim, and it runs as written against a
real `tinyim run`: two users, a friend request and its approval, a message each way."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "sdk_quickstart.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("sdk-example")).start()
    yield proc
    proc.stop()


def test_the_readme_shows_the_whole_script() -> None:
    readme = (ROOT / "README.md").read_text()
    assert SCRIPT.read_text() in readme


def test_the_example_runs_as_written(server: ServerProcess) -> None:
    for _ in range(2):  # fresh usernames each run: it can be run again on the same server
        done = subprocess.run(
            [sys.executable, str(SCRIPT)],
            env={**os.environ, "TINYIM_SERVER": server.base_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["Bob got: hello Bob", "Alice got: hi Alice"]
