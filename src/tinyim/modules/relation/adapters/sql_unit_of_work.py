"""SQL units of work for the relation module, and its notice outbox (im_relation_outbox).

A unit of work is one transaction on the primary (`Database.write()`: on SQLite it also holds the
process's writer lock): the store and the outbox it hands out run every statement in it.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, SqlUnitOfWork
from tinyim.modules.relation.adapters.sql import SqlRelationStore, im_relation_outbox
from tinyim.modules.relation.domain import PendingNotice


class SqlNoticeOutbox:
    """The committed outbox, outside any unit of work (each call its own transaction)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def pending(self, limit: int) -> list[PendingNotice]:
        o = im_relation_outbox
        query = select(o).order_by(o.c.id).limit(limit)
        async with self._db.read(fresh=True) as conn:
            return [_notice(row) for row in await conn.execute(query)]

    async def remove(self, key: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(im_relation_outbox).where(im_relation_outbox.c.dedup_key == key))


class SqlOutboxWriter:
    """The outbox inside a unit of work: rows written in its transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.added: list[PendingNotice] = []

    async def add(self, notice: PendingNotice) -> None:
        await self._conn.execute(
            im_relation_outbox.insert().values(
                dedup_key=notice.key,
                sender_id=notice.sender_id,
                group_id=notice.group_id,
                receiver_ids=json.dumps(list(notice.receiver_ids)),
                friend_request=int(notice.friend_request),
                content=notice.content,
                created_at=func.now(),
            )
        )
        self.added.append(notice)


class SqlRelationUnits:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.outbox = SqlNoticeOutbox(db)

    def begin(self) -> SqlRelationUnitOfWork:
        return SqlRelationUnitOfWork(self._db)


class SqlRelationUnitOfWork(SqlUnitOfWork):
    """The relation store and the notice outbox on one transaction (a deadlock victim, e.g. a dissolve
    racing leaves, leaves as LostRace: the service runs the command again)."""

    store: SqlRelationStore
    outbox: SqlOutboxWriter

    def _bind(self, conn: AsyncConnection) -> None:
        self.store = SqlRelationStore(self._db, conn)
        self.outbox = SqlOutboxWriter(conn)


def _notice(row: object) -> PendingNotice:
    r = row
    return PendingNotice(
        r.dedup_key,  # type: ignore[attr-defined]
        int(r.sender_id),  # type: ignore[attr-defined]
        tuple(int(u) for u in json.loads(r.receiver_ids)),  # type: ignore[attr-defined]
        int(r.group_id),  # type: ignore[attr-defined]
        r.content,  # type: ignore[attr-defined]
        bool(r.friend_request),  # type: ignore[attr-defined]
    )
