"""SQL timeline store: `im_message_body`, `im_message_index`, `im_conversation`.

Seqs come from a `SeqAllocator` in the same transaction that writes the index rows: by default the
locked row of `locked_row_seqs.py` (`im_user_seq`, gapless as it commits); `redis_seq.py` is the other.
Statements per message, whatever the number of owners: insert body, the allocator's (lock seqs, bump seqs),
insert index, and for a 1:1 message one multi-row upsert of both owners' conversation rows (the
conversation list), unless turned off.

A group conversation's row holds only what its member sets (read mark, pinned, muted): its last message
and unread count are read from the member's index rows (`idx_owner_conv`: owner, conv_type, other_id, seq)
when the list is read. Rewriting 500 members' rows for every group message cost more than the message's
own rows (bench G2: 0.38x the raw insert with it, 0.63x without).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tinyim.infra import metrics
from tinyim.infra.db import (
    COMMIT,
    Database,
    MultiRow,
    fetch_rows,
    is_unique_violation,
    metadata,
    on_driver_path,
    retry_deadlocks,
    rolled_back_by_the_database,
    run_statements,
)
from tinyim.kernel import outcomes
from tinyim.modules.timeline.adapters.group_commit import GroupCommitter, PendingAppend, Turn
from tinyim.modules.timeline.adapters.locked_row_seqs import LockedRowSeqAllocator
from tinyim.modules.timeline.domain import (
    PREVIEW_CHARS,
    Appended,
    Conversation,
    ConversationCursor,
    ConversationView,
    ConvType,
    MessageBody,
    MsgType,
    ReadCount,
    StoredMessage,
    TimelineSlot,
    Unread,
    counts_as_unread,
    preview_of,
)
from tinyim.modules.timeline.ports import SeqAllocator

log = logging.getLogger(__name__)

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
    Column("recalled_by", BigInteger, nullable=False),
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

im_conversation = Table(
    "im_conversation",
    metadata,
    Column("owner_id", BigInteger, primary_key=True, autoincrement=False),
    Column("conv_type", SmallInteger, primary_key=True, autoincrement=False),
    Column("other_id", BigInteger, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_msg_id", BigInteger, nullable=False),
    Column("last_sender_id", BigInteger, nullable=False),
    Column("last_msg_type", SmallInteger, nullable=False),
    Column("preview", String(PREVIEW_CHARS), nullable=False),
    Column("unread", Integer, nullable=False),
    Column("read_seq", BigInteger, nullable=False),
    Column("peer_read_seq", BigInteger, nullable=False),
    Column("pinned", SmallInteger, nullable=False),
    Column("muted", SmallInteger, nullable=False),
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
    im_message_body.c.recalled_by,
).join(im_message_body, im_message_body.c.msg_id == im_message_index.c.msg_id)


class _SyncRow(NamedTuple):
    """A row of `_joined`, as the driver returns it on the lean path (same names as SQLAlchemy's)."""

    seq_id: int
    other_id: int
    is_sender: int
    msg_id: int
    sender_id: int
    group_id: int
    msg_type: int
    msg_content: str | None
    client_msg_id: str | None
    recalled_by: int


# The hot reads as fixed driver SQL (MySQL/MariaDB), the same queries as `_joined` and `max_seq` build.
_SYNC_SQL = (
    "SELECT i.seq_id, i.other_id, i.is_sender, b.msg_id, b.sender_id, b.group_id, b.msg_type,"
    " b.msg_content, b.client_msg_id, b.recalled_by"
    " FROM im_message_index AS i JOIN im_message_body AS b ON b.msg_id = i.msg_id"
    " WHERE i.owner_id = %s AND i.seq_id > %s ORDER BY i.seq_id LIMIT %s"
)


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
        recalled_by=int(r.recalled_by),
    )


BODY_COLUMNS = (
    "msg_id", "sender_id", "group_id", "msg_type", "msg_content", "msg_extra", "client_msg_id", "recalled_by",
)  # fmt: skip
INDEX_COLUMNS = ("owner_id", "other_id", "msg_id", "seq_id", "is_sender", "conv_type")
CONVERSATION_COLUMNS = (
    "owner_id", "conv_type", "other_id", "last_seq", "last_msg_id", "last_sender_id", "last_msg_type",
    "preview", "unread",
)  # fmt: skip
_LAST_SEQ, _UNREAD = CONVERSATION_COLUMNS.index("last_seq"), CONVERSATION_COLUMNS.index("unread")


def _body_row(body: MessageBody) -> tuple[Any, ...]:
    # msg_extra "" and recalled_by 0: a new message
    return (body.msg_id, body.sender_id, body.group_id, body.msg_type, body.content, "",
            body.client_msg_id or None, 0)  # fmt: skip


async def insert_body(conn: AsyncConnection, body: MessageBody) -> None:
    await _BODY_ROWS.execute(conn, [_body_row(body)])


def _index_rows(
    body: MessageBody, slots: Sequence[TimelineSlot], seqs: dict[int, int]
) -> list[tuple[int, ...]]:
    """INDEX_COLUMNS of every owner's row (tuples: a 500-member message builds 500 of them)."""
    conv_type = int(ConvType.GROUP if body.group_id else ConvType.DIRECT)
    msg_id = body.msg_id
    return [(s.owner_id, s.other_id, msg_id, seqs[s.owner_id], int(s.is_sender), conv_type) for s in slots]


async def insert_index(
    conn: AsyncConnection, body: MessageBody, slots: Sequence[TimelineSlot], seqs: dict[int, int]
) -> None:
    """Every owner's index row in one multi-row INSERT, whatever the number of owners."""
    await _INDEX_ROWS.execute(conn, _index_rows(body, slots, seqs))


class AlreadyRecalled(Exception):
    """Raised inside a recall's transaction (rolling it back) when the message was recalled before."""


def _conv_key(c: Any, owner_id: int, conversation: Conversation) -> tuple[Any, ...]:
    return (
        c.owner_id == owner_id,
        c.conv_type == int(conversation.conv_type),
        c.other_id == conversation.other_id,
    )


_UPSERTS: dict[str, Any] = {}  # dialect name -> the conversation upsert (built once, compiled once)


def conversation_upsert(dialect: str) -> Any:
    """INSERT … ON DUPLICATE KEY UPDATE (SQLite: ON CONFLICT DO UPDATE) of conversation rows: the new message
    becomes the last one unless a later seq got there first (Redis seqs may commit out of order), and it
    counts as unread only above the read mark. Executed with many rows: one multi-row statement."""
    stmt = _UPSERTS.get(dialect)
    if stmt is not None:
        return stmt
    c = im_conversation.c
    if dialect == "sqlite":
        ins: Any = sqlite.insert(im_conversation)
        new = ins.excluded
    else:
        ins = mysql.insert(im_conversation)
        new = ins.inserted
    newer = new.last_seq > c.last_seq
    # MySQL applies these left to right, each seeing the ones before: last_seq goes last.
    changes: list[tuple[str, Any]] = [
        ("unread", case((new.last_seq > c.read_seq, c.unread + new.unread), else_=c.unread)),
        *[
            (name, case((newer, getattr(new, name)), else_=getattr(c, name)))
            for name in ("last_msg_id", "last_sender_id", "last_msg_type", "preview")
        ],
        ("last_seq", case((newer, new.last_seq), else_=c.last_seq)),
    ]
    if dialect == "sqlite":
        stmt = ins.on_conflict_do_update(
            index_elements=["owner_id", "conv_type", "other_id"], set_=dict(changes)
        )
    else:
        stmt = ins.on_duplicate_key_update(changes)
    _UPSERTS[dialect] = stmt
    return stmt


def _conversation_rows(
    messages: Sequence[tuple[MessageBody, Sequence[TimelineSlot], dict[int, int]]],
) -> list[tuple[Any, ...]]:
    """One upsert row (CONVERSATION_COLUMNS) per 1:1 conversation that the messages touch: the latest message
    (highest seq) and the sum of their unread counts. Every seq here is new (above any read mark), so the
    sum is exact."""
    merged: dict[tuple[int, int, int], list[Any]] = {}
    for body, slots, seqs in messages:
        if body.group_id:
            continue  # a group's last message and unread count come from the index (`_group_views`)
        conv_type = int(ConvType.DIRECT)
        preview = preview_of(body.content)
        unread_of = {False: int(counts_as_unread(body.msg_type, False)),
                     True: int(counts_as_unread(body.msg_type, True))}  # fmt: skip
        for s in slots:
            key = (s.owner_id, conv_type, s.other_id)
            unread = unread_of[s.is_sender]
            seq = seqs[s.owner_id]
            row = merged.get(key)
            if row is not None and row[_LAST_SEQ] > seq:
                row[_UNREAD] += unread
                continue
            merged[key] = [s.owner_id, conv_type, s.other_id, seq, body.msg_id, body.sender_id, body.msg_type,
                           preview, unread + (row[_UNREAD] if row is not None else 0)]  # fmt: skip
            # read marks, peer mark, pinned, muted: the columns' defaults (0) for a new row
    return [tuple(merged[key]) for key in sorted(merged)]  # rows locked in one order: no deadlocks


async def upsert_conversations(
    conn: AsyncConnection, body: MessageBody, slots: Sequence[TimelineSlot], seqs: dict[int, int]
) -> None:
    """Both owners' rows of a 1:1 message in ONE multi-row upsert (a group message has none)."""
    await _CONVERSATION_ROWS.execute(conn, _conversation_rows([(body, slots, seqs)]))


_BODY_ROWS = MultiRow(
    lambda _d: im_message_body.insert(), BODY_COLUMNS, text=("msg_content", "msg_extra", "client_msg_id")
)
_INDEX_ROWS = MultiRow(lambda _d: im_message_index.insert(), INDEX_COLUMNS)
_CONVERSATION_ROWS = MultiRow(conversation_upsert, CONVERSATION_COLUMNS, text=("preview",))


async def mark_recalled(conn: AsyncConnection, msg_id: int, recalled_by: int) -> list[TimelineSlot]:
    """Clear the content and mark the message recalled; returns where its RECALL entry goes (every copy)."""
    b, i = im_message_body, im_message_index
    result = await conn.execute(
        update(b)
        .where(b.c.msg_id == msg_id, b.c.recalled_by == 0)
        .values(recalled_by=recalled_by, msg_content="")
    )
    if result.rowcount == 0:
        raise AlreadyRecalled(msg_id)
    holders = await conn.execute(select(i.c.owner_id, i.c.other_id).where(i.c.msg_id == msg_id))
    return [TimelineSlot(int(r.owner_id), int(r.other_id), int(r.owner_id) == recalled_by) for r in holders]


async def uncount_recalled(conn: AsyncConnection, msg_id: int) -> None:
    """Take a recalled message out of the unread counts of the owners who had not read it."""
    c, i = im_conversation, im_message_index
    await conn.execute(
        update(c)
        .where(
            c.c.owner_id == i.c.owner_id,
            c.c.conv_type == i.c.conv_type,
            c.c.other_id == i.c.other_id,
            i.c.msg_id == msg_id,
            i.c.conv_type == int(ConvType.DIRECT),  # a group's unread count is counted when it is read
            i.c.is_sender == 0,
            i.c.seq_id > c.c.read_seq,
            c.c.unread > 0,
        )
        .values(unread=c.c.unread - 1)
    )


def _view(r: Any) -> ConversationView:
    return ConversationView(
        conversation=Conversation(ConvType(int(r.conv_type)), int(r.other_id)),
        last_seq=int(r.last_seq),
        last_msg_id=int(r.last_msg_id),
        last_sender_id=int(r.last_sender_id),
        last_msg_type=int(r.last_msg_type),
        preview=r.preview or "",
        unread=int(r.unread),
        read_seq=int(r.read_seq),
        peer_read_seq=int(r.peer_read_seq),
        pinned=bool(r.pinned),
        muted=bool(r.muted),
    )


def _group(group_id: int) -> Conversation:
    return Conversation(ConvType.GROUP, group_id)


def _top_seq(owner_id: int, group_id: int) -> Any:
    """The owner's seq of the group's latest message (NULL: none); one probe of `idx_owner_conv`."""
    i = im_message_index.c
    return select(func.max(i.seq_id)).where(
        i.owner_id == owner_id, i.conv_type == int(ConvType.GROUP), i.other_id == group_id
    )


def _countable() -> tuple[Any, ...]:
    """What counts as unread (`counts_as_unread`, and not recalled) in `im_message_index` ⋈ body."""
    i, b = im_message_index.c, im_message_body.c
    return (i.is_sender == 0, b.msg_type != int(MsgType.RECALL), b.recalled_by == 0)


def _unread_count(owner_id: int, conversation: Conversation, read_seq: int) -> Any:
    i, b = im_message_index, im_message_body
    return (
        select(func.count())
        .select_from(i.join(b, b.c.msg_id == i.c.msg_id))
        .where(
            i.c.owner_id == owner_id,
            i.c.conv_type == int(conversation.conv_type),
            i.c.other_id == conversation.other_id,
            i.c.seq_id > read_seq,
            *_countable(),
        )
    )


def _member_upsert(
    conn: AsyncConnection,
    owner_id: int,
    group_id: int,
    changes: Callable[[Any], dict[str, Any]],
    **values: int,
) -> Any:
    """Insert a member's group row (what the member sets: read mark, pinned, muted; the other columns stay
    0, the list does not read them for a group) with `values`, or apply `changes(new row)` to it."""
    row: dict[str, Any] = dict.fromkeys(
        (*CONVERSATION_COLUMNS, "read_seq", "peer_read_seq", "pinned", "muted"), 0
    )
    row.update(owner_id=owner_id, conv_type=int(ConvType.GROUP), other_id=group_id, preview="", **values)
    c = im_conversation
    if conn.dialect.name == "sqlite":
        ins: Any = sqlite.insert(c).values(row)
        return ins.on_conflict_do_update(
            index_elements=["owner_id", "conv_type", "other_id"], set_=changes(ins.excluded)
        )
    ins = mysql.insert(c).values(row)
    return ins.on_duplicate_key_update(changes(ins.inserted))


async def _group_views(
    conn: AsyncConnection, owner_id: int, group_id: int | None = None
) -> list[ConversationView]:
    """The owner's group conversations (one group, or all), read from the index rather than a row that
    every message would rewrite: four queries, whatever the number of groups."""
    i, c = im_message_index.c, im_conversation.c
    group_rows = (i.owner_id == owner_id, i.conv_type == int(ConvType.GROUP))
    tops_query = select(i.other_id, func.max(i.seq_id)).where(*group_rows).group_by(i.other_id)
    marks_query = select(c.other_id, c.read_seq, c.pinned, c.muted).where(
        c.owner_id == owner_id, c.conv_type == int(ConvType.GROUP)
    )
    if group_id is not None:
        tops_query = tops_query.where(i.other_id == group_id)
        marks_query = marks_query.where(c.other_id == group_id)
    tops = {int(g): int(top) for g, top in await conn.execute(tops_query)}
    if not tops:
        return []
    marks = {
        int(r.other_id): (int(r.read_seq), bool(r.pinned), bool(r.muted))
        for r in await conn.execute(marks_query)
    }
    lasts = {
        int(r.other_id): r
        for r in await conn.execute(_joined.where(i.owner_id == owner_id, i.seq_id.in_(list(tops.values()))))
    }
    unset = (0, False, False)  # no row yet: nothing read, not pinned, not muted
    behind = [(g, marks.get(g, unset)[0]) for g, top in tops.items() if top > marks.get(g, unset)[0]]
    unread: dict[int, int] = {}
    if behind:
        counts = (
            select(i.other_id, func.count())
            .select_from(im_message_index.join(im_message_body, im_message_body.c.msg_id == i.msg_id))
            .where(*group_rows, *_countable(), or_(*[and_(i.other_id == g, i.seq_id > r) for g, r in behind]))
            .group_by(i.other_id)
        )
        unread = {int(g): int(n) for g, n in await conn.execute(counts)}
    views = []
    for g, top in tops.items():
        read_seq, pinned, muted = marks.get(g, unset)
        last = lasts.get(g)
        if last is None:  # an index row without its body: not written so, but one must not fail the list
            continue
        views.append(
            ConversationView(
                conversation=_group(g),
                last_seq=top,
                last_msg_id=int(last.msg_id),
                last_sender_id=int(last.sender_id),
                last_msg_type=int(last.msg_type),
                preview=preview_of(last.msg_content or ""),
                unread=unread.get(g, 0),
                read_seq=read_seq,
                peer_read_seq=0,
                pinned=pinned,
                muted=muted,
            )
        )
    return views


@dataclasses.dataclass
class TakenSeqs:
    """The seqs a write transaction took, when, and whether its COMMIT may be on its way: what
    `given_back` needs to know whether they can never commit."""

    before: Mapping[int, int] | None = None  # each owner's seq before its block; None: none taken
    counts: Mapping[int, int] | None = None  # each owner's seqs in its block (None: one)
    at: float = 0.0
    committing: bool = False

    def took(self, before: Mapping[int, int], counts: Mapping[int, int] | None = None) -> None:
        self.before, self.counts, self.at = before, counts, time.monotonic()

    def blocks(self) -> dict[int, range]:
        """Owner -> the seqs it took."""
        if self.before is None:
            return {}
        n = self.counts
        return {o: range(b + 1, b + 1 + (n[o] if n is not None else 1)) for o, b in self.before.items()}


GIVE_BACK_SECONDS = 5.0  # marking gone seqs, beside the failure (nothing waits for it)


def given_back(taken: TakenSeqs, exc: Exception) -> dict[int, range]:
    """A transaction that took seqs failed with `exc`: the seqs it surely did not commit (owner -> its
    block), which readers may pass at once (`SeqAllocator.abandon`); none when that is unknown."""
    if isinstance(exc, IntegrityError) and is_unique_violation(exc):
        return {}  # a seq handed out twice (a re-seeded counter): it may be another's
    if taken.committing and not rolled_back_by_the_database(exc):
        return {}  # the COMMIT may have landed
    return taken.blocks()


class SeqCollision(Exception):
    pass


class SqlTimelineStore:
    def __init__(
        self,
        db: Database,
        conversations: bool = True,
        group_commit: bool = True,
        seqs: SeqAllocator[AsyncConnection] | None = None,
        batch_writers: int = 1,
        batch_overlap_rows: int = 256,
    ) -> None:
        self._db = db
        self._seqs = seqs or LockedRowSeqAllocator(db)
        self._marking: set[asyncio.Task[None]] = set()  # gone seqs being marked (`_give_back`)
        # False only to measure what the conversation list costs on the write path (bench)
        self._conversations = conversations
        # Concurrent appends share a transaction; a failed batch falls back to the single path below.
        # Batches overlap (`batch_writers` > 1) on a server database; SQLite has one writer at a time.
        self._committer = (
            GroupCommitter(
                self._append_batch,
                lambda body, slots: self._run(body, slots, None),
                on_batch=metrics.TIMELINE_BATCH_MESSAGES.observe,
                writers=1 if db.is_sqlite else batch_writers,
                overlap_rows=batch_overlap_rows,
            )
            if group_commit and self._seqs.batches
            else None
        )

    async def append(self, body: MessageBody, slots: Sequence[TimelineSlot]) -> Appended:
        if self._committer is not None:
            return await self._committer.append(body, slots)
        return await self._run(body, slots, None)

    async def append_many(
        self, items: Sequence[tuple[MessageBody, Sequence[TimelineSlot]]]
    ) -> list[Appended | Exception]:
        if self._committer is not None:
            return await self._committer.append_many(items)
        return await outcomes(self._run(b, s, None) for b, s in items)

    async def recall(self, msg_id: int, recalled_by: int, event: MessageBody) -> Appended | None:
        try:
            return await self._run(event, [], (msg_id, recalled_by))
        except AlreadyRecalled:
            return None

    async def _run(
        self, body: MessageBody, slots: Sequence[TimelineSlot], recall: tuple[int, int] | None
    ) -> Appended:
        owners: list[int] = []
        for _ in range(5):
            try:
                return await retry_deadlocks(lambda: self._append_once(body, slots, recall, owners))
            except IntegrityError as exc:
                if not is_unique_violation(exc):
                    raise
                if body.client_msg_id:
                    first = await self._find_sent(body.sender_id, body.client_msg_id)
                    if first is not None:
                        return first
                # (owner, seq) taken already: only an allocator whose counters can fall behind repairs them
                if not await self._seqs.collided(owners):
                    raise
        raise SeqCollision(f"could not take fresh seqs for {owners}")

    async def _append_once(
        self,
        body: MessageBody,
        slots: Sequence[TimelineSlot],
        recall: tuple[int, int] | None,
        owners: list[int],
    ) -> Appended:
        taken = TakenSeqs()
        try:
            async with asyncio.timeout(self._seqs.txn_timeout), self._db.write() as conn:
                seqs = await self._write_message(conn, body, slots, recall, owners, taken)
                taken.committing = True  # leaving the block commits
        except Exception as exc:
            self._give_back(taken, exc)
            raise
        return Appended(body.msg_id, seqs)

    def _give_back(self, taken: TakenSeqs, exc: Exception) -> None:
        """Marks what a failed transaction surely did not commit gone, in the background: the failure
        goes on to the committer at once (an overlapping batch may wait for it with locks held)."""
        blocks = given_back(taken, exc)
        if blocks:
            task = asyncio.get_running_loop().create_task(self._abandon(blocks, taken.at))
            self._marking.add(task)
            task.add_done_callback(self._marking.discard)

    async def _abandon(self, blocks: dict[int, range], taken_at: float) -> None:
        try:
            async with asyncio.timeout(GIVE_BACK_SECONDS):
                await self._seqs.abandon(blocks, taken_at)
        except Exception:  # best effort: the holes then wait out the allocator's timeout
            log.warning("could not mark the seqs of a rolled-back transaction", exc_info=True)

    async def _write_message(
        self,
        conn: AsyncConnection,
        body: MessageBody,
        slots: Sequence[TimelineSlot],
        recall: tuple[int, int] | None,
        owners_out: list[int],
        taken: TakenSeqs,
    ) -> dict[int, int]:
        """The statements of one append in conn's transaction; with `recall` = (msg_id, by), `body` is
        the RECALL entry and goes wherever that message is."""
        if recall is not None:
            slots = await mark_recalled(conn, *recall)
        owners = sorted({s.owner_id for s in slots})
        owners_out[:] = owners
        # The body first: a retried client_msg_id fails here, before any seq is taken or locked.
        await insert_body(conn, body)
        seqs = await self._seqs.take(conn, owners)
        taken.took({o: seq - 1 for o, seq in seqs.items()})
        await insert_index(conn, body, slots, seqs)
        if self._conversations:
            await upsert_conversations(conn, body, slots, seqs)
            if recall is not None:
                await uncount_recalled(conn, recall[0])
        return seqs

    async def _append_batch(self, batch: Sequence[PendingAppend], turn: Turn) -> list[Appended]:
        started = time.perf_counter()
        try:
            if self._committer is not None and self._committer.writers > 1:
                # Another batch may take seqs after this one's: a second attempt would take them after
                # it. A deadlock or a dropped connection fails the batch; its messages go one by one.
                return await self._append_batch_once(batch, turn)
            return await retry_deadlocks(lambda: self._append_batch_once(batch, turn))
        finally:
            metrics.TIMELINE_BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _append_batch_once(self, batch: Sequence[PendingAppend], turn: Turn) -> list[Appended]:
        """Many messages in ONE transaction, with as many statements as one message: bodies, seq bump,
        index rows, conversation rows — each one multi-row statement; on MySQL/MariaDB in two round trips
        (bodies with the seq bump; index and conversation rows with the commit, unless an overlapping
        batch before this one is still in the way). `turn` keeps overlapping batches in queue order
        (GroupCommitter)."""
        owners_of = [{s.owner_id for s in p.slots} for p in batch]
        counts = Counter(owner for owners in owners_of for owner in owners)
        await turn.before_bodies()
        taken = TakenSeqs()
        try:
            return await self._write_batch(batch, turn, owners_of, counts, taken)
        except Exception as exc:
            self._give_back(taken, exc)
            raise

    async def _write_batch(
        self,
        batch: Sequence[PendingAppend],
        turn: Turn,
        owners_of: list[set[int]],
        counts: Mapping[int, int],
        taken: TakenSeqs,
    ) -> list[Appended]:
        async with asyncio.timeout(self._seqs.txn_timeout), self._db.hot_write() as conn:
            bodies = [_body_row(p.body) for p in batch]
            top = await self._write_bodies_and_take_seqs(conn, bodies, counts, taken)
            turn.took_seqs()
            seqs: list[dict[int, int]] = []
            for mine_owners in owners_of:  # in queue order: a sender's later message gets the later seqs
                mine = {}
                for owner in mine_owners:
                    top[owner] += 1
                    mine[owner] = top[owner]
                seqs.append(mine)
            index_rows = [
                row for p, mine in zip(batch, seqs, strict=True) for row in _index_rows(p.body, p.slots, mine)
            ]
            conversation_rows = (
                _conversation_rows([(p.body, p.slots, mine) for p, mine in zip(batch, seqs, strict=True)])
                if self._conversations
                else []
            )
            if on_driver_path(conn) and turn.conversations_clear:
                statements = [await _INDEX_ROWS.text(conn, index_rows)]
                if conversation_rows:
                    statements.append(await _CONVERSATION_ROWS.text(conn, conversation_rows))
                commit_here = turn.commit_clear
                if commit_here:  # the commit rides along; begin() then finds nothing left to commit
                    statements.append(COMMIT)
                    taken.committing = True
                await run_statements(conn, statements)
                turn.wrote_conversations()
                if not commit_here:
                    await turn.before_commit()
            else:
                await _INDEX_ROWS.execute(conn, index_rows)
                if conversation_rows:
                    await turn.before_conversations()
                    await _CONVERSATION_ROWS.execute(conn, conversation_rows)
                turn.wrote_conversations()
                await turn.before_commit()
            taken.committing = True  # leaving the block commits
        turn.committed()
        return [Appended(p.body.msg_id, mine) for p, mine in zip(batch, seqs, strict=True)]

    async def _write_bodies_and_take_seqs(
        self,
        conn: AsyncConnection,
        bodies: list[tuple[Any, ...]],
        counts: Mapping[int, int],
        taken: TakenSeqs,
    ) -> dict[int, int]:
        """The bodies, then each owner's block of seqs (the seq before it), noted in `taken`: one round
        trip when the allocator's bump is a statement, on MySQL/MariaDB."""
        bump = await self._seqs.take_many_statement(conn, counts) if on_driver_path(conn) else None
        if bump is not None:
            results = await run_statements(conn, [await _BODY_ROWS.text(conn, bodies), bump.sql])
            top = bump.read(results[1])
        else:
            await _BODY_ROWS.execute(conn, bodies)
            top = await self._seqs.take_many(conn, counts)
        taken.took(dict(top), counts)  # a copy: the caller moves top on
        return top

    async def _find_sent(self, sender_id: int, client_msg_id: str) -> Appended | None:
        b, i = im_message_body, im_message_index
        query = (
            select(b.c.msg_id, i.c.seq_id, i.c.other_id, b.c.group_id, b.c.msg_type, b.c.msg_content)
            .outerjoin(i, (i.c.msg_id == b.c.msg_id) & (i.c.owner_id == b.c.sender_id))
            .where(b.c.sender_id == sender_id, b.c.client_msg_id == client_msg_id)
        )
        async with self._db.read(fresh=True) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        if row.seq_id is None:  # a server notice that left its sender no copy (post_notice's dedup_key)
            return Appended(row.msg_id, {}, duplicate=True)
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
        params = (owner_id, after_seq, limit + 1)

        async def from_primary(conn: AsyncConnection) -> list[Any]:
            return [_SyncRow(*r) for r in await fetch_rows(conn, query, _SYNC_SQL, params)]

        if not self._db.readers:
            rows = await self._db.hot_read(from_primary)
        else:
            async with self._db.read() as conn:
                rows = list((await conn.execute(query)).all())
                from_replica = not self._db.is_primary(conn)
            reached = len(rows) > limit or (rows[-1].seq_id if rows else after_seq) >= min_seq
            if from_replica and not reached:  # the replica lags behind what the owner was told of
                rows = await self._db.hot_read(from_primary)
        page = [_stored(r, owner_id) for r in rows[:limit]]
        return await self._seqs.visible(owner_id, page, after_seq, len(rows) > limit)

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
        # The latest page from the primary: a client opens a conversation right after a push, and a lagging
        # replica would not have the message yet. Older pages lie below a seq the client has seen already.
        async with self._db.read(fresh=not before_seq) as conn:
            rows = (await conn.execute(query.order_by(i.c.seq_id.desc()).limit(limit + 1))).all()
        return [_stored(r, owner_id) for r in reversed(rows[:limit])], len(rows) > limit

    async def mark_read(self, owner_id: int, conversation: Conversation, read_seq: int) -> int:
        if conversation.conv_type == ConvType.GROUP:
            return await self._mark_group_read(owner_id, conversation.other_id, read_seq)
        c = im_conversation
        key = _conv_key(c.c, owner_id, conversation)
        async with self._db.write() as conn:
            row = (
                await conn.execute(select(c.c.read_seq, c.c.last_seq).where(*key).with_for_update())
            ).first()
            if row is None:
                return 0  # no message in this conversation yet: nothing to read
            if read_seq <= row.read_seq:
                return int(row.read_seq)
            unread = 0
            if read_seq < row.last_seq:
                unread = int(await conn.scalar(_unread_count(owner_id, conversation, read_seq)) or 0)
            await conn.execute(update(c).where(*key).values(read_seq=read_seq, unread=unread))
            return read_seq

    async def _mark_group_read(self, owner_id: int, group_id: int, read_seq: int) -> int:
        """A member's group row is written here (or by `set_flags`), the first time it is needed."""
        async with self._db.write() as conn:
            if not await conn.scalar(_top_seq(owner_id, group_id)):
                return 0  # no message in this conversation yet: nothing to read
            c = im_conversation.c

            def raised(new: Any) -> dict[str, Any]:  # never lowered
                return {"read_seq": case((new.read_seq > c.read_seq, new.read_seq), else_=c.read_seq)}

            await conn.execute(_member_upsert(conn, owner_id, group_id, raised, read_seq=read_seq))
            return int(
                await conn.scalar(select(c.read_seq).where(*_conv_key(c, owner_id, _group(group_id)))) or 0
            )

    async def unread(self, owner_id: int) -> list[Unread]:
        c = im_conversation
        query = select(c).where(
            c.c.owner_id == owner_id, c.c.conv_type == int(ConvType.DIRECT), c.c.unread > 0
        )
        async with self._db.read() as conn:
            views = [_view(r) for r in (await conn.execute(query)).all()]
            views += [v for v in await _group_views(conn, owner_id) if v.unread > 0]
        views.sort(key=lambda v: (v.conversation.conv_type, v.conversation.other_id))
        return [Unread(v.conversation, v.unread, v.last_seq, v.read_seq) for v in views]

    # ---------- conversation list, read receipts, recall ----------
    async def conversations(
        self, owner_id: int, limit: int, after: ConversationCursor | None
    ) -> list[ConversationView]:
        # The owner's rows come by the primary key and are sorted here (a few hundred to a few thousand
        # for one user): the groups' last seqs are not stored, so no index could order them anyway.
        c = im_conversation.c
        query = select(im_conversation).where(c.owner_id == owner_id, c.conv_type == int(ConvType.DIRECT))
        async with self._db.read() as conn:
            views = [_view(r) for r in (await conn.execute(query)).all()]
            views += await _group_views(conn, owner_id)
        views = [v for v in views if after is None or after.passes(v)]
        return sorted(views, key=lambda v: v.order_key, reverse=True)[:limit]

    async def conversation(self, owner_id: int, conversation: Conversation) -> ConversationView | None:
        c = im_conversation
        async with self._db.read(fresh=True) as conn:
            if conversation.conv_type == ConvType.GROUP:
                views = await _group_views(conn, owner_id, conversation.other_id)
                return views[0] if views else None
            row = (await conn.execute(select(c).where(*_conv_key(c.c, owner_id, conversation)))).first()
        return _view(row) if row is not None else None

    async def set_flags(
        self, owner_id: int, conversation: Conversation, pinned: bool | None, muted: bool | None
    ) -> ConversationView | None:
        c = im_conversation
        key = _conv_key(c.c, owner_id, conversation)
        values = {k: int(v) for k, v in (("pinned", pinned), ("muted", muted)) if v is not None}
        async with self._db.write() as conn:
            if conversation.conv_type == ConvType.GROUP:
                group_id = conversation.other_id
                views = await _group_views(conn, owner_id, group_id)
                if not views:
                    return None  # no message in this conversation yet
                if values:
                    await conn.execute(
                        _member_upsert(
                            conn,
                            owner_id,
                            group_id,
                            lambda new: {k: getattr(new, k) for k in values},
                            **values,
                        )
                    )
                view = views[0]
                return dataclasses.replace(
                    view,
                    pinned=view.pinned if pinned is None else pinned,
                    muted=view.muted if muted is None else muted,
                )
            if values:
                await conn.execute(update(c).where(*key).values(**values))
            row = (await conn.execute(select(c).where(*key))).first()
        return _view(row) if row is not None else None

    async def propagate_read(self, owner_id: int, peer_id: int, read_seq: int) -> int:
        mine, theirs, c = im_message_index.alias("mine"), im_message_index.alias("theirs"), im_conversation
        latest_shared = (
            select(theirs.c.seq_id)
            .select_from(
                mine.join(theirs, (theirs.c.msg_id == mine.c.msg_id) & (theirs.c.owner_id == peer_id))
            )
            .where(
                mine.c.owner_id == owner_id,
                mine.c.conv_type == int(ConvType.DIRECT),
                mine.c.other_id == peer_id,
                mine.c.seq_id <= read_seq,
            )
            .order_by(mine.c.seq_id.desc())
            .limit(1)
        )
        key = _conv_key(c.c, peer_id, Conversation(ConvType.DIRECT, owner_id))
        async with self._db.write() as conn:
            mark = await conn.scalar(latest_shared)
            if not mark:
                return 0
            result = await conn.execute(
                update(c).where(*key, c.c.peer_read_seq < mark).values(peer_read_seq=mark)
            )
        return int(mark) if result.rowcount else 0

    async def message(self, owner_id: int, msg_id: int) -> StoredMessage | None:
        i = im_message_index
        async with self._db.read(fresh=True) as conn:
            row = (await conn.execute(_joined.where(i.c.owner_id == owner_id, i.c.msg_id == msg_id))).first()
        return _stored(row, owner_id) if row is not None else None

    async def read_counts(self, sender_id: int, group_id: int, msg_ids: Sequence[int]) -> list[ReadCount]:
        b, i, c = im_message_body, im_message_index, im_conversation
        ids = list(dict.fromkeys(msg_ids))
        mine = select(b.c.msg_id).where(
            b.c.msg_id.in_(ids), b.c.sender_id == sender_id, b.c.group_id == group_id
        )
        counts = (
            select(
                i.c.msg_id,
                func.count().label("total"),
                func.sum(case((c.c.read_seq >= i.c.seq_id, 1), else_=0)).label("read"),
            )
            .select_from(
                i.outerjoin(  # a member who never read the group (or set a flag) has no row
                    c,
                    (c.c.owner_id == i.c.owner_id)
                    & (c.c.conv_type == i.c.conv_type)
                    & (c.c.other_id == i.c.other_id),
                )
            )
            .where(i.c.msg_id.in_(mine), i.c.is_sender == 0)
            .group_by(i.c.msg_id)
        )
        async with self._db.read() as conn:
            owned = [int(r.msg_id) for r in await conn.execute(mine)]
            found = {int(r.msg_id): (int(r.read or 0), int(r.total)) for r in await conn.execute(counts)}
        return [ReadCount(m, *found.get(m, (0, 0))) for m in ids if m in set(owned)]

    async def max_seq(self, owner_id: int) -> int:
        return await self._seqs.max_seq(owner_id)

    # admin API: server stats (a full count: an operator's question, not a hot path)
    async def count_messages(self) -> int:
        async with self._db.read() as conn:
            return int(await conn.scalar(select(func.count()).select_from(im_message_body)) or 0)
