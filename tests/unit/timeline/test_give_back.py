"""Which failed transactions give their seqs back (`given_back`): only those that surely did not commit."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from tinyim.infra.db import rolled_back_by_the_database
from tinyim.modules.timeline.adapters.group_commit import PrecedingBatchFailed
from tinyim.modules.timeline.adapters.sql import TakenSeqs, given_back


class ServerError(Exception):
    """A MySQL-family driver error: (code, message)."""


def refused(code: int, invalidated: bool = False) -> DBAPIError:
    return OperationalError("COMMIT", None, ServerError(code, "..."), connection_invalidated=invalidated)


def taken(committing: bool) -> TakenSeqs:
    t = TakenSeqs(committing=committing)
    t.took({7: 4, 9: 0}, {7: 2, 9: 1})
    return t


@pytest.mark.parametrize(
    ("exc", "committing", "given"),
    [
        (PrecedingBatchFailed(), False, True),  # gave way before its COMMIT
        (ConnectionResetError(), False, True),  # no COMMIT was sent: nothing can have committed
        (TimeoutError(), False, True),
        (refused(1406), False, True),  # data too long, before the COMMIT
        (refused(1213), True, True),  # a deadlock victim: its round trip held the COMMIT, never run
        (refused(1205), True, True),  # a lock wait timed out (a statement, not the COMMIT)
        (refused(1317), True, False),  # interrupted: an answer to the COMMIT may not mean rolled back
        (ConnectionResetError(), True, False),  # the COMMIT may have landed
        (TimeoutError(), True, False),
        (refused(2013), True, False),  # "lost connection": the client's own error, no answer
        (refused(1213, invalidated=True), True, False),
        (IntegrityError("INSERT", None, ServerError(1062, "Duplicate entry")), False, False),  # collision
    ],
)
def test_only_seqs_that_surely_never_commit_are_given_back(
    exc: Exception, committing: bool, given: bool
) -> None:
    assert given_back(taken(committing), exc) == ({7: range(5, 7), 9: range(1, 2)} if given else {})


def test_nothing_taken_nothing_given_back() -> None:
    assert given_back(TakenSeqs(), PrecedingBatchFailed()) == {}


def test_one_seq_per_owner_when_no_counts_are_given() -> None:
    t = TakenSeqs()
    before = time.monotonic()
    t.took({3: 10, 4: 0})
    assert t.blocks() == {3: range(11, 12), 4: range(1, 2)} and t.at >= before


@pytest.mark.parametrize(
    ("exc", "answer"),
    [
        (refused(1213), True),
        (refused(1205), True),
        (refused(1406), False),  # refused, but not a rollback that a COMMIT in the same trip could not undo
        (refused(1317), False),
        (refused(2006), False),  # server has gone away (client side)
        (refused(1213, invalidated=True), False),
        (OperationalError("COMMIT", None, ServerError("Packet sequence number wrong")), False),
        (OperationalError("INSERT", None, ServerError("Deadlock found when trying to get lock")), True),
        (OperationalError("INSERT", None, ServerError(1317, "a message that says deadlock")), False),
        (RuntimeError("not the database"), False),
    ],
)
def test_rolled_back_by_the_database(exc: BaseException, answer: bool) -> None:
    assert rolled_back_by_the_database(exc) is answer
