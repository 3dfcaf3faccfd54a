"""A throwaway MariaDB primary + replica pair (binlog/GTID replication) on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.server import free_port
from tinyim.infra.children import die_with_parent

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"


@dataclass
class Instance:
    datadir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "") -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/{database}"

    def start(self, server_id: int) -> None:
        log = open(self.datadir.parent / f"mariadbd-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.datadir}/mysqld.sock",
                f"--pid-file={self.datadir}/mysqld.pid",
                f"--server-id={server_id}",
                f"--log-bin={self.datadir}/binlog",
                "--binlog-format=ROW",
                "--user=root",
                "--innodb-buffer-pool-size=64M",
                "--skip-log-error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd on {self.port} exited with {self.proc.returncode}")
            try:
                sql(self.url(), "SELECT 1")
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError(f"mariadbd on {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def sql(url: str, *statements: str) -> list[dict[str, object]]:
    async def run() -> list[dict[str, object]]:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                rows: list[dict[str, object]] = []
                for statement in statements:
                    result = await conn.execute(text(statement))
                    rows = [dict(r) for r in result.mappings()] if result.returns_rows else []
                return rows
        finally:
            await engine.dispose()

    return asyncio.run(run())


@dataclass
class ReplicatedPair:
    primary: Instance
    replica: Instance
    database: str = "tinyim"

    def wait_replica_caught_up(self, timeout: float = 30) -> None:
        target = sql(self.primary.url(), "SELECT @@gtid_binlog_pos AS p")[0]["p"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sql(self.replica.url(), "SELECT @@gtid_slave_pos AS p")[0]["p"] == target:
                return
            time.sleep(0.1)
        raise TimeoutError("the replica did not catch up")


@contextmanager
def replicated_mariadb(workdir: Path) -> Iterator[ReplicatedPair]:
    if not (os.path.exists(MARIADBD) and os.path.exists(INSTALL_DB)):
        message = "mariadbd / mariadb-install-db are not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(f"*** SKIPPED: {message} ***")
    instances = []
    for name in ("primary", "replica"):
        datadir = workdir / name
        subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        instances.append(Instance(datadir, free_port()))
    pair = ReplicatedPair(instances[0], instances[1])
    try:
        pair.primary.start(server_id=1)
        pair.replica.start(server_id=2)
        sql(
            pair.replica.url(),
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={pair.primary.port}, MASTER_USER='root', "
            "MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos",
            "START SLAVE",
        )
        sql(pair.primary.url(), f"CREATE DATABASE {pair.database} CHARACTER SET utf8mb4")
        from tinyim.cli import migrate
        from tinyim.settings import Settings

        migrate(Settings(database_url=pair.primary.url(pair.database)))
        pair.wait_replica_caught_up()
        yield pair
    finally:
        for instance in instances:
            instance.kill()
