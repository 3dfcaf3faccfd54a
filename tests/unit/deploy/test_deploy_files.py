"""docker/compose.yaml (+ compose.local.yaml): the multi-role topology, held to the cluster's role table.

`make compose-e2e` runs it for real; these checks are fast: the files' shape, no secret in them, every
service restartable, health-checked and limited, and `docker-compose config` (Debian's docker-compose)
accepting both the production file and the local override when it is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tinyim.cluster import TOPOLOGY
from tinyim.settings import Settings

DOCKER = Path(__file__).resolve().parents[3] / "docker"
COMPOSE = DOCKER / "compose.yaml"
LOCAL = DOCKER / "compose.local.yaml"
ENV_REF = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")  # ${VAR}, ${VAR:-default}, ${VAR:?message}
SECRETS = {
    "DB_ROOT_PASSWORD": "root-secret-1",
    "DB_PASSWORD": "app-secret-2",
    "DB_REPLICATION_PASSWORD": "repl-secret-3",
    "IM_JWT_SECRET": "j" * 40,
}
URLS = {
    "GATEWAY_1_WS_URL": "wss://im.example.com/gw/1/ws",
    "GATEWAY_2_WS_URL": "wss://im.example.com/gw/2/ws",
    "PUBLIC_HOST": "im.example.com",
    "FILEGW_1_HTTP_URL": "https://im.example.com/fgw/1",
    "FILEGW_2_HTTP_URL": "https://im.example.com/fgw/2",
}
_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """What compose makes of ${VAR}, ${VAR:-default}, ${VAR:?message} with the test's env file."""

    def one(m: re.Match[str]) -> str:
        known = {**SECRETS, **URLS}
        if m.group(1) in known:
            return known[m.group(1)]
        return m.group(3) if m.group(2) == "-" else ""

    return _REF.sub(one, value)


def load(path: Path = COMPOSE) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def services() -> dict[str, Any]:
    return dict(load()["services"])


def tinyim_services() -> dict[str, dict[str, Any]]:
    """The roles always running (the scalable `gateway` of the `scale` profile aside)."""
    return {
        name: s
        for name, s in services().items()
        if "IM_ROLES" in s.get("environment", {}) and not s.get("profiles")
    }


def test_every_role_of_the_cluster_runs_from_the_same_image(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = tinyim_services()
    roles = sorted(s["environment"]["IM_ROLES"] for s in ours.values())
    assert roles == sorted(r for _, r, _, _ in TOPOLOGY)  # dispatch, 2 gateways, auth, user, 2 msg
    assert {s["image"] for s in ours.values()} == {services()["migrate"]["image"]}
    for name, service in ours.items():
        for key, value in service["environment"].items():
            monkeypatch.setenv(key, interpolate(str(value)))
        monkeypatch.setenv("IM_JWT_SECRET", "x" * 32)
        settings = Settings()  # the container's environment is a valid configuration
        assert settings.registry_kind == "etcd" and not settings.auto_migrate, name
        assert settings.database_replica_urls and "mysql-replica" in settings.database_replica_urls


def test_msg_nodes_have_their_own_worker_ids_and_gateways_public_urls_from_the_env_file() -> None:
    ours = tinyim_services()
    workers = [s["environment"]["IM_WORKER_ID"] for n, s in ours.items() if n.startswith("msg")]
    assert len(workers) == len(set(workers)) == 2
    for n, name in enumerate(("gateway-1", "gateway-2"), 1):
        assert ours[name]["environment"]["IM_PUBLIC_WS_URL"].startswith(f"${{GATEWAY_{n}_WS_URL:?")
    scaled = services()["gateway"]
    assert (
        scaled["profiles"] == ["scale"] and "ports" not in scaled
    )  # every replica announces its own address


def test_no_secret_is_written_in_the_files() -> None:
    for path in (COMPOSE, LOCAL, DOCKER / "compose.single.yaml"):
        for name, service in load(path)["services"].items():
            for key, value in (service.get("environment") or {}).items():
                if re.search("PASSWORD|SECRET", key):
                    assert ENV_REF.match(str(value)), f"{path.name}: {name}.{key} is not from the env file"
                for user_pass in re.findall(r"://[^:/@]+:([^@]+)@", str(value)):
                    assert ENV_REF.match(user_pass), f"{path.name}: {name}.{key} has a password in its URL"
            check = " ".join(map(str, (service.get("healthcheck") or {}).get("test", [])))
            assert not re.search(r"-p[^\s\"$]", check), f"{path.name}: {name} healthcheck has a password"
    for script in [*DOCKER.glob("mysql/*"), *DOCKER.glob("local/mariadb/*")]:
        text = script.read_text()
        assert "PASSWORD = '$" in text or "BY '$" in text, script  # from the environment
        assert not re.search(r"(PASSWORD\s*=|BY)\s*'[^$]", text), f"{script}: a literal password"
    example = (DOCKER / "cluster.env.example").read_text()
    for key in SECRETS:
        assert re.search(rf"^{key}=$", example, re.M), f"cluster.env.example must leave {key} empty"


def test_every_service_restarts_is_health_checked_and_limited() -> None:
    for name, service in services().items():
        assert service.get("restart") in {"unless-stopped", "always", "no", "on-failure"}, name
        health = service.get("healthcheck")
        assert health and (health.get("test") or health.get("disable")), f"{name} has no healthcheck"
        assert service.get("mem_limit") and float(service.get("cpus", 0)) > 0, f"{name} has no limits"
    # only the one-shot migration job neither restarts nor reports health
    assert [n for n, s in services().items() if s["restart"] == "no"] == ["migrate"]
    assert [n for n, s in services().items() if s["healthcheck"].get("disable")] == ["migrate"]


def test_data_lives_in_named_volumes_and_monitoring_is_a_profile() -> None:
    data = load()
    named = set(data["volumes"])
    for name, mount in [("mysql-primary", "/var/lib/mysql"), ("mysql-replica", "/var/lib/mysql"),
                        ("etcd", "/etcd-data")]:  # fmt: skip
        sources = {v.split(":")[0] for v in data["services"][name]["volumes"] if v.endswith(f":{mount}")}
        assert sources and sources <= named, name
    monitoring = {n for n, s in data["services"].items() if "monitoring" in s.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana"}
    scrape = yaml.safe_load((DOCKER / "monitoring" / "prometheus.yml").read_text())
    targets = {
        t.split(":")[0]
        for job in scrape["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    assert set(tinyim_services()) <= targets


def test_mysql_primary_and_replica_are_wired_for_gtid_replication() -> None:
    s = services()
    assert s["mysql-primary"]["image"] == s["mysql-replica"]["image"] == "${MYSQL_IMAGE:-mysql:8.0}"
    assert "--log-bin=mysql-bin" in s["mysql-primary"]["command"]
    assert "--gtid-mode=ON" in s["mysql-primary"]["command"]
    assert "--super-read-only=ON" in s["mysql-replica"]["command"]
    init = (DOCKER / "mysql" / "replica-init.sh").read_text()
    assert "SOURCE_HOST = 'mysql-primary'" in init and "SOURCE_AUTO_POSITION = 1" in init
    local = load(LOCAL)["services"]
    maria = (DOCKER / "local" / "mariadb" / "replica-init.sh").read_text()
    assert "MASTER_HOST = 'mysql-primary'" in maria and "MASTER_USE_GTID = slave_pos" in maria
    assert "--read-only=ON" in local["mysql-replica"]["command"]
    assert not any("gtid" in c for c in local["mysql-replica"]["command"])  # MySQL-only options


def compose_config(tmp_path: Path, *files: Path, **env: str) -> dict[str, Any]:
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in {**SECRETS, **URLS, **env}.items()))
    args = ["docker-compose", *(a for f in files for a in ("-f", str(f))), "--env-file", str(env_file)]
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run([*args, "config"], env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no docker-compose")


@needs_compose
def test_compose_file_is_valid_and_takes_everything_from_the_env_file(tmp_path: Path) -> None:
    config = compose_config(tmp_path, COMPOSE, GATEWAY_2_PORT="9443", BIND_ADDRESS="127.0.0.1")
    s = config["services"]
    assert s["gateway-1"]["environment"]["IM_PUBLIC_WS_URL"] == "wss://im.example.com/gw/1/ws"
    assert s["gateway-2"]["environment"]["IM_PUBLIC_WS_URL"] == "wss://im.example.com/gw/2/ws"
    assert s["gateway-2"]["ports"] == ["127.0.0.1:9443:8080/tcp"]
    assert s["auth"]["environment"]["IM_JWT_SECRET"] == SECRETS["IM_JWT_SECRET"]
    assert s["dispatch"]["environment"]["IM_DATABASE_URL"].startswith("mysql+asyncmy://tinyim:app-secret-2@")
    assert s["mysql-replica"]["environment"]["MYSQL_REPLICATION_PASSWORD"] == "repl-secret-3"
    # production keeps the official images
    assert (s["mysql-primary"]["image"], s["redis"]["image"]) == ("mysql:8.0", "redis:7")
    assert s["etcd"]["image"].startswith("quay.io/coreos/etcd:")


@needs_compose
def test_local_override_swaps_in_the_debian_images(tmp_path: Path) -> None:
    s = compose_config(tmp_path, COMPOSE, LOCAL)["services"]
    assert {s[n]["image"] for n in ("mysql-primary", "mysql-replica")} == {"tinyim-mariadb:local"}
    assert (s["redis"]["image"], s["etcd"]["image"]) == ("tinyim-redis:local", "tinyim-etcd:local")
    mounts = [v for v in s["mysql-replica"]["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    assert len(mounts) == 1 and "/local/mariadb/replica-init.sh:" in mounts[0]  # replaces MySQL's script


@needs_compose
def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], env=clean, capture_output=True, text=True
    )
    assert result.returncode != 0 and "in your env file" in result.stderr
