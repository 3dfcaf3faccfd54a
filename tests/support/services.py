"""Real backing services for integration and contract tests: a throwaway MariaDB database per session.

Missing services are skipped locally with a loud reason and FAIL when CI=true (DESIGN.md §7).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

MARIADB_HOST = os.environ.get("IM_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("IM_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("IM_TEST_MARIADB_USER", "root")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services are required, not optional)")
    pytest.skip(f"*** SKIPPED: {message} — start it to run these tests ***")


def mariadb_url(database: str) -> str:
    return f"mysql+asyncmy://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{database}"


def _admin(statement: str) -> None:
    async def run() -> None:
        engine = create_async_engine(mariadb_url(""), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


@contextmanager
def throwaway_mariadb() -> Iterator[str]:
    """Create a database with a random name, migrate it, yield its URL, drop it."""
    from tinyim.cli import migrate
    from tinyim.settings import Settings

    require_service("MariaDB", MARIADB_HOST, MARIADB_PORT)
    name = f"tinyim_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        migrate(Settings(database_url=mariadb_url(name)))
        yield mariadb_url(name)
    finally:
        _admin(f"DROP DATABASE IF EXISTS `{name}`")


REDIS_URL = os.environ.get("IM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    require_service("Redis", parsed.hostname or "127.0.0.1", parsed.port or 6379)
    return REDIS_URL


async def delete_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
