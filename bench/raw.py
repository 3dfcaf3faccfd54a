"""The raw baseline: the rows a message writes, inserted straight through the driver, no server between.

Each transaction writes one body row and the index rows `index_rows(writer, msg_id)` gives, in one
multi-row INSERT; `concurrency` writers run at once, `per_writer` transactions each. Returns txn/s.
`raw_mariadb(..., seqs=True)` also takes each owner's seq the way the SQL timeline does: lock the owners'
`im_user_seq` rows in ascending order (SELECT … FOR UPDATE), bump them, in the same transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

# (owner_id, other_id, msg_id, seq_id, is_sender, conv_type)
IndexRow = tuple[int, int, int, int, int, int]
IndexRows = Callable[[int, int], list[IndexRow]]

BODY = (
    "INSERT INTO im_message_body (msg_id, sender_id, group_id, msg_type, msg_content) "
    "VALUES ({p}, {p}, {p}, 0, {p})"
)
INDEX = (
    "INSERT INTO im_message_index (owner_id, other_id, msg_id, seq_id, is_sender, conv_type) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
)


def _ids() -> Callable[[], int]:
    counter = iter(range(10**15 + time.time_ns() % 10**12, 2 * 10**15))  # fresh ids on a reused database
    return lambda: next(counter)


async def raw_sqlite(
    path: Path, concurrency: int, per_writer: int, group_id: int, index_rows: IndexRows
) -> float:
    import aiosqlite

    next_id = _ids()
    async with aiosqlite.connect(path) as conn:
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):  # as the server's SQLite adapter
            await conn.execute(f"PRAGMA {pragma}")
        lock = asyncio.Lock()  # one writer at a time, as the server's SQLite adapter does

        async def writer(w: int) -> None:
            for _ in range(per_writer):
                async with lock:
                    msg_id = next_id()
                    await conn.execute("BEGIN")
                    await conn.execute(BODY.format(p="?"), (msg_id, w, group_id, "message"))
                    await conn.executemany(INDEX.format(p="?"), index_rows(w, msg_id))
                    await conn.commit()

        began = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(concurrency)))
        return concurrency * per_writer / (time.perf_counter() - began)


LOCK_SEQS = "SELECT user_id, max_seq FROM im_user_seq WHERE user_id IN ({owners}) ORDER BY user_id FOR UPDATE"
BUMP_SEQS = "UPDATE im_user_seq SET max_seq = max_seq + 1 WHERE user_id IN ({owners})"
SEQ_OWNER_BASE = 10**12  # owners of the seq rows the baseline locks: never a real user of the run


def _conversation_upsert_sql() -> str:
    """The server's own conversation upsert (timeline SQL adapter), as the driver gets it."""
    from sqlalchemy.dialects import mysql

    from tinyim.modules.timeline.adapters.sql import conversation_upsert

    columns = ["owner_id", "conv_type", "other_id", "last_seq", "last_msg_id", "last_sender_id"]
    columns += ["last_msg_type", "preview", "unread"]
    dialect = mysql.dialect(paramstyle="format")
    return str(conversation_upsert("mysql").compile(dialect=dialect, column_keys=columns))


async def raw_mariadb(
    url: str,
    concurrency: int,
    per_writer: int,
    group_id: int,
    index_rows: IndexRows,
    seqs: bool = False,
    conversations: bool = False,
) -> float:
    """conversations: also upsert each owner's conversation row, with the server's statement (the
    conversation list's cost, which the plain baseline leaves out)."""
    import asyncmy
    from sqlalchemy.engine import make_url

    u = make_url(url)
    pool = await asyncmy.create_pool(
        host=u.host,
        port=u.port or 3306,
        user=u.username,
        password=u.password or "",
        db=u.database,
        minsize=concurrency,
        maxsize=concurrency,
        autocommit=False,
    )
    next_id = _ids()
    upsert = _conversation_upsert_sql() if conversations else ""
    if seqs:  # the counter rows exist before the clock starts (a user's first message creates it)
        owners = {SEQ_OWNER_BASE + r[0] for w in range(concurrency) for r in index_rows(w, 0)}
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT IGNORE INTO im_user_seq (user_id, max_seq) VALUES (%s, 0)", [(o,) for o in owners]
            )
            await conn.commit()

    async def writer(w: int) -> None:
        async with pool.acquire() as conn:
            for _ in range(per_writer):
                msg_id = next_id()
                async with conn.cursor() as cur:
                    if seqs:
                        owners = ", ".join(str(SEQ_OWNER_BASE + r[0]) for r in index_rows(w, msg_id))
                        await cur.execute(LOCK_SEQS.format(owners=owners))
                        await cur.fetchall()
                        await cur.execute(BUMP_SEQS.format(owners=owners))
                    await cur.execute(BODY.format(p="%s"), (msg_id, w, group_id, "message"))
                    # asyncmy rewrites executemany of an INSERT … VALUES into one multi-row INSERT
                    await cur.executemany(INDEX.format(p="%s"), index_rows(w, msg_id))
                    if conversations:  # rows in ascending owner order, as the server writes them
                        rows = sorted(index_rows(w, msg_id))
                        await cur.executemany(
                            upsert, [(r[0], r[5], r[1], r[3], msg_id, w, 0, "message", 1) for r in rows]
                        )
                await conn.commit()

    try:
        began = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(concurrency)))
        return concurrency * per_writer / (time.perf_counter() - began)
    finally:
        pool.close()
        await pool.wait_closed()
