"""`tinyim backup` and `tinyim restore-check` as an operator runs them, on SQLite and on MariaDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.services import throwaway_mariadb

TINYIM = str(Path(sys.executable).with_name("tinyim"))


def tinyim(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IM_")}
    return subprocess.run([TINYIM, *args], env={**clean, **env}, capture_output=True, text=True, timeout=120)


@pytest.fixture(params=["sqlite", "mariadb"])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {"IM_DATA_DIR": str(tmp_path / "data"), "IM_JWT_SECRET": "j" * 40}
    if request.param == "sqlite":
        yield env
    else:
        with throwaway_mariadb() as url:
            yield {**env, "IM_DATABASE_URL": url}


def populate(env: dict[str, str], data_dir: Path) -> None:
    """Users and sessions written by a real server, plus a file in the data dir."""
    server = ServerProcess(data_dir, env=env).start()
    try:
        for name in ("ann", "bob", "cyd"):
            r = httpx.post(
                f"{server.base_url}/api/register",
                json={"username": name, "password": "pw-123456", "nickname": name},
            )
            assert r.status_code == 201, r.text
            r = httpx.post(
                f"{server.base_url}/api/login",
                json={"username": name, "password": "pw-123456", "device_id": "PC"},
            )
            assert r.status_code == 200, r.text
    finally:
        server.stop()
    (data_dir / "files").mkdir(exist_ok=True)
    (data_dir / "files" / "blob.bin").write_bytes(os.urandom(4096))


def test_a_backup_restores_with_every_row_and_file(database_env: dict[str, str], tmp_path: Path) -> None:
    data_dir = Path(database_env["IM_DATA_DIR"])
    populate(database_env, data_dir)
    out = tmp_path / "backup"
    made = tinyim("backup", str(out), env=database_env)
    assert made.returncode == 0, made.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_after"]["im_user"] == 3 and "files/blob.bin" in manifest["data_files"]

    checked = tinyim("restore-check", str(out), env=database_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "im_user: 3 rows" in checked.stdout and "restore check passed" in checked.stdout
    assert "schema matches the code (alembic check)" in checked.stdout

    again = tinyim("backup", str(out), env=database_env)  # never over an older backup
    assert again.returncode == 1 and "not empty" in again.stderr


def test_a_damaged_backup_fails_the_check(tmp_path: Path) -> None:
    env = {"IM_DATA_DIR": str(tmp_path / "data"), "IM_JWT_SECRET": "j" * 40}
    populate(env, Path(env["IM_DATA_DIR"]))
    out = tmp_path / "backup"
    assert tinyim("backup", str(out), env=env).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["rows_before"]["im_user"] = manifest["rows_after"]["im_user"] = 4  # a row went missing
    manifest["data_files"]["files/blob.bin"] = "0" * 64  # and a file changed
    (out / "manifest.json").write_text(json.dumps(manifest))
    checked = tinyim("restore-check", str(out), env=env)
    assert checked.returncode == 1
    failed = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
    assert any("im_user" in line for line in failed) and any("SHA-256" in line for line in failed)
