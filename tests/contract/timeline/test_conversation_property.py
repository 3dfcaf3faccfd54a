"""Hypothesis: after any mix of 1:1 messages, group messages, reads, recalls and pin/mute, every user's
conversation list (maintained as messages are written) equals what a full sync of their timeline computes.

The timeline service runs on each store: memory, SQLite, MariaDB (with the locked-row seqs)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.conftest import Backend, fresh_id, sqlite_copy
from tests.contract.timeline.test_timeline_store import open_store
from tests.unit.fakes import FakePolicy, RecordingNotifier
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import Caller
from tinyim.modules.timeline import (
    Conversation,
    ConvType,
    MsgType,
    SendRequest,
    StoredMessage,
    TimelineService,
    TimelineStore,
    TimelineWriter,
)
from tinyim.modules.timeline.domain import PREVIEW_CHARS, conversation_of_message

USERS = 4  # user 0 owns the group, user 1 is an admin

Op = tuple[Any, ...]
ops = st.one_of(
    st.tuples(st.just("direct"), st.integers(0, USERS - 1), st.integers(0, USERS - 1)).filter(
        lambda o: o[1] != o[2]
    ),
    st.tuples(st.just("group"), st.integers(0, USERS - 1)),
    st.tuples(st.just("read"), st.integers(0, USERS - 1), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("recall"), st.integers(0, USERS - 1), st.integers(0, 50)),
    st.tuples(st.just("flag"), st.integers(0, USERS - 1), st.integers(0, 50), st.booleans(), st.booleans()),
)


class Roles:
    def __init__(self, group_id: int, owner: int, admin: int) -> None:
        self.roles = {owner: 3, admin: 2}
        self.group_id = group_id

    async def group_role(self, group_id: int, user_id: int) -> int:
        return self.roles.get(user_id, 1) if group_id == self.group_id else 0


async def full_sync(service: TimelineService, user: int) -> list[StoredMessage]:
    got: list[StoredMessage] = []
    while True:
        page = await service.sync(Caller(user, "PC"), got[-1].seq_id if got else 0, 7)
        got += page.messages
        if not page.has_more:
            return got


async def scenario(store: TimelineStore, script: list[Op]) -> None:
    users = [fresh_id() for _ in range(USERS)]
    group_id = fresh_id()
    notifier = RecordingNotifier()
    writer = TimelineWriter(store, Snowflake(3), notifier)
    policy = FakePolicy(set(users), {group_id: list(users)})
    service = TimelineService(store, writer, policy, notifier, roles=Roles(group_id, users[0], users[1]))
    marks: dict[tuple[int, Conversation], int] = defaultdict(int)
    flags: dict[tuple[int, Conversation], tuple[bool, bool]] = {}

    async def conversations_of(user: int) -> dict[Conversation, list[StoredMessage]]:
        by_conv: dict[Conversation, list[StoredMessage]] = defaultdict(list)
        for m in await full_sync(service, user):
            by_conv[conversation_of_message(m)].append(m)
        return by_conv

    for n, op in enumerate(script):
        kind = op[0]
        if kind == "direct":
            await service.send(
                Caller(users[op[1]], "PC"), SendRequest(users[op[2]], 0, MsgType.TEXT, f"d{n} " * 9)
            )
        elif kind == "group":
            await service.send(Caller(users[op[1]], "PC"), SendRequest(0, group_id, MsgType.TEXT, f"g{n}"))
        elif kind in ("read", "flag"):
            user = users[op[1]]
            convs = await conversations_of(user)
            if not convs:
                continue
            conv = sorted(convs, key=lambda c: (c.conv_type, c.other_id))[op[2] % len(convs)]
            if kind == "read":
                entries = convs[conv]
                seq = entries[op[3] % len(entries)].seq_id
                await service.mark_read(Caller(user, "PC"), conv, seq)
                marks[(user, conv)] = max(marks[(user, conv)], seq)
            else:
                await service.update_conversation(Caller(user, "PC"), conv, op[3], op[4])
                flags[(user, conv)] = (op[3], op[4])
        else:  # recall: the user's own message, or (owner, admin) anyone's group message
            user = users[op[1]]
            candidates = [
                m
                for m in await full_sync(service, user)
                if m.msg_type == MsgType.TEXT
                and not m.recalled_by
                and (m.sender_id == user or (m.group_id and op[1] in (0, 1)))
            ]
            if candidates:
                target = candidates[op[2] % len(candidates)]
                result = await service.recall(Caller(user, "PC"), target.msg_id)
                assert not result.already_recalled and result.seq_id > 0

    timelines = {u: await full_sync(service, u) for u in users}
    for user in users:
        expected = []
        by_conv: dict[Conversation, list[StoredMessage]] = defaultdict(list)
        for m in timelines[user]:
            by_conv[conversation_of_message(m)].append(m)
        for conv, entries in by_conv.items():
            last = entries[-1]
            read = marks[(user, conv)]
            unread = sum(
                1
                for m in entries
                if m.seq_id > read and not m.is_sender and m.msg_type != MsgType.RECALL and not m.recalled_by
            )
            peer_read = 0
            if conv.conv_type == ConvType.DIRECT:
                peer = conv.other_id
                peer_mark = marks[(peer, Conversation(ConvType.DIRECT, user))]
                mine = {m.msg_id: m.seq_id for m in entries}
                shared = [
                    mine[m.msg_id]
                    for m in timelines[peer]
                    if m.seq_id <= peer_mark
                    and m.msg_id in mine
                    and conversation_of_message(m).other_id == user
                ]
                peer_read = max(shared, default=0)
            pinned, muted = flags.get((user, conv), (False, False))
            expected.append(
                (
                    conv,
                    last.seq_id,
                    last.msg_id,
                    last.sender_id,
                    last.msg_type,
                    last.content[:PREVIEW_CHARS],
                    unread,
                    read,
                    peer_read,
                    pinned,
                    muted,
                )
            )
        expected.sort(key=lambda e: (e[9], e[1]), reverse=True)  # pinned first, newest first
        listed = []
        cursor = ""
        while True:
            page = await service.conversations(Caller(user, "Web"), 3, cursor)
            listed += [
                (
                    v.conversation,
                    v.last_seq,
                    v.last_msg_id,
                    v.last_sender_id,
                    v.last_msg_type,
                    v.preview,
                    v.unread,
                    v.read_seq,
                    v.peer_read_seq,
                    v.pinned,
                    v.muted,
                )
                for v in page.items
            ]
            cursor = page.next_cursor
            if not cursor:
                break
        assert listed == expected, f"user {user}"
        unread_view = {u.conversation: u.unread for u in await service.unread(Caller(user, "PC"))}
        assert unread_view == {e[0]: e[6] for e in expected if e[6]}


@pytest.mark.parametrize("kind", ["memory", "sqlite", "mariadb"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(ops, min_size=1, max_size=30))
def test_property_conversation_list_matches_a_full_sync(
    kind: str,
    script: list[Op],
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if kind == "sqlite":
        backend = Backend(kind, sqlite_copy(sqlite_template, tmp_path_factory))
    elif kind == "mariadb":
        backend = Backend(kind, request.getfixturevalue("mariadb_database"))
    else:
        backend = Backend(kind)

    async def run() -> None:
        async with open_store(backend) as store:
            await scenario(store, script)

    asyncio.run(run())
