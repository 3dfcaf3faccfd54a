"""Which failed transactions give their seqs back (`give_back`): only those that surely did not commit."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from tinyim.infra.db import rolled_back_by_the_database
from tinyim.modules.timeline.adapters.group_commit import PrecedingBatchFailed
from tinyim.modules.timeline.adapters.sql import TakenSeqs, give_back


class ServerError(Exception):
    """A MySQL-family driver error: (code, message)."""


class Abandoned:
    """The allocator side of `give_back`: records what it was given back (a fake that keeps state)."""

    def __init__(self, fails: bool = False) -> None:
        self.calls: list[dict[int, range]] = []
        self.fails = fails

    async def abandon(self, taken: Mapping[int, range], taken_at: float) -> None:
        if self.fails:
            raise ConnectionError("Redis is away")
        self.calls.append(dict(taken))


def refused(code: int, invalidated: bool = False) -> DBAPIError:
    return OperationalError("COMMIT", None, ServerError(code, "..."), connection_invalidated=invalidated)


def taken(committing: bool) -> TakenSeqs:
    t = TakenSeqs(committing=committing)
    t.took({7: 4, 9: 0}, {7: 2, 9: 1})
    return t


@pytest.mark.parametrize(
    ("exc", "committing", "given_back"),
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
async def test_only_seqs_that_surely_never_commit_are_given_back(
    exc: Exception, committing: bool, given_back: bool
) -> None:
    seqs = Abandoned()
    await give_back(seqs, taken(committing), exc)  # type: ignore[arg-type]
    assert seqs.calls == ([{7: range(5, 7), 9: range(1, 2)}] if given_back else [])


async def test_nothing_taken_nothing_given_back() -> None:
    seqs = Abandoned()
    await give_back(seqs, TakenSeqs(), PrecedingBatchFailed())  # type: ignore[arg-type]
    assert seqs.calls == []


async def test_a_failing_allocator_leaves_the_original_error_alone(caplog: pytest.LogCaptureFixture) -> None:
    await give_back(Abandoned(fails=True), taken(False), PrecedingBatchFailed())  # type: ignore[arg-type]
    assert "could not mark" in caplog.text


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
        (RuntimeError("not the database"), False),
    ],
)
def test_rolled_back_by_the_database(exc: BaseException, answer: bool) -> None:
    assert rolled_back_by_the_database(exc) is answer
