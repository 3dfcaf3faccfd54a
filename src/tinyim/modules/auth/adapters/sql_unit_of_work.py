"""SQL units of work for the auth module.

A unit of work is one transaction on the primary (`Database.write()`: on SQLite it also holds the
process's writer lock): the four stores it hands out run every statement in it.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, is_retryable
from tinyim.modules.auth.adapters.sql import (
    SqlAccounts,
    SqlDeviceSessions,
    SqlRefreshTokens,
    SqlRegistration,
)
from tinyim.modules.auth.ports import LostRace


class SqlAuthUnits:
    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(self) -> SqlAuthUnitOfWork:
        return SqlAuthUnitOfWork(self._db)


class SqlAuthUnitOfWork:
    accounts: SqlAccounts
    sessions: SqlDeviceSessions
    refresh_tokens: SqlRefreshTokens
    registration: SqlRegistration

    def __init__(self, db: Database) -> None:
        self._db = db
        self._stack = contextlib.AsyncExitStack()
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        conn = await self._stack.enter_async_context(self._db.write())
        self._conn = conn
        self.accounts = SqlAccounts(self._db, conn)
        self.sessions = SqlDeviceSessions(self._db, conn)
        self.refresh_tokens = SqlRefreshTokens(self._db, conn)
        self.registration = SqlRegistration(self._db, conn)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.rollback()  # nothing left to roll back after a commit
        finally:
            self._conn = None
            await self._stack.aclose()  # the connection goes back to the pool (and the writer lock)
        if exc is not None and is_retryable(exc):
            # e.g. two logins on one device at once (gap locks on MariaDB): the service runs it again
            raise LostRace(str(exc)) from exc

    async def commit(self) -> None:
        if self._conn is None or not self._conn.in_transaction():
            raise RuntimeError("this unit of work is over")
        await self._conn.commit()

    async def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()
