"""The locked-row seq allocator: one `im_user_seq` row per owner, locked (`SELECT … FOR UPDATE`, owners in
ascending order so concurrent messages cannot deadlock each other) and bumped in the transaction that writes
the index rows. A later seq of an owner therefore cannot commit before an earlier one: a reader that saw seq
N has seen 1..N. Statements: lock seqs, bump seqs (a batch: the same two; on MariaDB one, with RETURNING).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Table, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, MultiRow, fetch_rows, insert_ignore, metadata
from tinyim.modules.timeline.domain import StoredMessage
from tinyim.modules.timeline.ports import SeqStatement

im_user_seq = Table(
    "im_user_seq",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("max_seq", BigInteger, nullable=False),
)

_MAX_SEQ_SQL = "SELECT max_seq FROM im_user_seq WHERE user_id = %s"


async def lock_seqs(conn: AsyncConnection, owners: Sequence[int]) -> dict[int, int]:
    """`SELECT … FOR UPDATE` of the owners' seq rows in ascending owner order (so concurrent writers,
    in this process or another, cannot deadlock each other), creating the missing ones; their max_seq."""
    lock = (
        select(im_user_seq.c.user_id, im_user_seq.c.max_seq)
        .where(im_user_seq.c.user_id.in_(owners))
        .order_by(im_user_seq.c.user_id)
        .with_for_update()
    )
    current = {int(row.user_id): int(row.max_seq) for row in await conn.execute(lock)}
    missing = [o for o in owners if o not in current]
    if missing:  # an owner's first message ever: create the counter row, then lock it
        await conn.execute(insert_ignore(conn, im_user_seq), [{"user_id": o, "max_seq": 0} for o in missing])
        relock = lock.where(im_user_seq.c.user_id.in_(missing))
        current.update({int(row.user_id): int(row.max_seq) for row in await conn.execute(relock)})
    return current


_SEQ_UPSERTS: dict[str, Any] = {}


def seq_upsert(dialect: str) -> Any:
    """Set many owners' max_seq in one multi-row statement (their rows exist and are locked)."""
    stmt = _SEQ_UPSERTS.get(dialect)
    if stmt is None:
        if dialect == "sqlite":
            ins: Any = sqlite.insert(im_user_seq)
            stmt = ins.on_conflict_do_update(
                index_elements=["user_id"], set_={"max_seq": ins.excluded.max_seq}
            )
        else:
            ins = mysql.insert(im_user_seq)
            stmt = ins.on_duplicate_key_update(max_seq=ins.inserted.max_seq)
        _SEQ_UPSERTS[dialect] = stmt
    return stmt


def seq_bump(dialect: str) -> Any:
    """Add each row's max_seq to the owner's counter, creating it (MariaDB reads the result back with
    RETURNING: the row is locked, bumped and read in one statement)."""
    ins = mysql.insert(im_user_seq)
    return ins.on_duplicate_key_update(max_seq=im_user_seq.c.max_seq + ins.inserted.max_seq)


_SEQ_BUMP = MultiRow(seq_bump, ["user_id", "max_seq"], returning=" RETURNING user_id, max_seq")


class LockedRowSeqAllocator:
    """Gapless as it commits: a seq's row stays locked until its transaction ends."""

    batches = True
    txn_timeout: float | None = None

    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(self, tx: AsyncConnection, owners: Sequence[int]) -> dict[int, int]:
        """Lock the owners' seq rows in ascending order (concurrent messages cannot deadlock), bump them."""
        current = await lock_seqs(tx, owners)
        await tx.execute(
            update(im_user_seq)
            .where(im_user_seq.c.user_id.in_(owners))
            .values(max_seq=im_user_seq.c.max_seq + 1)
        )
        return {o: current[o] + 1 for o in owners}

    async def take_many(self, tx: AsyncConnection, counts: Mapping[int, int]) -> dict[int, int]:
        bump = await self.take_many_statement(tx, counts)
        if bump is not None:
            return bump.read(await fetch_rows(tx, None, bump.sql, None))
        owners = sorted(counts)  # rows locked in ascending owner order: concurrent writers never deadlock
        top = await lock_seqs(tx, owners)
        await tx.execute(
            seq_upsert(tx.dialect.name), [{"user_id": o, "max_seq": top[o] + counts[o]} for o in owners]
        )
        return top

    async def take_many_statement(
        self, tx: AsyncConnection, counts: Mapping[int, int]
    ) -> SeqStatement | None:
        """MariaDB: lock, bump and read every owner's counter in ONE statement (RETURNING); rows locked in
        ascending owner order, so concurrent writers never deadlock."""
        if not getattr(tx.dialect, "is_mariadb", False):
            return None
        sql = await _SEQ_BUMP.text(tx, [(o, counts[o]) for o in sorted(counts)])
        return SeqStatement(sql, lambda rows: {int(u): int(seq) - counts[int(u)] for u, seq in rows})

    async def collided(self, owners: Sequence[int]) -> bool:
        return False  # a locked row never hands out a seq twice

    async def abandon(self, taken: Mapping[int, range], taken_at: float) -> None:
        return None  # the rollback gave the row's seqs back

    async def visible(
        self, owner_id: int, page: list[StoredMessage], after_seq: int, more: bool
    ) -> tuple[list[StoredMessage], bool]:
        return page, more  # no holes: a later seq never commits before an earlier one

    async def max_seq(self, owner_id: int) -> int:
        # From the primary: mark_read checks a just-delivered seq against it, a replica may lag.
        query = select(im_user_seq.c.max_seq).where(im_user_seq.c.user_id == owner_id)

        async def run(conn: AsyncConnection) -> int:
            rows = await fetch_rows(conn, query, _MAX_SEQ_SQL, (owner_id,))
            return int(rows[0][0]) if rows else 0

        return await self._db.hot_read(run)
