"""TimelineStore contract: seq allocation, idempotent append, paging — the same on every adapter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from tests.contract.conftest import Backend, fresh_id, sqlite_copy
from tests.support.services import delete_prefix, require_redis
from tinyim.infra.redis import Keys
from tinyim.infra.snowflake import Snowflake
from tinyim.modules.timeline import Conversation, ConvType, MessageBody, TimelineSlot, TimelineStore
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.adapters.redis_seq import RedisSeqAllocator
from tinyim.modules.timeline.adapters.sql import SqlTimelineStore
from tinyim.modules.timeline.domain import group_slots

ids = Snowflake(worker_id=7)


@asynccontextmanager
async def open_store(backend: Backend) -> AsyncIterator[TimelineStore]:
    async with backend.database() as db:
        if db is None:
            yield InMemoryTimelineStore()
        elif not backend.kind.endswith("+redis"):
            # On MariaDB every batch may overlap the next (the server runs two batch writers; here even a
            # batch of one row lets the next one start): the contract holds under the worst case.
            yield SqlTimelineStore(db, batch_writers=2, batch_overlap_rows=1)
        else:
            url = require_redis()
            keys = Keys(f"tinyim-test-{uuid.uuid4().hex[:8]}:")
            client = Redis.from_url(url, decode_responses=True)
            try:
                seqs = RedisSeqAllocator(db, client, keys)
                yield SqlTimelineStore(db, seqs=seqs, batch_writers=2, batch_overlap_rows=1)
            finally:
                await client.aclose()
                await delete_prefix(url, keys.prefix)


def body(sender: int, text: str = "x", cmid: str = "") -> MessageBody:
    return MessageBody(ids.next_id(), sender, 0, 0, text, cmid)


def slots(sender: int, receiver: int) -> list[TimelineSlot]:
    return [TimelineSlot(sender, receiver, True), TimelineSlot(receiver, sender, False)]


async def test_append_gives_each_owner_the_next_seq(timeline_backend: Backend) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        first = await store.append(body(a, "1"), slots(a, b))
        second = await store.append(body(c, "2"), slots(c, b))
        third = await store.append(body(a, "3"), slots(a, c))
        assert first.seqs == {a: 1, b: 1} and second.seqs == {c: 1, b: 2} and third.seqs == {a: 2, c: 2}
        assert not first.duplicate
        assert [await store.max_seq(o) for o in (a, b, c)] == [2, 2, 2]
        assert await store.max_seq(fresh_id()) == 0


async def test_read_returns_owner_view_in_seq_order(timeline_backend: Backend) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        sent = await store.append(body(a, "hello", "cm-1"), slots(a, b))
        await store.append(body(b, "reply"), slots(b, a))
        mine, more = await store.read(a, 0, 10)
        assert not more
        assert [(m.seq_id, m.content, m.is_sender, m.sender_id, m.receiver_id) for m in mine] == [
            (1, "hello", True, a, b),
            (2, "reply", False, b, a),
        ]
        assert (
            mine[0].msg_id == sent.msg_id and mine[0].client_msg_id == "cm-1" and mine[1].client_msg_id == ""
        )
        theirs, _ = await store.read(b, 0, 10)
        assert [(m.content, m.is_sender, m.receiver_id) for m in theirs] == [
            ("hello", False, b),
            ("reply", True, a),
        ]
        assert theirs[0].created_ms > 1_700_000_000_000


async def test_read_pages_with_has_more(timeline_backend: Backend) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        for i in range(7):
            await store.append(body(a, f"m{i}"), slots(a, b))
        page, more = await store.read(b, 0, 3)
        assert [m.seq_id for m in page] == [1, 2, 3] and more
        page, more = await store.read(b, 3, 3)
        assert [m.seq_id for m in page] == [4, 5, 6] and more
        page, more = await store.read(b, 6, 3)
        assert [m.seq_id for m in page] == [7] and not more
        assert await store.read(b, 7, 3) == ([], False)


async def test_same_client_msg_id_returns_the_first_result_and_writes_nothing(
    timeline_backend: Backend,
) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        first = await store.append(body(a, "once", "dup"), slots(a, b))
        again = await store.append(body(a, "once", "dup"), slots(a, b))
        assert again.duplicate and again.msg_id == first.msg_id and again.seqs == {a: first.seqs[a]}
        assert await store.max_seq(b) == 1 and len((await store.read(b, 0, 10))[0]) == 1
        # Empty ids never deduplicate; the same id from another sender is another message.
        other = fresh_id()
        assert not (await store.append(body(other, "x", "dup"), slots(other, b))).duplicate
        await store.append(body(a, "no id"), slots(a, b))
        await store.append(body(a, "no id"), slots(a, b))
        assert await store.max_seq(b) == 4


async def test_concurrent_retries_of_one_client_msg_id_store_it_once(timeline_backend: Backend) -> None:
    a, b = fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        results = await asyncio.gather(*(store.append(body(a, "r", "race"), slots(a, b)) for _ in range(8)))
        assert len({r.msg_id for r in results}) == 1 and sum(not r.duplicate for r in results) == 1
        assert await store.max_seq(b) == 1


async def test_a_notice_key_dedups_notices_that_leave_the_sender_no_copy(timeline_backend: Backend) -> None:
    """Server notices (post_notice's dedup_key) are stored under the sender's client_msg_id although the
    sender often has no copy (a 1:1 notice; a group notice after the sender left): posted again, nothing
    is written, one body for all the group's receivers; concurrent posts (one batch) store it once."""
    a, b, c, group = fresh_id(), fresh_id(), fresh_id(), fresh_id()
    async with open_store(timeline_backend) as store:
        to_b = [TimelineSlot(b, a, False)]
        first = await store.append(body(a, "n1", "relation:k1"), to_b)
        again = await store.append(body(a, "n1", "relation:k1"), to_b)
        assert not first.duplicate and again.duplicate and again.msg_id == first.msg_id and again.seqs == {}
        members = group_slots(a, group, [b, c])  # a (the sender) left the group: no copy for a
        notice = body(a, "n2", "relation:k2")
        grouped = MessageBody(notice.msg_id, a, group, 0, "n2", "relation:k2")
        await store.append(grouped, members)
        redelivered = MessageBody(ids.next_id(), a, group, 0, "n2", "relation:k2")
        assert (await store.append(redelivered, members)).duplicate
        racing = [MessageBody(ids.next_id(), a, 0, 0, "n3", "relation:k3") for _ in range(4)]
        results = await asyncio.gather(*(store.append(m, to_b) for m in racing))
        assert sum(not r.duplicate for r in results) == 1
        assert [m.content for m in (await store.read(b, 0, 10))[0]] == ["n1", "n2", "n3"]
        assert [m.content for m in (await store.read(c, 0, 10))[0]] == ["n2"]
        assert await store.max_seq(a) == 0


async def test_concurrent_senders_to_one_owner_get_distinct_gapless_seqs(timeline_backend: Backend) -> None:
    target = fresh_id()
    senders = [fresh_id() for _ in range(8)]
    async with open_store(timeline_backend) as store:

        async def burst(sender: int) -> list[int]:
            return [(await store.append(body(sender), slots(sender, target))).seqs[target] for _ in range(10)]

        seqs = [s for chunk in await asyncio.gather(*(burst(s) for s in senders)) for s in chunk]
        assert sorted(seqs) == list(range(1, 81))
        page, _ = await store.read(target, 0, 100)
        assert [m.seq_id for m in page] == list(range(1, 81))


async def test_a_reader_syncing_during_concurrent_sends_never_skips(timeline_backend: Backend) -> None:
    """DESIGN §5.3: whatever a sync returns is a gapless continuation of what the reader had."""
    target = fresh_id()
    senders = [fresh_id() for _ in range(6)]
    total = 6 * 15
    async with open_store(timeline_backend) as store:
        done = asyncio.Event()
        seen: list[int] = []

        async def reader() -> None:
            local = 0
            while local < total:
                page, _ = await store.read(target, local, 7)
                for m in page:
                    assert m.seq_id == local + 1, f"skipped from {local} to {m.seq_id}"
                    local = m.seq_id
                    seen.append(local)
                if not page:
                    if done.is_set() and local >= total:
                        break
                    await asyncio.sleep(0)

        async def sender(s: int) -> None:
            for _ in range(15):
                await store.append(body(s), slots(s, target))

        read_task = asyncio.create_task(reader())
        await asyncio.gather(*(sender(s) for s in senders))
        done.set()
        await asyncio.wait_for(read_task, 30)
        assert seen == list(range(1, total + 1))


@st.composite
def conversations(draw: st.DrawFn) -> list[tuple[int, int]]:
    """A random series of 1:1 messages among up to 5 users (indexes into a fresh id list)."""
    n = draw(st.integers(2, 5))
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    return draw(st.lists(pairs, min_size=1, max_size=25))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation=conversations())
def test_property_per_owner_seqs_strictly_increase_without_gaps(
    kind: str,
    conversation: list[tuple[int, int]],
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Hypothesis: after any series of sends, every owner's timeline is exactly 1..n in order."""
    url = sqlite_copy(sqlite_template, tmp_path_factory) if kind == "sqlite" else ""

    async def scenario() -> None:
        users = [fresh_id() for _ in range(5)]
        async with open_store(Backend(kind, url)) as store:
            expected: dict[int, int] = {}
            for s, r in conversation:
                sender, receiver = users[s], users[r]
                result = await store.append(body(sender), slots(sender, receiver))
                for owner in (sender, receiver):
                    expected[owner] = expected.get(owner, 0) + 1
                    assert result.seqs[owner] == expected[owner]
            for owner, count in expected.items():
                page, more = await store.read(owner, 0, 100)
                assert [m.seq_id for m in page] == list(range(1, count + 1)) and not more
                assert await store.max_seq(owner) == count

    asyncio.run(scenario())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bursts=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    page=st.integers(1, 5),
)
def test_property_concurrent_senders_and_a_syncing_reader_on_sqlite(
    bursts: list[int], page: int, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Hypothesis over interleavings: senders of random burst sizes, a reader with a random page size."""
    url = sqlite_copy(sqlite_template, tmp_path_factory)

    async def scenario() -> None:
        target = fresh_id()
        async with open_store(Backend("sqlite", url)) as store:
            total = sum(bursts)
            observed: list[int] = []

            async def sender(count: int) -> None:
                s = fresh_id()
                for _ in range(count):
                    await store.append(body(s), slots(s, target))

            async def reader() -> None:
                local = 0
                while local < total:
                    got, _ = await store.read(target, local, page)
                    observed.extend(m.seq_id for m in got)
                    local = got[-1].seq_id if got else local
                    await asyncio.sleep(0)

            await asyncio.gather(reader(), *(sender(n) for n in bursts))
            assert observed == list(range(1, total + 1))

    asyncio.run(scenario())


def group_body(sender: int, group_id: int, text: str) -> MessageBody:
    return MessageBody(ids.next_id(), sender, group_id, 0, text)


async def test_group_append_writes_a_copy_per_member_with_their_own_seq(timeline_backend: Backend) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    group_id = fresh_id()
    async with open_store(timeline_backend) as store:
        await store.append(body(a), slots(a, b))  # b already has one message
        members = [a, b, c]
        result = await store.append(group_body(c, group_id, "hi all"), group_slots(c, group_id, members))
        assert result.seqs == {a: 2, b: 2, c: 1}
        page, _ = await store.read(b, 1, 10)
        assert [(m.group_id, m.sender_id, m.receiver_id, m.is_sender) for m in page] == [
            (group_id, c, 0, False)
        ]
        mine, _ = await store.read(c, 0, 10)
        assert mine[0].is_sender and mine[0].content == "hi all"


async def test_history_of_one_conversation_pages_backwards(timeline_backend: Backend) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    same_number_group = b  # a group whose id equals a user id: the conversations must not mix
    async with open_store(timeline_backend) as store:
        for i in range(5):
            await store.append(body(b, f"b{i}"), slots(b, a))
            await store.append(body(c, f"c{i}"), slots(c, a))
        await store.append(
            group_body(c, same_number_group, "group"), group_slots(c, same_number_group, [a, c])
        )
        direct = Conversation(ConvType.DIRECT, b)
        page, more = await store.history(a, direct, 0, 3)
        assert [m.content for m in page] == ["b2", "b3", "b4"] and more
        older, more = await store.history(a, direct, page[0].seq_id, 3)
        assert [m.content for m in older] == ["b0", "b1"] and not more
        grouped, more = await store.history(a, Conversation(ConvType.GROUP, same_number_group), 0, 10)
        assert [m.content for m in grouped] == ["group"] and not more
        assert await store.history(b, Conversation(ConvType.DIRECT, c), 0, 10) == ([], False)


async def test_read_marks_and_unread(timeline_backend: Backend) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    group_id = fresh_id()
    async with open_store(timeline_backend) as store:
        for i in range(3):
            await store.append(body(b, f"b{i}"), slots(b, a))
        await store.append(body(a, "mine"), slots(a, b))
        await store.append(group_body(c, group_id, "g"), group_slots(c, group_id, [a, c]))
        unread = {
            (u.conversation.conv_type, u.conversation.other_id): (u.unread, u.last_seq, u.read_seq)
            for u in await store.unread(a)
        }
        # last_seq: the conversation's last message (a's own reply at seq 4)
        assert unread == {(ConvType.DIRECT, b): (3, 4, 0), (ConvType.GROUP, group_id): (1, 5, 0)}
        # plain ints on every driver (MariaDB answers DECIMAL for aggregates over COALESCE)
        assert {type(n) for counts in unread.values() for n in counts} == {int}
        direct = Conversation(ConvType.DIRECT, b)
        assert await store.mark_read(a, direct, 2) == 2
        assert await store.mark_read(a, direct, 1) == 2  # never backwards
        marks = {u.conversation: (u.unread, u.read_seq) for u in await store.unread(a)}
        assert marks[direct] == (1, 2)
        await store.mark_read(a, direct, 4)
        await store.mark_read(a, Conversation(ConvType.GROUP, group_id), 5)
        assert await store.unread(a) == []
