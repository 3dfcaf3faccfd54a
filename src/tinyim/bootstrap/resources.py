"""The core resources of a process (database, Redis, etcd, gRPC channels) and the secrets kept in its
data dir (the JWT secret, the /metrics token): what the containers are wired from, never wiring itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyim.infra.db import Database
from tinyim.infra.etcd import etcd_client
from tinyim.infra.redis import redis_client
from tinyim.infra.rpc import Channels
from tinyim.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def redis(settings: Settings) -> AsyncIterator[Redis | None]:
    if not settings.redis_url:
        yield None
        return
    async for client in redis_client(settings.redis_url):
        yield client


async def database(settings: Settings, uses_db: bool) -> AsyncIterator[Database]:
    """Engines connect lazily; replica health is watched only where a local service reads replicas
    (`uses_db`: this process runs a role whose local service uses the database)."""
    replicas = [u.strip() for u in settings.database_replica_urls.split(",") if u.strip()]
    db = Database(settings.effective_database_url, replicas)
    watcher = asyncio.create_task(db.watch_replicas()) if replicas and uses_db else None
    try:
        yield db
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await db.dispose()


async def etcd(settings: Settings) -> AsyncIterator[Any]:
    if not settings.etcd_endpoints:
        yield None
        return
    async for client in etcd_client(settings.etcd_endpoints):
        yield client


async def channels() -> AsyncIterator[Channels]:
    pool = Channels()
    try:
        yield pool
    finally:
        await pool.close()


def jwt_secret(settings: Settings) -> str:
    """IM_JWT_SECRET, else a random secret kept in the data dir so tokens survive a restart."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / "jwt.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def metrics_token(settings: Settings) -> str:
    """IM_METRICS_TOKEN, else a random token kept in the data dir (`metrics.token`, for the scraper)."""
    if settings.metrics_token:
        return settings.metrics_token
    path = Path(settings.data_dir) / "metrics.token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
