"""SQL engines for the adapters: one writer (primary) engine and reader engines, created in lifespan.

SQLite (the embedded default) allows one writer at a time; `write()` serialises writers in-process so a
transaction never fails half-way with "database is locked", and WAL lets readers run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import MetaData, event
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Insert
from sqlalchemy.sql.schema import Table

from tinyim.infra import metrics

T = TypeVar("T")

# Table mirrors used by the adapters; the schema itself is owned by migrations/.
metadata = MetaData()


class Database:
    def __init__(self, url: str, replica_urls: Sequence[str] = (), pool_size: int = 16) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.writer = _make_engine(url, pool_size)
        self.readers = [_make_engine(u, pool_size) for u in replica_urls]
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the primary; committed when the block exits without an exception."""
        if self._write_lock is None:
            async with self.writer.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.writer.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self, fresh: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read on a replica, or on the primary when `fresh` (read-after-write) or none is configured.

        Replica choice, lag checks and fallback are the storage issue's; until then this is the primary.
        """
        async with self.writer.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.writer.dispose()
        for engine in self.readers:
            await engine.dispose()


def _count_round_trips(engine: AsyncEngine) -> None:
    """Statements and commits, exposed on /metrics: the benchmarks report them per message."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _statement(*_args: Any) -> None:
        metrics.DB_STATEMENTS.inc()

    @event.listens_for(engine.sync_engine, "commit")
    def _commit(*_args: Any) -> None:
        metrics.DB_COMMITS.inc()


def _make_engine(url: str, pool_size: int) -> AsyncEngine:
    engine = _new_engine(url, pool_size)
    _count_round_trips(engine)
    return engine


def _new_engine(url: str, pool_size: int) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # an ack means the rows survive a power cut
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600, pool_pre_ping=True
    )


def insert_ignore(conn: AsyncConnection, table: Table) -> Insert:
    """INSERT that skips rows whose unique key exists (MySQL `INSERT IGNORE`, SQLite `OR IGNORE`)."""
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if conn.dialect.name in ("mysql", "mariadb"):
        return mysql.insert(table).prefix_with("IGNORE")
    raise NotImplementedError(conn.dialect.name)


def upsert(conn: AsyncConnection, table: Table, keys: Sequence[str], values: Mapping[str, Any]) -> Insert:
    """INSERT … ON DUPLICATE KEY UPDATE (MySQL) / ON CONFLICT DO UPDATE (SQLite) of the non-key columns."""
    update = {k: v for k, v in values.items() if k not in keys}
    if conn.dialect.name == "sqlite":
        ins = sqlite.insert(table).values(**values)
        return ins.on_conflict_do_update(index_elements=list(keys), set_=update)
    if conn.dialect.name in ("mysql", "mariadb"):
        return mysql.insert(table).values(**values).on_duplicate_key_update(**update)
    raise NotImplementedError(conn.dialect.name)


def is_unique_violation(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate" in text or "1062" in text


_RETRYABLE = ("1213", "1205", "deadlock", "lock wait timeout")


async def retry_deadlocks(attempt: Callable[[], Awaitable[T]], tries: int = 5) -> T:
    """Run a whole transaction again when the database chose it as a deadlock victim."""
    for n in range(tries):
        try:
            return await attempt()
        except OperationalError as exc:
            if n == tries - 1 or not any(s in str(exc.orig).lower() for s in _RETRYABLE):
                raise
            await asyncio.sleep(0.005 * (2**n) * (1 + random.random()))
    raise AssertionError("unreachable")
