"""SQL timeline store: `im_message_body`, `im_message_index`, and `im_user_seq` for gapless seqs.

Seqs come from a per-owner row, locked (`SELECT … FOR UPDATE`, owners in ascending order so concurrent
messages cannot deadlock each other) and bumped in the same transaction that writes the index rows. A later
seq of an owner therefore cannot commit before an earlier one: a reader that saw seq N has seen 1..N.
Statements per message, whatever the number of owners: insert body, lock seqs, bump seqs, insert index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra.db import Database, insert_ignore, is_unique_violation, metadata, retry_deadlocks
from tinyim.modules.timeline.domain import (
    Appended,
    Conversation,
    ConvType,
    MessageBody,
    StoredMessage,
    TimelineSlot,
    Unread,
)

im_message_body = Table(
    "im_message_body",
    metadata,
    Column("msg_id", BigInteger, primary_key=True, autoincrement=False),
    Column("sender_id", BigInteger, nullable=False),
    Column("group_id", BigInteger, nullable=False),
    Column("msg_type", SmallInteger, nullable=False),
    Column("msg_content", Text),
    Column("msg_extra", String(512)),
    Column("client_msg_id", String(64)),
    Column("created_at", DateTime),
)

im_message_index = Table(
    "im_message_index",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("owner_id", BigInteger, nullable=False),
    Column("other_id", BigInteger, nullable=False),
    Column("msg_id", BigInteger, nullable=False),
    Column("seq_id", BigInteger, nullable=False),
    Column("is_sender", SmallInteger, nullable=False),
    Column("conv_type", SmallInteger, nullable=False),
    Column("created_at", DateTime),
)

im_read_state = Table(
    "im_read_state",
    metadata,
    Column("owner_id", BigInteger, primary_key=True, autoincrement=False),
    Column("conv_type", SmallInteger, primary_key=True, autoincrement=False),
    Column("other_id", BigInteger, primary_key=True, autoincrement=False),
    Column("read_seq", BigInteger, nullable=False),
    Column("updated_at", DateTime),
)

im_user_seq = Table(
    "im_user_seq",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("max_seq", BigInteger, nullable=False),
)


_joined = select(
    im_message_index.c.seq_id,
    im_message_index.c.other_id,
    im_message_index.c.is_sender,
    im_message_body.c.msg_id,
    im_message_body.c.sender_id,
    im_message_body.c.group_id,
    im_message_body.c.msg_type,
    im_message_body.c.msg_content,
    im_message_body.c.client_msg_id,
).join(im_message_body, im_message_body.c.msg_id == im_message_index.c.msg_id)


def _stored(r: Any, owner_id: int) -> StoredMessage:
    return StoredMessage(
        seq_id=r.seq_id,
        msg_id=r.msg_id,
        sender_id=r.sender_id,
        receiver_id=0 if r.group_id else (r.other_id if r.is_sender else owner_id),
        group_id=r.group_id,
        msg_type=r.msg_type,
        content=r.msg_content or "",
        client_msg_id=r.client_msg_id or "",
        is_sender=bool(r.is_sender),
    )


async def insert_body(conn: AsyncConnection, body: MessageBody) -> None:
    await conn.execute(
        im_message_body.insert().values(
            msg_id=body.msg_id,
            sender_id=body.sender_id,
            group_id=body.group_id,
            msg_type=body.msg_type,
            msg_content=body.content,
            msg_extra="",
            client_msg_id=body.client_msg_id or None,
        )
    )


async def insert_index(
    conn: AsyncConnection, body: MessageBody, slots: Sequence[TimelineSlot], seqs: dict[int, int]
) -> None:
    """Every owner's index row in one multi-row INSERT, whatever the number of owners."""
    conv_type = ConvType.GROUP if body.group_id else ConvType.DIRECT
    rows = [
        {
            "owner_id": s.owner_id,
            "other_id": s.other_id,
            "msg_id": body.msg_id,
            "seq_id": seqs[s.owner_id],
            "is_sender": int(s.is_sender),
            "conv_type": conv_type,
        }
        for s in slots
    ]
    await conn.execute(im_message_index.insert(), rows)


class SqlTimelineStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        try:
            return await retry_deadlocks(lambda: self._append_once(body, slots))
        except IntegrityError as exc:
            if body.client_msg_id and is_unique_violation(exc):
                first = await self._find_sent(body.sender_id, body.client_msg_id)
                if first is not None:
                    return first
            raise

    async def _append_once(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        owners = sorted({s.owner_id for s in slots})
        async with self._db.write() as conn:
            # The body first: a retried client_msg_id fails here, before any seq row is locked.
            await insert_body(conn, body)
            lock = (
                select(im_user_seq.c.user_id, im_user_seq.c.max_seq)
                .where(im_user_seq.c.user_id.in_(owners))
                .order_by(im_user_seq.c.user_id)
                .with_for_update()
            )
            current = {row.user_id: row.max_seq for row in await conn.execute(lock)}
            missing = [o for o in owners if o not in current]
            if missing:  # an owner's first message ever: create the counter row, then lock it
                await conn.execute(
                    insert_ignore(conn, im_user_seq), [{"user_id": o, "max_seq": 0} for o in missing]
                )
                relock = lock.where(im_user_seq.c.user_id.in_(missing))
                current.update({row.user_id: row.max_seq for row in await conn.execute(relock)})
            await conn.execute(
                update(im_user_seq)
                .where(im_user_seq.c.user_id.in_(owners))
                .values(max_seq=im_user_seq.c.max_seq + 1)
            )
            seqs = {o: current[o] + 1 for o in owners}
            await insert_index(conn, body, slots, seqs)
        return Appended(body.msg_id, seqs)

    async def _find_sent(self, sender_id: int, client_msg_id: str) -> Appended | None:
        b, i = im_message_body, im_message_index
        query = (
            select(b.c.msg_id, i.c.seq_id, i.c.other_id, b.c.group_id, b.c.msg_type, b.c.msg_content)
            .join(i, (i.c.msg_id == b.c.msg_id) & (i.c.owner_id == b.c.sender_id))
            .where(b.c.sender_id == sender_id, b.c.client_msg_id == client_msg_id)
        )
        async with self._db.read(fresh=True) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        original = (row.other_id, row.group_id, row.msg_type, row.msg_content or "")
        return Appended(row.msg_id, {sender_id: row.seq_id}, duplicate=True, original=original)

    async def read(
        self, owner_id: int, after_seq: int, limit: int, min_seq: int = 0
    ) -> tuple[list[StoredMessage], bool]:
        i = im_message_index
        query = (
            _joined.where(i.c.owner_id == owner_id, i.c.seq_id > after_seq)
            .order_by(i.c.seq_id)
            .limit(limit + 1)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            from_replica = not self._db.is_primary(conn)
        reached = len(rows) > limit or (rows[-1].seq_id if rows else after_seq) >= min_seq
        if from_replica and not reached:  # the replica lags behind what the owner was told of
            async with self._db.read(fresh=True) as conn:
                rows = (await conn.execute(query)).all()
        return [_stored(r, owner_id) for r in rows[:limit]], len(rows) > limit

    async def history(
        self, owner_id: int, conversation: Conversation, before_seq: int, limit: int
    ) -> tuple[list[StoredMessage], bool]:
        i = im_message_index
        query = _joined.where(
            i.c.owner_id == owner_id,
            i.c.conv_type == conversation.conv_type,
            i.c.other_id == conversation.other_id,
        )
        if before_seq:
            query = query.where(i.c.seq_id < before_seq)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(i.c.seq_id.desc()).limit(limit + 1))).all()
        return [_stored(r, owner_id) for r in reversed(rows[:limit])], len(rows) > limit

    async def mark_read(self, owner_id: int, conversation: Conversation, read_seq: int) -> int:
        r = im_read_state
        key = (
            r.c.owner_id == owner_id,
            r.c.conv_type == conversation.conv_type,
            r.c.other_id == conversation.other_id,
        )
        async with self._db.write() as conn:
            await conn.execute(
                insert_ignore(conn, r).values(
                    owner_id=owner_id,
                    conv_type=conversation.conv_type,
                    other_id=conversation.other_id,
                    read_seq=0,
                )
            )
            await conn.execute(update(r).where(*key, r.c.read_seq < read_seq).values(read_seq=read_seq))
            return int(await conn.scalar(select(r.c.read_seq).where(*key)) or 0)

    async def unread(self, owner_id: int) -> list[Unread]:
        i, r = im_message_index, im_read_state
        read_seq = func.coalesce(r.c.read_seq, 0)
        query = (
            select(
                i.c.conv_type,
                i.c.other_id,
                func.count().label("n"),
                func.max(i.c.seq_id).label("last"),
                func.max(read_seq).label("read"),
            )
            .select_from(
                i.outerjoin(
                    r,
                    (r.c.owner_id == i.c.owner_id)
                    & (r.c.conv_type == i.c.conv_type)
                    & (r.c.other_id == i.c.other_id),
                )
            )
            .where(i.c.owner_id == owner_id, i.c.is_sender == 0, i.c.seq_id > read_seq)
            .group_by(i.c.conv_type, i.c.other_id)
            .order_by(i.c.conv_type, i.c.other_id)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            # int(): MariaDB answers DECIMAL for MAX over COALESCE
            Unread(
                Conversation(ConvType(row.conv_type), int(row.other_id)),
                int(row.n),
                int(row.last),
                int(row.read),
            )
            for row in rows
        ]

    async def max_seq(self, owner_id: int) -> int:
        # From the primary: mark_read checks a just-delivered seq against it, a replica may lag.
        async with self._db.read(fresh=True) as conn:
            value = await conn.scalar(select(im_user_seq.c.max_seq).where(im_user_seq.c.user_id == owner_id))
        return int(value or 0)
