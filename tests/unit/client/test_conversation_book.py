"""The SDK's conversation list: last message, unread counts as the server counts them, requests that later
messages settle, and saving it next to the local seq."""

from __future__ import annotations

import json
from pathlib import Path

from tinyim.client import DEVICE_IDS, ConversationBook, Message, Unread, conversation_key, describe
from tinyim.modules.auth.domain import DEVICE_TYPES
from tinyim.pb import im_protocol_pb2 as pb

ME, BOB, CAROL, GROUP = 1, 2, 3, 900


def msg(
    seq: int, sender: int, receiver: int = ME, group: int = 0, type_: int = pb.TEXT, content: str = "x"
) -> Message:
    return Message(seq, 1000 + seq, sender, receiver, group, type_, content, 0, f"c{seq}", sender == ME)


def notice(
    seq: int, sender: int, receiver: int, event: str, type_: int = pb.SYSTEM, **fields: object
) -> Message:
    return msg(seq, sender, receiver, type_=type_, content=json.dumps({"event": event, **fields}))


def test_conversations_are_keyed_by_peer_or_group_and_ordered_by_last_activity() -> None:
    book = ConversationBook(ME)
    book.add(msg(1, BOB))
    book.add(msg(2, ME, CAROL))
    book.add(msg(3, CAROL, ME, group=GROUP))
    book.add(msg(4, ME, BOB, content="latest"))
    assert conversation_key(msg(2, ME, CAROL)) == (CAROL, 0)
    assert [c.key for c in book.ordered()] == [(BOB, 0), (0, GROUP), (CAROL, 0)]
    last = book.get((BOB, 0)).last
    assert last is not None and last.content == "latest"
    # An older entry delivered late (history) does not replace the last message.
    book.add(msg(0, BOB, content="old"), count_unread=False)
    last = book.get((BOB, 0)).last
    assert last is not None and last.content == "latest"


def test_unread_counts_start_from_the_server_and_grow_only_with_newer_messages() -> None:
    book = ConversationBook(ME)
    for m in (msg(1, BOB), msg(2, BOB), msg(3, ME, BOB)):
        book.add(m, count_unread=False)  # the first sync
    book.seed_unread([Unread(BOB, 0, 2, 2, 0)])
    assert book.get((BOB, 0)).unread == 2
    book.add(msg(2, BOB))  # the same message again (a resync): not counted twice
    assert book.get((BOB, 0)).unread == 2
    book.add(msg(4, BOB))
    book.add(msg(5, ME, BOB))  # my reply does not mark anything read (the server would still count)
    assert book.get((BOB, 0)).unread == 3
    assert book.total_unread == 3
    book.mark_read((BOB, 0), 4)  # another device read up to 4
    assert book.get((BOB, 0)).unread == 0
    book.add(msg(6, BOB))
    book.add(msg(7, BOB, group=GROUP))
    assert (book.get((BOB, 0)).unread, book.get((0, GROUP)).unread, book.total_unread) == (1, 1, 2)
    book.mark_read((BOB, 0), 5)  # a mark below the last message keeps the count
    assert book.get((BOB, 0)).unread == 1


def test_friend_requests_open_and_are_settled_by_either_answer() -> None:
    book = ConversationBook(ME)
    book.add(notice(1, BOB, ME, "friend_request", type_=pb.FRIEND_REQ, request_uid=BOB, reason="hi"))
    book.add(notice(2, CAROL, ME, "friend_request", type_=pb.FRIEND_REQ, request_uid=CAROL))
    assert {r.user_id: r.reason for r in book.friend_requests.values()} == {BOB: "hi", CAROL: ""}
    book.add(notice(3, ME, BOB, "friend_accepted", user_id=ME))  # I answered Bob
    book.add(notice(4, CAROL, ME, "friend_accepted", user_id=CAROL))  # Carol accepted mine meanwhile
    assert book.friend_requests == {}
    # My own request to someone is not a request to me.
    book.add(notice(5, ME, BOB, "friend_request", type_=pb.FRIEND_REQ, request_uid=ME))
    assert book.friend_requests == {}


def test_join_requests_are_settled_by_a_join_or_my_rejection() -> None:
    book = ConversationBook(ME)
    book.add(notice(1, BOB, ME, "group_join_request", group_id=GROUP, user_id=BOB))
    book.add(notice(2, CAROL, ME, "group_join_request", group_id=GROUP, user_id=CAROL))
    assert set(book.join_requests) == {(GROUP, BOB), (GROUP, CAROL)}
    member_joined = json.dumps({"event": "member_joined", "group_id": GROUP, "user_id": BOB})
    book.add(msg(3, ME, 0, group=GROUP, type_=pb.SYSTEM, content=member_joined))  # approved (by anyone)
    book.add(notice(4, ME, CAROL, "group_join_rejected", group_id=GROUP, name="Team"))
    assert book.join_requests == {}


def test_a_saved_book_comes_back_and_a_foreign_or_broken_one_is_empty(tmp_path: Path) -> None:
    book = ConversationBook(ME)
    book.add(msg(1, BOB, content="hello"))
    book.add(notice(2, CAROL, ME, "friend_request", type_=pb.FRIEND_REQ, request_uid=CAROL))
    book.add(notice(3, BOB, ME, "group_join_request", group_id=GROUP, user_id=BOB))
    path = tmp_path / "book.json"
    book.save(path)
    again = ConversationBook.load(path, ME)
    assert again == book
    assert ConversationBook.load(path, BOB).conversations == {}  # someone else's
    path.write_text("{not json")
    assert ConversationBook.load(path, ME) == ConversationBook(ME)
    assert ConversationBook.load(tmp_path / "missing.json", ME) == ConversationBook(ME)


def test_messages_render_as_one_line() -> None:
    names = {BOB: "bob", CAROL: "carol"}.get
    assert describe(msg(1, BOB, content="hi")) == "hi"
    file_body = json.dumps({"task_id": 7, "file_name": "a.pdf", "size": 2048})
    assert describe(msg(2, BOB, type_=pb.FILE, content=file_body)) == "[file] a.pdf (2.0 KiB, task 7)"
    request = notice(3, BOB, ME, "friend_request", type_=pb.FRIEND_REQ, request_uid=BOB, reason="hey")
    assert describe(request, names) == "* friend request from bob: hey"
    joined = notice(4, BOB, ME, "member_joined", group_id=GROUP, user_id=CAROL)
    assert describe(joined, names) == f"* carol joined group {GROUP}"
    assert describe(msg(5, BOB, type_=pb.SYSTEM, content="plain")) == "[type 3] plain"


def test_the_sdk_names_the_device_types_the_server_accepts() -> None:
    assert set(DEVICE_IDS) == set(DEVICE_TYPES)
