"""`tinyim backup DIR` and `tinyim restore-check DIR`: a backup of the database and the data directory,
and a check that it restores.

A backup directory holds the database (SQLite: a copy made with SQLite's online backup API; MySQL or
MariaDB: a `--single-transaction` dump), `data.tar` with the data directory (files, JWT secret; the SQLite
file is left out, it is copied above) and `manifest.json` (schema revision, row counts before and after
the dump, the data files' SHA-256).

`restore-check` restores into a fresh scratch database (a temporary SQLite file, or a new MySQL/MariaDB
database that it drops afterwards), checks the schema is at the migrations' head with every table of the
backup present, compares row counts with the manifest, and checks the data archive; it never touches the
live database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from tinyim.settings import Settings

MANIFEST = "manifest.json"
SQLITE_COPY = "tinyim.sqlite3"
DUMP = "database.sql"
DATA_TAR = "data.tar"


class BackupError(RuntimeError):
    pass


@dataclass
class Report:
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def check(self, ok: bool, line: str) -> None:
        self.ok = self.ok and ok
        self.lines.append(f"{'ok  ' if ok else 'FAIL'} {line}")


# --- database helpers -----------------------------------------------------------------------------


async def _counts(url: str) -> tuple[str, dict[str, int]]:
    """The schema revision and the row count of every table."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            counts = {}
            for table in sorted(tables):
                counts[table] = int((await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one())
            revision = ""
            if "alembic_version" in tables:
                revision = str(
                    (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
                )
    finally:
        await engine.dispose()
    return revision, counts


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from tinyim.cli import _alembic_config

    script = ScriptDirectory.from_config(_alembic_config(Settings()))  # type: ignore[arg-type]
    head = script.get_current_head()
    if head is None:
        raise BackupError("the migrations have no head revision")
    return head


@dataclass(frozen=True)
class MysqlTarget:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url: str) -> MysqlTarget:
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/").split("?")[0],
        )

    def args(self) -> list[str]:
        return [f"--host={self.host}", f"--port={self.port}", f"--user={self.user}"]

    def env(self) -> dict[str, str]:
        return {**os.environ, "MYSQL_PWD": self.password}  # never on a command line (ps shows it)

    def url(self, database: str) -> str:
        scheme = "mysql+asyncmy"
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{database}"


def _client(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(f"none of {', '.join(names)} is installed (the MySQL/MariaDB client tools)")


def _run(cmd: list[str], env: dict[str, str], stdin: Any = None, stdout: Any = None) -> None:
    done = subprocess.run(cmd, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed: {done.stderr.decode(errors='replace').strip()}")


# --- backup ---------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive_data_dir(data_dir: Path, out: Path, skip: set[Path]) -> dict[str, str]:
    """data.tar of the data directory (the live SQLite files excluded); returns name -> SHA-256."""
    sums: dict[str, str] = {}
    with tarfile.open(out, "w") as tar:
        for path in sorted(data_dir.rglob("*")) if data_dir.exists() else []:
            if not path.is_file() or path in skip or path.name.startswith(SQLITE_COPY):
                continue
            name = path.relative_to(data_dir).as_posix()
            tar.add(path, arcname=name)
            sums[name] = _sha256(path)
    return sums


def backup(settings: Settings, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BackupError(f"{out} is not empty: a backup goes into a new directory")
    url = settings.effective_database_url
    before = asyncio.run(_counts(url))
    if url.startswith("sqlite"):
        live = Path(url.split(":///", 1)[1])
        source = sqlite3.connect(live)
        target = sqlite3.connect(out / SQLITE_COPY)
        try:
            source.backup(target)  # a consistent copy while the server keeps writing
        finally:
            target.close()
            source.close()
        kind = "sqlite"
        skip = {live, live.with_name(live.name + "-wal"), live.with_name(live.name + "-shm")}
    else:
        db = MysqlTarget.parse(url)
        dump = _client("mariadb-dump", "mysqldump")
        with (out / DUMP).open("wb") as f:
            _run(
                [dump, *db.args(), "--single-transaction", "--quick", "--no-tablespaces",
                 "--skip-lock-tables", "--routines", "--triggers", db.database],
                db.env(), stdout=f,
            )  # fmt: skip
        kind = "mysql"
        skip = set()
    after = asyncio.run(_counts(url))
    files = _archive_data_dir(Path(settings.data_dir), out / DATA_TAR, skip)
    manifest = {
        "kind": kind,
        "revision": before[0],
        "rows_before": before[1],
        "rows_after": after[1],
        "data_files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


# --- restore check --------------------------------------------------------------------------------


def restore_check(settings: Settings, src: Path) -> Report:
    report = Report()
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        report.check(False, f"no readable {MANIFEST} in {src}: {exc}")
        return report
    with tempfile.TemporaryDirectory(prefix="tinyim-restore-") as scratch:
        if manifest["kind"] == "sqlite":
            restored = Path(scratch) / SQLITE_COPY
            shutil.copyfile(src / SQLITE_COPY, restored)
            _check_database(report, f"sqlite+aiosqlite:///{restored}", manifest)
        else:
            _restore_mysql(report, settings, src, manifest)
        _check_data(report, src, Path(scratch) / "data", manifest)
    return report


def _restore_mysql(report: Report, settings: Settings, src: Path, manifest: dict[str, Any]) -> None:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        report.check(False, "a MySQL/MariaDB backup needs IM_DATABASE_URL of a server to restore into")
        return
    server = MysqlTarget.parse(url)
    scratch = f"tinyim_restore_check_{uuid.uuid4().hex[:10]}"
    client = _client("mariadb", "mysql")
    _run([client, *server.args(), "-e", f"CREATE DATABASE `{scratch}` CHARACTER SET utf8mb4"], server.env())
    try:
        with (src / DUMP).open("rb") as f:
            _run([client, *server.args(), scratch], server.env(), stdin=f)
        report.check(True, f"dump restored into the scratch database {scratch}")
        _check_database(report, server.url(scratch), manifest)
    finally:
        _run([client, *server.args(), "-e", f"DROP DATABASE IF EXISTS `{scratch}`"], server.env())


def _check_database(report: Report, url: str, manifest: dict[str, Any]) -> None:
    revision, counts = asyncio.run(_counts(url))
    head = _head_revision()
    report.check(revision == head, f"schema at revision {revision or 'none'} (migrations' head: {head})")
    report.check(*_schema_matches_code(url))
    expected = set(manifest["rows_before"])
    missing = expected - set(counts)
    report.check(
        not missing, f"{len(expected)} tables present" + (f"; missing {sorted(missing)}" if missing else "")
    )
    quiet = manifest["rows_before"] == manifest["rows_after"]
    for table in sorted(expected & set(counts)):
        low, high = sorted((manifest["rows_before"][table], manifest["rows_after"][table]))
        ok = low <= counts[table] <= high if quiet else True
        note = "" if quiet else " (the database changed during the dump: counts not compared)"
        if table != "alembic_version":
            report.check(ok, f"{table}: {counts[table]} rows (at backup: {low}-{high}){note}")


def _schema_matches_code(url: str) -> tuple[bool, str]:
    """`alembic check` on the restored database: its tables, columns and keys are what the code uses."""
    from alembic import command
    from alembic.util.exc import AutogenerateDiffsDetected

    from tinyim.cli import _alembic_config

    try:
        command.check(_alembic_config(Settings(database_url=url)))  # type: ignore[arg-type]
    except AutogenerateDiffsDetected as exc:
        return False, f"schema differs from the code (alembic check): {str(exc)[:300]}"
    return True, "schema matches the code (alembic check)"


def _check_data(report: Report, src: Path, into: Path, manifest: dict[str, Any]) -> None:
    into.mkdir()
    with tarfile.open(src / DATA_TAR) as tar:
        tar.extractall(into, filter="data")  # refuses absolute paths and links out of the folder
    wrong = [
        n
        for n, digest in manifest["data_files"].items()
        if not (into / n).is_file() or _sha256(into / n) != digest
    ]
    report.check(
        not wrong,
        f"{len(manifest['data_files'])} data files match their SHA-256"
        + (f"; bad: {wrong[:5]}" if wrong else ""),
    )
