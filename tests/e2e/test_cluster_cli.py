"""`tinyim cluster up|down` (what `make cluster` / `make cluster-down` run), as a user would call them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port_block
from tests.support.services import require_redis, throwaway_mariadb

pytestmark = pytest.mark.e2e


def tinyim(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("tinyim"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)


def test_cluster_up_writes_its_state_and_down_stops_every_process(tmp_path: Path) -> None:
    redis_url = require_redis()
    with throwaway_mariadb() as db_url:
        base = free_port_block()
        env = {
            **os.environ,
            "IM_DATA_DIR": str(tmp_path),
            "IM_HTTP_PORT": str(base),
            "IM_DATABASE_URL": db_url,
            "IM_REDIS_URL": redis_url,
            "IM_REDIS_PREFIX": f"cli-{uuid.uuid4().hex[:8]}:",
        }
        up = tinyim("cluster", "up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((tmp_path / "cluster" / "cluster.json").read_text())
        try:
            assert state["dispatch"] == f"http://127.0.0.1:{base}"
            names = sorted(p["name"] for p in state["processes"])
            assert names == ["auth", "dispatch", "filegw-1", "filegw-2", "filemeta", "gateway-1", "gateway-2",
                             "msg-1", "msg-2", "user"]  # fmt: skip
            for proc in state["processes"]:
                health = httpx.get(f"http://127.0.0.1:{proc['http_port']}/healthz", timeout=5).json()
                assert health["roles"] == [proc["roles"]]
            again = tinyim("cluster", "up", env=env)
            assert again.returncode == 1 and "running already" in again.stdout
        finally:
            down = tinyim("cluster", "down", env=env)
        assert down.returncode == 0, down.stderr
        for proc in state["processes"]:
            with pytest.raises(ProcessLookupError):
                os.kill(proc["pid"], 0)
        assert not (tmp_path / "cluster" / "cluster.json").exists()
