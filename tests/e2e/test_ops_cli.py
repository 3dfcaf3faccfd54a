"""Operator commands as a person runs them: --version, config (secrets masked, env file), doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.server import free_port

TINYIM = str(Path(sys.executable).with_name("tinyim"))


def tinyim(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IM_")}
    return subprocess.run(
        [TINYIM, *args], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_version_names_the_installed_package(tmp_path: Path) -> None:
    from importlib.metadata import version

    out = tinyim("--version", env={}, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"tinyim {version('tinyim')}"


def test_config_reads_the_env_file_and_masks_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "IM_JWT_SECRET=very-secret-value-0123456789abcdef\n"
        "IM_DATABASE_URL=mysql+asyncmy://tinyim:db-password-42@db.internal:3306/tinyim\n"
        "IM_HTTP_PORT=9999\n"
    )
    out = tinyim("config", "--json", env={"IM_ENV_FILE": str(env_file), "IM_HTTP_PORT": "7777"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    assert config["IM_HTTP_PORT"] == 7777  # the environment wins over the file
    assert config["IM_JWT_SECRET"] == "***"
    assert config["IM_DATABASE_URL"] == "mysql+asyncmy://tinyim:***@db.internal:3306/tinyim"
    assert "very-secret" not in out.stdout and "db-password-42" not in out.stdout
    # ./.env is read when IM_ENV_FILE is not set
    (tmp_path / ".env").write_text("IM_HTTP_PORT=8181\n")
    assert "IM_HTTP_PORT=8181" in tinyim("config", env={}, cwd=tmp_path).stdout.splitlines()
    missing = tinyim("config", env={"IM_ENV_FILE": str(tmp_path / "nope.env")}, cwd=tmp_path)
    assert missing.returncode == 2 and "nope.env" in missing.stderr


def test_doctor_passes_on_a_migrated_setup_and_names_a_stopped_redis(tmp_path: Path) -> None:
    env = {
        "IM_DATA_DIR": str(tmp_path / "data"),
        "IM_HTTP_PORT": str(free_port()),
        "IM_FILE_PORT": str(free_port()),
    }
    before = tinyim("doctor", env=env, cwd=tmp_path)
    assert before.returncode == 1 and "run `tinyim migrate`" in before.stdout
    assert tinyim("migrate", env=env, cwd=tmp_path).returncode == 0
    ok = tinyim("doctor", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    stopped = free_port()  # nothing listens there
    out = tinyim("doctor", env={**env, "IM_REDIS_URL": f"redis://127.0.0.1:{stopped}/0"}, cwd=tmp_path)
    assert out.returncode == 1
    [line] = [x for x in out.stdout.splitlines() if x.startswith("FAIL")]
    assert line.startswith("FAIL redis") and f"127.0.0.1:{stopped}" in line
    assert "Traceback" not in out.stdout + out.stderr
