"""Operator commands: `tinyim --version`, `tinyim config` (effective settings, secrets masked) and
`tinyim doctor` (checks what the configuration points at and says in plain words what is wrong)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import shutil
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tinyim.settings import Settings

SECRET_FIELDS = frozenset({"jwt_secret", "admin_token", "metrics_token"})
# The least a process should be allowed to open: one fd per client connection plus pools and files.
MIN_FD_LIMIT = 4096


def version() -> str:
    try:
        return metadata.version("tinyim")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def mask_url(url: str) -> str:
    """A URL without its password (user names stay: they help to tell deployments apart)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def effective_config(settings: Settings) -> dict[str, Any]:
    """Every setting as this process sees it, as IM_* names; secrets and URL passwords masked."""
    out: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        if name in SECRET_FIELDS:
            value = "***" if value else ""
        elif name.endswith(("_url", "_urls")) and isinstance(value, str):
            value = ",".join(mask_url(u.strip()) for u in value.split(",")) if value else ""
        elif isinstance(value, Path):
            value = str(value)
        out[f"IM_{name.upper()}"] = value
    return out


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str


Check = Callable[[Settings], Awaitable[Finding]]


async def check_database(settings: Settings) -> Finding:
    from sqlalchemy import text

    from tinyim.infra.db import Database

    url = settings.effective_database_url
    db = Database(url)
    try:
        async with asyncio.timeout(5), db.writer.connect() as conn:
            await conn.execute(text("SELECT 1"))
            version_row = None
            with contextlib.suppress(Exception):
                version_row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
    except Exception as exc:
        return Finding("database", False, f"cannot reach {mask_url(url)}: {_reason(exc)}")
    finally:
        await db.dispose()
    if version_row is None:
        return Finding("database", False, f"{mask_url(url)} answers but has no schema: run `tinyim migrate`")
    return Finding("database", True, f"{mask_url(url)} answers, schema at revision {version_row[0]}")


async def check_replicas(settings: Settings) -> Finding:
    urls = [u.strip() for u in settings.database_replica_urls.split(",") if u.strip()]
    if not urls:
        return Finding("replicas", True, "none configured (reads go to the primary)")
    from tinyim.infra.db import Database

    db = Database(settings.effective_database_url, urls)
    try:
        await asyncio.wait_for(db.check_replicas(), 10)
    finally:
        await db.dispose()
    bad = [mask_url(u) for u, ok in zip(urls, db.healthy, strict=True) if not ok]
    if bad:
        return Finding("replicas", False, f"not usable (down, not replicating or lagging): {', '.join(bad)}")
    return Finding("replicas", True, f"{len(urls)} replica(s) replicating within the lag limit")


async def check_redis(settings: Settings) -> Finding:
    if not settings.redis_url:
        return Finding("redis", True, "not configured (one process keeps presence and caches in memory)")
    from tinyim.infra.extras import REDIS, require

    require(REDIS, "IM_REDIS_URL")  # a missing [redis] extra is named as such
    from redis.asyncio import Redis

    client = Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        return Finding("redis", False, f"cannot reach {mask_url(settings.redis_url)}: {_reason(exc)}")
    finally:
        await client.aclose()
    return Finding("redis", True, f"{mask_url(settings.redis_url)} answers PING")


async def check_registry(settings: Settings) -> Finding:
    if not settings.etcd_endpoints:
        if not settings.redis_url:
            return Finding("registry", True, "none (one process needs none)")
        return Finding("registry", True, "nodes register in Redis")
    from tinyim.infra.etcd import etcd_client

    try:
        async with asyncio.timeout(8):
            async for _client in etcd_client(settings.etcd_endpoints):
                break
    except Exception as exc:
        return Finding(
            "registry", False, f"no etcd endpoint of {settings.etcd_endpoints} answers: {_reason(exc)}"
        )
    return Finding("registry", True, f"etcd at {settings.etcd_endpoints} answers")


def _probe_data_dir(path: Path) -> Finding:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".doctor-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Finding("data dir", False, f"{path} is not writable: {exc.strerror or exc}")
    free = shutil.disk_usage(path).free
    if free < 1 << 30:
        return Finding(
            "data dir", False, f"{path} has only {free >> 20} MiB free (files and SQLite live here)"
        )
    return Finding("data dir", True, f"{path} is writable, {free >> 30} GiB free")


async def check_data_dir(settings: Settings) -> Finding:
    return await asyncio.to_thread(_probe_data_dir, Path(settings.data_dir))


async def check_ports(settings: Settings) -> Finding:
    """The ports this process would listen on are free (run before starting it)."""
    wanted = {"HTTP": settings.http_port, "file": settings.file_port}
    if settings.roles != "all":
        wanted["gRPC"] = settings.effective_grpc_port
    taken = []
    for label, port in wanted.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((settings.host, port))
            except OSError as exc:
                why = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                taken.append(f"{label} {settings.host}:{port} ({why})")
    if taken:
        return Finding("ports", False, "cannot listen on " + ", ".join(taken))
    return Finding("ports", True, ", ".join(f"{k} {settings.host}:{v}" for k, v in wanted.items()) + " free")


async def check_fd_limit(settings: Settings) -> Finding:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < MIN_FD_LIMIT:
        return Finding(
            "fd limit",
            False,
            f"at most {hard} open files: each client connection needs one; raise `ulimit -n`",
        )
    return Finding("fd limit", True, f"{soft} open files now; the server raises it to {hard} at start")


CHECKS: tuple[Check, ...] = (
    check_data_dir,
    check_database,
    check_replicas,
    check_redis,
    check_registry,
    check_ports,
    check_fd_limit,
)


async def doctor(settings: Settings, checks: tuple[Check, ...] = CHECKS) -> list[Finding]:
    findings = []
    for check in checks:
        try:
            finding = await check(settings)
        except Exception as exc:  # a check that breaks is itself a finding, never a traceback
            finding = Finding(check.__name__.removeprefix("check_"), False, f"check failed: {_reason(exc)}")
        findings.append(finding)
    return findings


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
