"""Group commit of the SQL timeline store (DESIGN §5 under batching), on SQLite and MariaDB.

Concurrent appends share one transaction; these tests prove the guarantees still hold inside and across
batches: gapless seqs, dedup by client_msg_id, a poisoned message failing alone, and a crash between a
batch's commit and its acks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from tests.contract.conftest import Backend, fresh_id, make_backend
from tests.contract.timeline.test_timeline_store import body, slots
from tinyim.infra import metrics
from tinyim.infra.db import Database
from tinyim.modules.timeline import MessageBody
from tinyim.modules.timeline.adapters.group_commit import PendingAppend, Turn
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore, im_message_body, im_message_index
from tinyim.modules.timeline.domain import Appended, Conversation, ConvType, group_slots, preview_of

KINDS = ["sqlite", "mariadb"]


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend(request.param, request, tmp_path_factory)


@asynccontextmanager
async def database(backend: Backend) -> AsyncIterator[Database]:
    async with backend.database() as db:
        assert db is not None
        yield db


def commits() -> float:
    return float(metrics.DB_COMMITS._value.get())


async def stored_copies(db: Database, msg_ids: Sequence[int]) -> tuple[int, int]:
    """(bodies, index rows) stored for these message ids."""
    async with db.read(fresh=True) as conn:
        bodies = await conn.scalar(
            select(func.count()).select_from(im_message_body).where(im_message_body.c.msg_id.in_(msg_ids))
        )
        rows = await conn.scalar(
            select(func.count()).select_from(im_message_index).where(im_message_index.c.msg_id.in_(msg_ids))
        )
    return int(bodies or 0), int(rows or 0)


async def test_many_concurrent_senders_get_gapless_seqs_in_few_commits(
    backend: Backend,
) -> None:
    """40 senders, 8 messages each, to 5 shared receivers and some groups: every owner's timeline is
    exactly 1..n, each sender's messages keep their order, and batching really happened."""
    rng = random.Random(12)
    receivers = [fresh_id() for _ in range(5)]
    senders = [fresh_id() for _ in range(40)]
    group_id = fresh_id()
    async with database(backend) as db:
        store = SqlTimelineStore(db)
        expected: dict[int, int] = {}
        sent: dict[int, list[Appended]] = {s: [] for s in senders}

        async def sender(s: int) -> None:
            for n in range(8):
                if n % 4 == 3:  # a group message now and then: many owners in one message
                    result = await store.append(
                        MessageBody(fresh_id(), s, group_id, 0, "g"),
                        group_slots(s, group_id, [s, *receivers]),
                    )
                else:
                    result = await store.append(body(s, f"{n}"), slots(s, rng.choice(receivers)))
                sent[s].append(result)

        before = commits()
        await asyncio.gather(*(sender(s) for s in senders))
        assert commits() - before < 40 * 8 / 2  # many messages per commit
        for results in sent.values():
            for result in results:
                for owner in result.seqs:
                    expected[owner] = expected.get(owner, 0) + 1
        for owner, count in expected.items():
            page, more = await store.read(owner, 0, 200)
            assert [m.seq_id for m in page] == list(range(1, count + 1)) and not more, owner
            assert await store.max_seq(owner) == count
        for s, results in sent.items():  # a sender's own seqs follow the order it sent in
            own = [r.seqs[s] for r in results]
            assert own == list(range(1, 9))


async def test_two_stores_batching_at_once_stay_gapless(
    backend: Backend,
) -> None:
    """Two msg nodes (two stores, two engines) writing to the same owners: seq row locks in ascending
    owner order keep them deadlock-free and gapless (DESIGN §5.3)."""
    owners = [fresh_id() for _ in range(6)]
    async with (
        database(backend) as db1,
        database(backend) as db2,
    ):
        if backend.kind == "sqlite":  # one writer per file: both nodes share the engine
            db2 = db1
        stores = [SqlTimelineStore(db1), SqlTimelineStore(db2)]

        async def sender(n: int) -> None:
            store = stores[n % 2]
            rng = random.Random(n)
            for _ in range(6):
                a, b = rng.sample(owners, 2)
                await store.append(body(a), slots(a, b))

        await asyncio.gather(*(sender(n) for n in range(24)))
        total = 0
        for owner in owners:
            page, _ = await stores[0].read(owner, 0, 500)
            assert [m.seq_id for m in page] == list(range(1, len(page) + 1))
            total += len(page)
        assert total == 24 * 6 * 2


async def test_the_same_client_msg_id_twice_in_one_batch_is_written_once(
    backend: Backend,
) -> None:
    a, b = fresh_id(), fresh_id()
    async with database(backend) as db:
        store = SqlTimelineStore(db)
        before = commits()
        first, again, reused, other = await asyncio.gather(
            store.append(body(a, "hello", "cm-1"), slots(a, b)),
            store.append(body(a, "hello", "cm-1"), slots(a, b)),
            store.append(body(a, "something else", "cm-1"), slots(a, b)),
            store.append(body(a, "another", "cm-2"), slots(a, b)),
        )
        assert commits() - before == 1  # one batch
        assert not first.duplicate and not other.duplicate
        assert again.duplicate and again.msg_id == first.msg_id and again.seqs == {a: first.seqs[a]}
        assert again.original == (b, 0, 0, "hello")
        # the service turns this into CLIENT_MSG_ID_REUSED: what was stored differs from what was asked
        assert reused.duplicate and reused.msg_id == first.msg_id and reused.original == (b, 0, 0, "hello")
        page, _ = await store.read(b, 0, 10)
        assert [m.content for m in page] == ["hello", "another"]


async def test_a_retry_of_an_earlier_batch_is_found_and_its_batch_mates_are_written(
    backend: Backend,
) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with database(backend) as db:
        store = SqlTimelineStore(db)
        first = await store.append(body(a, "once", "cm-r"), slots(a, b))
        retry, *mates = await asyncio.gather(
            store.append(body(a, "once", "cm-r"), slots(a, b)),
            store.append(body(c, "mate 1", "cm-x"), slots(c, b)),
            store.append(body(c, "mate 2"), slots(c, b)),
        )
        assert retry.duplicate and retry.msg_id == first.msg_id and retry.seqs == {a: first.seqs[a]}
        assert [m.duplicate for m in mates] == [False, False]
        page, _ = await store.read(b, 0, 10)
        assert [(m.seq_id, m.content) for m in page] == [(1, "once"), (2, "mate 1"), (3, "mate 2")]
        assert await stored_copies(db, [first.msg_id]) == (1, 2)


async def test_a_poisoned_message_fails_alone(
    backend: Backend,
) -> None:
    """A message the database refuses (here: a msg_id already taken) fails; its batch-mates commit."""
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with database(backend) as db:
        store = SqlTimelineStore(db)
        taken = await store.append(body(a, "first"), slots(a, b))
        poisoned = MessageBody(taken.msg_id, c, 0, 0, "clash")
        results = await asyncio.gather(
            store.append(body(c, "before"), slots(c, b)),
            store.append(poisoned, slots(c, b)),
            store.append(body(c, "after"), slots(c, b)),
            return_exceptions=True,
        )
        assert isinstance(results[1], IntegrityError)
        assert [isinstance(r, Appended) for r in results] == [True, False, True]
        page, _ = await store.read(b, 0, 10)
        assert [(m.seq_id, m.content) for m in page] == [(1, "first"), (2, "before"), (3, "after")]
        mine, _ = await store.read(c, 0, 10)
        assert [(m.seq_id, m.content) for m in mine] == [(1, "before"), (2, "after")]  # no hole


class CrashAfterCommit(SqlTimelineStore):
    """A process that dies after its batch committed and before any sender heard back."""

    async def _append_batch(self, batch: Sequence[PendingAppend], turn: Turn) -> list[Appended]:
        await super()._append_batch(batch, turn)
        raise asyncio.CancelledError  # the process is gone: no ack leaves


async def test_a_crash_between_commit_and_ack_then_a_retry_gets_the_first_result(
    backend: Backend,
) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with database(backend) as db:
        crashing = CrashAfterCommit(db)
        lost = await asyncio.gather(
            crashing.append(body(a, "lost ack", "cm-1"), slots(a, b)),
            crashing.append(body(c, "lost ack too", "cm-2"), slots(c, b)),
            return_exceptions=True,
        )
        assert all(isinstance(r, Exception) for r in lost)  # no sender was acked
        restarted = SqlTimelineStore(db)  # the client reconnects to another (or the restarted) node
        r1, r2 = await asyncio.gather(
            restarted.append(body(a, "lost ack", "cm-1"), slots(a, b)),
            restarted.append(body(c, "lost ack too", "cm-2"), slots(c, b)),
        )
        assert r1.duplicate and r2.duplicate and r1.seqs == {a: 1} and r2.seqs == {c: 1}
        page, _ = await restarted.read(b, 0, 10)
        assert [m.content for m in page] == ["lost ack", "lost ack too"]
        assert await stored_copies(db, [r1.msg_id, r2.msg_id]) == (2, 4)  # nothing written twice
        assert await restarted.max_seq(b) == 2


@pytest.fixture
def mariadb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend("mariadb", request, tmp_path_factory)


@pytest.mark.parametrize("writers", [1, 2])
async def test_the_lean_path_reconnects_when_the_server_dropped_its_connections(
    mariadb: Backend, writers: int
) -> None:
    """No ping per checkout on the hot engines: a pooled connection the server closed (restart, idle
    timeout) fails once, is thrown away, and the read or the batch runs again on a new one (with
    overlapping batches: the batch fails and its messages are written one by one)."""
    a, b = fresh_id(), fresh_id()
    async with database(mariadb) as db:
        store = SqlTimelineStore(db, batch_writers=writers, batch_overlap_rows=1)
        await store.append(body(a, "before"), slots(a, b))
        assert [m.content for m in (await store.read(b, 0, 10))[0]] == ["before"]
        # the connections the store used: kept checked out between uses
        reader_id = await db.hot_read(lambda conn: conn.scalar(text("SELECT CONNECTION_ID()")))
        async with db.hot_write() as conn:
            writer_id = await conn.scalar(text("SELECT CONNECTION_ID()"))
        async with db.writer.connect() as admin:
            for connection_id in (reader_id, writer_id):
                await admin.execute(text(f"KILL {int(connection_id)}"))
        await store.append(body(a, "after"), slots(a, b))
        assert [m.content for m in (await store.read(b, 0, 10))[0]] == ["before", "after"]
        assert await store.max_seq(b) == 2
        async with db.hot_write() as conn:  # the dropped ones were thrown away, not kept
            assert await conn.scalar(text("SELECT CONNECTION_ID()")) != writer_id
        assert await db.hot_read(lambda conn: conn.scalar(text("SELECT CONNECTION_ID()"))) != reader_id


AWKWARD = [
    'it\'s a "quote"',
    "back\\slash \\' \\\\",
    "%s %(name)s %% 100%",
    "NUL\x00byte and \n newline \r\t tab",
    "日本語 😀 ünïcödé",
    "'); DROP TABLE im_message_body; --",
    "",
]


async def test_batched_rows_keep_awkward_content_exactly(backend: Backend) -> None:
    """The batch writer renders multi-row VALUES itself on MariaDB: quotes, backslashes, percent signs,
    NUL, emoji and SQL in a message come back byte for byte, in the body and in every conversation
    preview of a group message (one string shared by all its rows)."""
    sender, receiver = fresh_id(), fresh_id()
    members = [fresh_id() for _ in range(3)]
    group_id = fresh_id()
    async with database(backend) as db:
        store = SqlTimelineStore(db)
        await asyncio.gather(*(store.append(body(sender, t), slots(sender, receiver)) for t in AWKWARD))
        for t in AWKWARD:
            await store.append(
                MessageBody(fresh_id(), sender, group_id, 0, t),
                group_slots(sender, group_id, [sender, *members]),
            )
            for member in members:
                view = await store.conversation(member, Conversation(ConvType.GROUP, group_id))
                assert view is not None and view.preview == preview_of(t)
        page, _ = await store.read(receiver, 0, 100)
        assert sorted(m.content for m in page) == sorted(AWKWARD)
        page, _ = await store.read(members[0], 0, 100)
        assert [m.content for m in page] == AWKWARD


async def test_append_many_writes_a_gateway_batch_in_one_commit_each_answered_alone(
    backend: Backend,
) -> None:
    """A msg node's batch (append_many): one commit for all; a poisoned item and a client_msg_id sent
    twice in the batch are answered on their own, in order, and the others are written."""
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with database(backend) as db:
        store = SqlTimelineStore(db)
        taken = await store.append(body(a, "first"), slots(a, b))
        before = commits()
        results = await store.append_many(
            [
                (body(c, "one", "cm-1"), slots(c, b)),
                (MessageBody(taken.msg_id, c, 0, 0, "clash"), slots(c, b)),
                (body(c, "one again", "cm-1"), slots(c, b)),
                (body(c, "two"), slots(c, b)),
            ]
        )
        one, clash, again, two = results
        assert isinstance(clash, IntegrityError)
        assert isinstance(one, Appended) and isinstance(again, Appended) and isinstance(two, Appended)
        assert again.duplicate and again.msg_id == one.msg_id and not one.duplicate
        page, _ = await store.read(b, 0, 10)
        assert [(m.seq_id, m.content) for m in page] == [(1, "first"), (2, "one"), (3, "two")]
        assert commits() - before >= 1  # the refused batch was written again message by message
        mark = commits()
        healthy = await store.append_many([(body(c, f"n{i}"), slots(c, b)) for i in range(5)])
        assert all(isinstance(r, Appended) and not r.duplicate for r in healthy)
        assert commits() - mark == 1  # a healthy batch: one commit
        mine, _ = await store.read(c, 0, 20)
        assert [m.seq_id for m in mine] == list(range(1, 8))  # gapless for the sender too
