"""TimelineStore contract, conversation part: the list maintained by append, pin/mute, read marks and
receipts, recall, group read counts — the same on memory, SQLite, MariaDB and both with Redis seqs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.contract.conftest import Backend, fresh_id
from tests.contract.timeline.test_timeline_store import body, group_body, ids, open_store, slots
from tinyim.modules.timeline import Conversation, ConvType, MessageBody, MsgType
from tinyim.modules.timeline.adapters.locked_row_seqs import im_user_seq
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore, im_conversation
from tinyim.modules.timeline.domain import (
    PREVIEW_CHARS,
    ConversationCursor,
    ConversationView,
    group_slots,
    recall_content,
)


def direct(peer: int) -> Conversation:
    return Conversation(ConvType.DIRECT, peer)


def group(group_id: int) -> Conversation:
    return Conversation(ConvType.GROUP, group_id)


def recall_event(by: int, group_id: int, msg_id: int) -> MessageBody:
    return MessageBody(ids.next_id(), by, group_id, MsgType.RECALL, recall_content(msg_id, by))


async def test_append_maintains_each_owners_conversation_row(timeline_backend: Backend) -> None:
    a, b, c, g = fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        first = await store.append(body(b, "hello a"), slots(b, a))
        await store.append(body(a, "x" * (PREVIEW_CHARS + 20)), slots(a, b))
        grouped = await store.append(group_body(c, g, "to the group"), group_slots(c, g, [a, b, c]))
        rows = await store.conversations(a, 10, None)
        assert [r.conversation for r in rows] == [group(g), direct(b)]  # newest first
        in_group, with_b = rows
        assert (in_group.last_seq, in_group.last_msg_id, in_group.last_sender_id, in_group.preview) == (
            3,
            grouped.msg_id,
            c,
            "to the group",
        )
        assert (in_group.unread, in_group.read_seq, in_group.pinned, in_group.muted) == (1, 0, False, False)
        # a's own reply is the last message and does not count as unread; the preview is cut
        assert (with_b.last_seq, with_b.last_sender_id, with_b.unread) == (2, a, 1)
        assert with_b.preview == "x" * PREVIEW_CHARS and with_b.last_msg_type == MsgType.TEXT
        assert with_b.last_time_ms > 1_700_000_000_000
        b_rows = await store.conversations(b, 10, None)
        assert [(r.conversation, r.unread, r.last_seq) for r in b_rows] == [
            (group(g), 1, 3),
            (direct(a), 1, 2),
        ]
        (c_row,) = await store.conversations(c, 10, None)
        assert (c_row.conversation, c_row.unread, c_row.last_seq) == (group(g), 0, 1)
        assert await store.conversation(b, direct(a)) == b_rows[1]
        assert await store.conversation(b, direct(c)) is None
        assert first.seqs == {a: 1, b: 1}


async def test_list_pages_pinned_first_then_newest(timeline_backend: Backend) -> None:
    me = fresh_id()
    peers = [fresh_id() for _ in range(5)]
    async with open_store(timeline_backend) as store:
        for p in peers:
            await store.append(body(p, f"from {p}"), slots(p, me))
        assert await store.set_flags(me, direct(peers[1]), True, None) is not None
        seen: list[ConversationView] = []
        cursor = None
        while True:
            page = await store.conversations(me, 2, cursor)
            seen += page
            if len(page) < 2:
                break
            cursor = ConversationCursor.after(page[-1])
        assert [v.conversation.other_id for v in seen] == [peers[1], peers[4], peers[3], peers[2], peers[0]]
        assert [v.pinned for v in seen] == [True, False, False, False, False]
        # a new message moves its conversation to the top of the unpinned ones
        await store.append(body(peers[0], "again"), slots(peers[0], me))
        top = await store.conversations(me, 2, None)
        assert [v.conversation.other_id for v in top] == [peers[1], peers[0]]


async def test_pin_and_mute_are_per_user_and_keep_what_is_not_named(timeline_backend: Backend) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        await store.append(body(a, "hi"), slots(a, b))
        muted = await store.set_flags(a, direct(b), None, True)
        assert muted is not None and (muted.pinned, muted.muted) == (False, True)
        both = await store.set_flags(a, direct(b), True, None)
        assert both is not None and (both.pinned, both.muted) == (True, True)
        unpinned = await store.set_flags(a, direct(b), False, False)
        assert unpinned is not None and (unpinned.pinned, unpinned.muted) == (False, False)
        theirs = await store.conversation(b, direct(a))
        assert theirs is not None and (theirs.pinned, theirs.muted) == (False, False)
        assert await store.set_flags(a, direct(fresh_id()), True, None) is None  # no such conversation


async def test_mark_read_recounts_unread_above_the_mark(timeline_backend: Backend) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        for i in range(4):
            await store.append(body(b, f"b{i}"), slots(b, a))  # a: seqs 1..4
        await store.append(body(a, "mine"), slots(a, b))  # a: seq 5
        assert await store.mark_read(a, direct(b), 2) == 2
        row = await store.conversation(a, direct(b))
        assert row is not None and (row.read_seq, row.unread) == (2, 2)
        assert await store.mark_read(a, direct(b), 1) == 2  # never backwards
        await store.append(body(b, "later"), slots(b, a))  # seq 6
        row = await store.conversation(a, direct(b))
        assert row is not None and row.unread == 3
        assert await store.mark_read(a, direct(b), 6) == 6
        row = await store.conversation(a, direct(b))
        assert row is not None and row.unread == 0
        assert await store.unread(a) == []
        assert await store.mark_read(a, direct(fresh_id()), 3) == 0  # no conversation: nothing stored


async def test_read_receipt_lands_in_the_peers_seqs(timeline_backend: Backend) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        await store.append(body(c, "c to b"), slots(c, b))  # b: 1 (b's seqs run ahead of a's)
        m1 = await store.append(body(b, "one"), slots(b, a))  # a: 1, b: 2
        await store.append(body(b, "two"), slots(b, a))  # a: 2, b: 3
        await store.append(
            MessageBody(ids.next_id(), b, 0, MsgType.SYSTEM, "notice"), [slots(b, a)[1]]
        )  # a: 3
        assert await store.propagate_read(a, b, 1) == m1.seqs[b] == 2
        assert await store.propagate_read(a, b, 1) == 0  # did not move
        # a's seq 3 is a notice b has no copy of: the mark stops at the last message both have
        assert await store.propagate_read(a, b, 3) == 3
        row = await store.conversation(b, direct(a))
        assert row is not None and row.peer_read_seq == 3
        assert await store.propagate_read(a, b, 2) == 0  # never backwards


async def test_recall_clears_the_content_and_appends_a_recall_entry_everywhere(
    timeline_backend: Backend,
) -> None:
    a, b, c, g = fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        await store.append(group_body(a, g, "before"), group_slots(a, g, [a, b, c]))  # seq 1 for all
        sent = await store.append(group_body(a, g, "oops"), group_slots(a, g, [a, b, c]))  # seq 2
        await store.mark_read(c, group(g), 2)  # c read it already; b did not
        event = recall_event(a, g, sent.msg_id)
        done = await store.recall(sent.msg_id, a, event)
        assert done is not None and done.msg_id == event.msg_id and done.seqs == {a: 3, b: 3, c: 3}
        for owner in (a, b, c):
            page, _ = await store.read(owner, 0, 10)
            assert [(m.content, m.recalled_by) for m in page[:2]] == [("before", 0), ("", a)]
            assert (page[2].msg_type, page[2].sender_id, page[2].is_sender) == (MsgType.RECALL, a, owner == a)
            assert page[2].content == recall_content(sent.msg_id, a)
            history, _ = await store.history(owner, group(g), 0, 10)
            assert history[1].recalled_by == a and history[1].content == ""
            copy = await store.message(owner, sent.msg_id)
            assert copy is not None and copy.recalled_by == a and copy.content == ""
            row = await store.conversation(owner, group(g))
            assert row is not None and row.last_msg_type == MsgType.RECALL and "oops" not in row.preview
        b_row, c_row = await store.conversation(b, group(g)), await store.conversation(c, group(g))
        assert (
            b_row is not None and b_row.unread == 1
        )  # "before" only: the recalled one and the entry do not count
        assert c_row is not None and c_row.unread == 0
        assert await store.mark_read(b, group(g), 1) == 1
        b_row = await store.conversation(b, group(g))
        assert b_row is not None and b_row.unread == 0  # the recount skips recalled messages too
        # recalled once: nothing more is written
        assert await store.recall(sent.msg_id, a, recall_event(a, g, sent.msg_id)) is None
        assert await store.max_seq(b) == 3


async def test_recall_of_a_direct_message(timeline_backend: Backend) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        sent = await store.append(body(a, "secret"), slots(a, b))
        done = await store.recall(sent.msg_id, a, recall_event(a, 0, sent.msg_id))
        assert done is not None and done.seqs == {a: 2, b: 2}
        theirs, _ = await store.read(b, 0, 10)
        assert [(m.content, m.msg_type, m.sender_id, m.receiver_id) for m in theirs] == [
            ("", MsgType.TEXT, a, b),
            (recall_content(sent.msg_id, a), MsgType.RECALL, a, b),
        ]
        row = await store.conversation(b, direct(a))
        assert row is not None and (row.unread, row.last_seq) == (0, 2)


async def test_group_read_counts_for_the_senders_messages(timeline_backend: Backend) -> None:
    a, b, c, d, g = fresh_id(), fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        m1 = await store.append(group_body(a, g, "one"), group_slots(a, g, [a, b, c, d]))
        m2 = await store.append(group_body(a, g, "two"), group_slots(a, g, [a, b, c, d]))
        theirs = await store.append(group_body(b, g, "b's"), group_slots(b, g, [a, b, c, d]))
        await store.mark_read(b, group(g), m2.seqs[b])
        await store.mark_read(c, group(g), m1.seqs[c])
        counts = await store.read_counts(a, g, [m1.msg_id, m2.msg_id, theirs.msg_id, 12345])
        assert [(r.msg_id, r.read, r.total) for r in counts] == [(m1.msg_id, 2, 3), (m2.msg_id, 1, 3)]
        assert await store.read_counts(a, fresh_id(), [m1.msg_id]) == []  # another group


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
async def test_conversation_maintenance_can_be_turned_off(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Only to measure its cost (bench): messages are still written, no conversation row is."""
    from tests.contract.conftest import make_backend

    backend = make_backend(kind, request, tmp_path_factory)
    a, b = fresh_id(), fresh_id()
    async with backend.database() as db:
        assert db is not None
        store = SqlTimelineStore(db, conversations=False)
        result = await store.append(body(a, "hi"), slots(a, b))
        assert result.seqs == {a: 1, b: 1}
        async with db.read(fresh=True) as conn:
            rows = await conn.scalar(
                select(func.count())
                .select_from(im_conversation)
                .where(im_conversation.c.owner_id.in_([a, b]))
            )
        assert rows == 0


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
async def test_a_group_message_costs_the_same_statements_whatever_the_group_size(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """DESIGN §10's budget: body, seq lock, seq bump, index rows; no conversation row (the members' list
    reads the group's last message and unread count from the index); MariaDB locks, bumps and reads the
    seq counters in one statement (RETURNING)."""
    from tests.contract.conftest import make_backend
    from tinyim.infra import metrics

    backend = make_backend(kind, request, tmp_path_factory)

    def statements() -> float:
        return float(metrics.DB_STATEMENTS._value.get())

    async with backend.database() as db:
        assert db is not None
        store = SqlTimelineStore(db)
        costs = {}
        for size in (3, 200):
            members = [fresh_id() for _ in range(size)]
            g = fresh_id()
            await store.append(group_body(members[0], g, "warm-up"), group_slots(members[0], g, members))
            before = statements()
            await store.append(group_body(members[1], g, "counted"), group_slots(members[1], g, members))
            costs[size] = statements() - before
            rows = await store.conversations(members[-1], 10, None)
            assert [(r.conversation, r.unread, r.preview) for r in rows] == [(group(g), 2, "counted")]
        expected = 3 if kind == "mariadb" else 4
        assert costs == {3: expected, 200: expected}


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
async def test_a_group_conversation_is_read_from_the_index_not_from_its_row(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A group message writes no member row: the list, unread counts, read marks and flags work for a
    member who has none, and a row an earlier version kept up to date per message (here: stale last
    message and unread count) only lends its read mark and flags."""
    from tests.contract.conftest import make_backend

    backend = make_backend(kind, request, tmp_path_factory)
    a, b, c, g = fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with backend.database() as db:
        assert db is not None
        store = SqlTimelineStore(db)
        m1 = await store.append(group_body(a, g, "one"), group_slots(a, g, [a, b, c]))
        m2 = await store.append(group_body(a, g, "two"), group_slots(a, g, [a, b, c]))
        async with db.read(fresh=True) as conn:
            stored = await conn.scalar(
                select(func.count()).select_from(im_conversation).where(im_conversation.c.other_id == g)
            )
        assert stored == 0
        old_row = {  # b's row as the per-message upsert left it after m1, read up to m1
            "owner_id": b, "conv_type": int(ConvType.GROUP), "other_id": g, "last_seq": m1.seqs[b],
            "last_msg_id": m1.msg_id, "last_sender_id": a, "last_msg_type": 0, "preview": "one", "unread": 99,
            "read_seq": m1.seqs[b], "peer_read_seq": 0, "pinned": 1, "muted": 0,
        }  # fmt: skip
        async with db.write() as conn:
            await conn.execute(im_conversation.insert().values(old_row))
        (mine,) = await store.conversations(b, 10, None)
        assert (mine.last_seq, mine.last_msg_id, mine.preview, mine.unread) == (
            m2.seqs[b],
            m2.msg_id,
            "two",
            1,
        )
        assert (mine.read_seq, mine.pinned) == (m1.seqs[b], True)
        assert [(u.conversation, u.unread) for u in await store.unread(b)] == [(group(g), 1)]
        # c has no row: unread 2; muting and reading create it
        assert [(u.conversation, u.unread) for u in await store.unread(c)] == [(group(g), 2)]
        muted = await store.set_flags(c, group(g), None, True)
        assert muted is not None and (muted.muted, muted.pinned, muted.unread, muted.last_seq) == (
            True,
            False,
            2,
            2,
        )
        assert await store.mark_read(c, group(g), m1.seqs[c]) == m1.seqs[c]
        assert await store.mark_read(c, group(g), 0) == m1.seqs[c]  # never lowered
        view = await store.conversation(c, group(g))
        assert view is not None and (view.unread, view.read_seq, view.muted) == (1, m1.seqs[c], True)
        counts = await store.read_counts(a, g, [m1.msg_id, m2.msg_id])
        assert [(r.read, r.total) for r in counts] == [(2, 2), (0, 2)]  # b and c read m1; nobody m2
        # no message in a group yet: nothing to read, nothing to flag
        other = fresh_id()
        assert await store.mark_read(c, group(other), 5) == 0
        assert await store.set_flags(c, group(other), True, None) is None
        assert await store.conversation(c, group(other)) is None


async def test_a_batch_reaches_mariadb_in_two_round_trips(
    mariadb_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On MariaDB a batch's statements share round trips: bodies with the seq bump, then index and
    conversation rows with the commit (no separate COMMIT); what lands is what separate statements
    wrote, and the next transaction on the connection is a new one."""
    from asyncmy.connection import Connection as DriverConnection

    backend = Backend("mariadb", mariadb_database)
    queries: list[str] = []
    sent: Any = DriverConnection.query
    committed = DriverConnection.commit

    async def query(self: DriverConnection, sql: str, unbuffered: bool = False) -> Any:
        queries.append(sql)
        return await sent(self, sql, unbuffered)

    async def commit(self: DriverConnection) -> None:
        queries.append("COMMIT")
        await committed(self)

    async with backend.database() as db:
        assert db is not None
        store = SqlTimelineStore(db)
        a, b = fresh_id(), fresh_id()
        await store.append(body(a, "warm-up"), slots(a, b))
        monkeypatch.setattr(DriverConnection, "query", query)
        monkeypatch.setattr(DriverConnection, "commit", commit)
        second = await store.append(body(b, "counted"), slots(b, a))
        monkeypatch.undo()
        assert len(queries) == 2, queries
        assert [q.count(";\n") for q in queries] == [1, 2] and queries[1].endswith(";\nCOMMIT")
        assert second.seqs == {a: 2, b: 2}
        third = await store.append(body(a, "after"), slots(a, b))
        assert third.seqs == {a: 3, b: 3}
        (with_b,) = await store.conversations(a, 10, None)
        assert (with_b.conversation, with_b.last_seq, with_b.unread) == (direct(b), 3, 1)
        assert with_b.preview == "after"
        # a transaction on the same connection that does not end itself is still committed by begin()
        c = fresh_id()
        async with db.hot_write() as conn:
            await conn.execute(im_user_seq.insert().values(user_id=c, max_seq=7))
    async with backend.database() as db:  # committed: seen from a new pool
        assert db is not None
        rows, _ = await SqlTimelineStore(db).read(b, 0, 10)
        assert [m.content for m in rows] == ["warm-up", "counted", "after"]
        async with db.read(fresh=True) as conn:
            assert await conn.scalar(select(im_user_seq.c.max_seq).where(im_user_seq.c.user_id == c)) == 7
