"""docker/compose.single.yaml: one process with every role, MariaDB and Redis; secrets only from an env
file; every service restarts and reports health; `docker-compose config` accepts it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tinyim.settings import Settings

DOCKER = Path(__file__).resolve().parents[3] / "docker"
SINGLE = DOCKER / "compose.single.yaml"
ENV = {"DB_ROOT_PASSWORD": "r00t-pw", "DB_PASSWORD": "db-pw", "IM_JWT_SECRET": "s" * 40}


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(SINGLE.read_text())["services"])


def test_one_tinyim_process_with_every_role_beside_a_database_and_redis() -> None:
    s = services()
    core = {name for name, svc in s.items() if not svc.get("profiles")}
    assert core == {"db", "redis", "tinyim"}
    env = s["tinyim"]["environment"]
    assert env["IM_ROLES"] == "all" and "IM_ETCD_ENDPOINTS" not in env  # no registry, no replica
    assert "IM_DATABASE_REPLICA_URLS" not in env
    assert {k for k in env if k.startswith("IM_")} <= {f"IM_{n.upper()}" for n in Settings.model_fields}


def test_no_secret_is_written_in_the_file_and_every_core_service_restarts_and_has_a_healthcheck() -> None:
    text = SINGLE.read_text()
    for key in ("MARIADB_ROOT_PASSWORD", "MARIADB_PASSWORD", "IM_JWT_SECRET"):
        [value] = re.findall(rf"{key}: (.*)", text)
        assert value.startswith("${") and ":?" in value, key  # required from the env file
    for name, svc in services().items():
        assert svc.get("restart") == "unless-stopped", name
        if not svc.get("profiles"):
            assert "healthcheck" in svc and "mem_limit" in svc, name
    volumes = yaml.safe_load(text)["volumes"]
    assert {"db-data", "tinyim-data"} <= set(volumes)


@pytest.mark.skipif(shutil.which("docker-compose") is None and os.environ.get("CI") != "true",
                    reason="docker-compose is not installed")  # fmt: skip
def test_docker_compose_accepts_it_with_an_env_file_and_refuses_it_without(tmp_path: Path) -> None:
    env_file = tmp_path / "single.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in ENV.items()))
    clean = {k: v for k, v in os.environ.items() if k not in ENV}
    base = ["docker-compose", "-f", str(SINGLE)]
    ok = subprocess.run([*base, "--env-file", str(env_file), "--profile", "tls", "--profile", "monitoring",
                         "config", "-q"], env=clean, capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    example = subprocess.run([*base, "--env-file", str(DOCKER / "single.env.example"), "config", "-q"],
                             env=clean, capture_output=True, text=True)  # fmt: skip
    assert example.returncode != 0 and "IM_JWT_SECRET" in example.stderr
