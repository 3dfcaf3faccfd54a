"""SQL units of work for the auth module.

A unit of work is one transaction on the primary (`Database.write()`: on SQLite it also holds the
process's writer lock): the four stores it hands out run every statement in it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, SqlUnitOfWork
from tinyim.modules.auth.adapters.sql import (
    SqlAccounts,
    SqlDeviceSessions,
    SqlRefreshTokens,
    SqlRegistration,
)


class SqlAuthUnits:
    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(self) -> SqlAuthUnitOfWork:
        return SqlAuthUnitOfWork(self._db)


class SqlAuthUnitOfWork(SqlUnitOfWork):
    """Accounts, sessions, refresh tokens and registration on one transaction (a deadlock victim, e.g. two
    logins on one device at once, leaves as LostRace: the service runs the command again)."""

    accounts: SqlAccounts
    sessions: SqlDeviceSessions
    refresh_tokens: SqlRefreshTokens
    registration: SqlRegistration

    def _bind(self, conn: AsyncConnection) -> None:
        self.accounts = SqlAccounts(self._db, conn)
        self.sessions = SqlDeviceSessions(self._db, conn)
        self.refresh_tokens = SqlRefreshTokens(self._db, conn)
        self.registration = SqlRegistration(self._db, conn)
