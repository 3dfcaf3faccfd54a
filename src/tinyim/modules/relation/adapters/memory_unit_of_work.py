"""In-memory units of work and outbox: the unit tests' fakes, keeping state as the SQL ones do.

A unit of work works on a copy of the committed store and outbox; commit puts the copy in their place,
anything else drops it. Units of work run one at a time (as SQLite's writers do).
"""

from __future__ import annotations

import asyncio
import copy
from types import TracebackType
from typing import Self

from tinyim.modules.relation.adapters.memory import InMemoryRelationStore
from tinyim.modules.relation.domain import PendingNotice


class InMemoryNoticeOutbox:
    """The committed outbox: notices waiting for delivery, oldest first."""

    def __init__(self) -> None:
        self.rows: list[PendingNotice] = []

    async def pending(self, limit: int) -> list[PendingNotice]:
        return self.rows[:limit]

    async def remove(self, key: str) -> None:
        self.rows = [n for n in self.rows if n.key != key]


class InMemoryOutboxWriter:
    def __init__(self) -> None:
        self.added: list[PendingNotice] = []

    async def add(self, notice: PendingNotice) -> None:
        self.added.append(notice)


class InMemoryRelationUnits:
    def __init__(self, store: InMemoryRelationStore, outbox: InMemoryNoticeOutbox | None = None) -> None:
        self.store = store  # the committed state (the service reads it outside units of work)
        self.outbox = outbox if outbox is not None else InMemoryNoticeOutbox()
        self.commits = 0
        self.rollbacks = 0
        self._lock = asyncio.Lock()

    def begin(self) -> InMemoryRelationUnitOfWork:
        return InMemoryRelationUnitOfWork(self)


class InMemoryRelationUnitOfWork:
    store: InMemoryRelationStore
    outbox: InMemoryOutboxWriter

    def __init__(self, units: InMemoryRelationUnits) -> None:
        self._units = units
        self._open = False

    async def __aenter__(self) -> Self:
        await self._units._lock.acquire()
        self.store = copy.deepcopy(self._units.store)
        self.outbox = InMemoryOutboxWriter()
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
        # in place: whoever holds the committed store (the service, a test) sees the new state
        self._units.store.__dict__.update(self.store.__dict__)
        self._units.outbox.rows.extend(self.outbox.added)
        self._units.commits += 1
        self._open = False

    async def rollback(self) -> None:
        if self._open:
            self._units.rollbacks += 1
        self._open = False
