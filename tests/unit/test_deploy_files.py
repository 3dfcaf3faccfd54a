"""docker/compose.yaml: the topology the distributed-roles issue asks for, checked as far as we can here.

No Docker engine runs on the test machines; `docker-compose config` (Debian's docker-compose) validates
the file when it is installed, and these checks hold the topology to the cluster's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tinyim.cluster import TOPOLOGY
from tinyim.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


def services() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    return dict(data["services"])


def tinyim_services() -> dict[str, dict[str, Any]]:
    return {
        name: s for name, s in services().items() if s.get("image") == "tinyim:latest" and name != "migrate"
    }


def test_every_role_of_the_cluster_runs_from_the_same_image(monkeypatch: pytest.MonkeyPatch) -> None:
    roles = sorted(s["environment"]["IM_ROLES"] for s in tinyim_services().values())
    assert roles == sorted(r for _, r, _, _ in TOPOLOGY)  # dispatch, 2 gateways, auth, user, 2 msg
    for name, service in tinyim_services().items():
        for key, value in service["environment"].items():
            monkeypatch.setenv(key, str(value))
        monkeypatch.setenv("IM_JWT_SECRET", "x" * 32)
        settings = Settings()  # the container's environment is a valid configuration
        assert settings.registry_kind == "etcd" and not settings.auto_migrate, name
        assert settings.database_replica_urls and "mysql-replica" in settings.database_replica_urls


def test_msg_nodes_have_their_own_worker_ids_and_gateways_their_public_urls() -> None:
    ours = tinyim_services()
    workers = [s["environment"]["IM_WORKER_ID"] for n, s in ours.items() if n.startswith("msg")]
    assert len(workers) == len(set(workers)) == 2
    urls = {s["environment"]["IM_PUBLIC_WS_URL"] for n, s in ours.items() if n.startswith("gateway")}
    assert urls == {"ws://localhost:8081/ws", "ws://localhost:8082/ws"}


def test_mysql_primary_and_replica_are_wired_for_replication() -> None:
    s = services()
    assert s["mysql-primary"]["image"] == s["mysql-replica"]["image"] == "mysql:8.0"
    assert "--log-bin=mysql-bin" in s["mysql-primary"]["command"]
    assert "--super-read-only=ON" in s["mysql-replica"]["command"]
    init = (COMPOSE.parent / "mysql" / "replica-init.sql").read_text()
    assert "SOURCE_HOST = 'mysql-primary'" in init and "START REPLICA" in init


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_file_is_valid() -> None:
    env = {**os.environ, "IM_JWT_SECRET": "x" * 32}
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
