"""In-memory units of work for the auth module: the unit tests' fakes, keeping state as the SQL ones do.

A unit of work works on copies of the committed stores; commit puts the copies in their place, anything
else drops them. Units of work run one at a time (as SQLite's writers do).
"""

from __future__ import annotations

import asyncio
import copy
from types import TracebackType
from typing import Self

from tinyim.modules.auth.adapters.memory import (
    InMemoryAccounts,
    InMemoryDeviceSessions,
    InMemoryRefreshTokens,
    InMemoryRegistration,
)


class InMemoryAuthUnits:
    def __init__(
        self,
        accounts: InMemoryAccounts,
        sessions: InMemoryDeviceSessions,
        refresh_tokens: InMemoryRefreshTokens | None = None,
        registration: InMemoryRegistration | None = None,
    ) -> None:
        # the committed state (the service reads it outside units of work)
        self.accounts = accounts
        self.sessions = sessions
        self.refresh_tokens = refresh_tokens if refresh_tokens is not None else InMemoryRefreshTokens()
        self.registration = registration if registration is not None else InMemoryRegistration()
        self.commits = 0
        self.rollbacks = 0
        self._lock = asyncio.Lock()

    def begin(self) -> InMemoryAuthUnitOfWork:
        return InMemoryAuthUnitOfWork(self)


class InMemoryAuthUnitOfWork:
    accounts: InMemoryAccounts
    sessions: InMemoryDeviceSessions
    refresh_tokens: InMemoryRefreshTokens
    registration: InMemoryRegistration

    def __init__(self, units: InMemoryAuthUnits) -> None:
        self._units = units
        self._open = False

    async def __aenter__(self) -> Self:
        await self._units._lock.acquire()
        units = self._units
        self.accounts = copy.deepcopy(units.accounts)
        self.sessions = copy.deepcopy(units.sessions)
        self.refresh_tokens = copy.deepcopy(units.refresh_tokens)
        self.registration = copy.deepcopy(units.registration)
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._open:
                await self.rollback()
        finally:
            self._units._lock.release()

    async def commit(self) -> None:
        if not self._open:
            raise RuntimeError("this unit of work is over")
        # in place: whoever holds the committed stores (the service, a test) sees the new state
        units = self._units
        units.accounts.__dict__.update(self.accounts.__dict__)
        units.sessions.__dict__.update(self.sessions.__dict__)
        units.refresh_tokens.__dict__.update(self.refresh_tokens.__dict__)
        units.registration.__dict__.update(self.registration.__dict__)
        units.commits += 1
        self._open = False

    async def rollback(self) -> None:
        if self._open:
            self._units.rollbacks += 1
        self._open = False
