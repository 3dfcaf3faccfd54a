"""What every module shares: the caller's identity, the error type that edges translate for clients,
the queue of calls that run after a commit, and `outcomes` (a batch's items, each answered alone).

Error codes are plain strings here so domain code stays free of protobuf; the gateway maps them to
`ErrorCode` and the HTTP edge to status codes.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, TypeVar, cast

_log = logging.getLogger(__name__)
T = TypeVar("T")

INVALID_ARGUMENT: Final = "invalid_argument"
NOT_FOUND: Final = "not_found"
CONFLICT: Final = "conflict"
UNAUTHENTICATED: Final = "unauthenticated"
PERMISSION_DENIED: Final = "permission_denied"
NOT_FRIENDS: Final = "not_friends"
BLOCKED: Final = "blocked"
UNAVAILABLE: Final = "unavailable"
UNIMPLEMENTED: Final = "unimplemented"
ALREADY_EXISTS: Final = "already_exists"
NOT_MEMBER: Final = "not_member"
GROUP_FULL: Final = "group_full"
# conversations, receipts, recall
RECALL_TOO_LATE: Final = "recall_too_late"
NOT_RECALLABLE: Final = "not_recallable"
# user search, typing: too many requests of one kind in a window
RATE_LIMITED: Final = "rate_limited"
# reliability: a client_msg_id reused for a different message
CLIENT_MSG_ID_REUSED: Final = "client_msg_id_reused"


# Message ids (snowflake): 41 bits of milliseconds since ID_EPOCH_MS, 10 bits worker id, 12 bits sequence.
# The layout lives here so domain code can read an id's creation time; infra.snowflake makes the ids.
ID_EPOCH_MS: Final = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ID_WORKER_BITS: Final = 10
ID_SEQUENCE_BITS: Final = 12


def id_time_ms(message_id: int) -> int:
    """The creation time (ms since the Unix epoch) embedded in a message id."""
    return (message_id >> (ID_WORKER_BITS + ID_SEQUENCE_BITS)) + ID_EPOCH_MS


class ImError(Exception):
    """A request that cannot be served, with a code a client can branch on and a message it can show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_display_text(value: object, what: str, max_len: int) -> str:
    """A name people see (nickname, group name): trimmed, 1..max_len characters, no control characters."""
    if not isinstance(value, str):
        raise ImError(INVALID_ARGUMENT, f"{what} must be a string")
    value = value.strip()
    if not 1 <= len(value) <= max_len:
        raise ImError(INVALID_ARGUMENT, f"{what} must be 1-{max_len} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise ImError(INVALID_ARGUMENT, f"{what} must not contain control characters")
    return value


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, as established by the session (never taken from a request body)."""

    user_id: int
    device_id: str


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A signal for one user's devices: 'your timeline now reaches max_seq'. `except_device` already knows.
    `message` is the new message as the owner's client `MessageData` (serialized), when it is small enough
    to ride in the push: a device just one seq behind applies it without a sync."""

    user_id: int
    max_seq: int
    except_device: str = ""
    message: bytes = b""


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What anyone may see of a user."""

    user_id: int
    username: str
    nickname: str


# user search: what a user lets others do with their profile
@dataclass(frozen=True, slots=True)
class Privacy:
    hide_from_nickname_search: bool = False


async def outcomes(awaitables: Iterable[Awaitable[T]]) -> list[T | Exception]:
    """Run the awaitables at once; each one's result, or the error that it alone failed with, in order.
    A cancellation is nobody's own failure: it is raised."""
    done = await asyncio.gather(*awaitables, return_exceptions=True)
    for outcome in done:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return cast(list[T | Exception], done)


class LostRace(Exception):
    """A unit of work was rolled back to let a concurrent one through (a deadlock victim): nothing of it
    was written, and the command may run it again."""


class AfterCommit:
    """Calls to other processes that a committed change owes (read notices, kicks), run after the
    answer leaves: no acknowledgement waits on a gateway, and a failing or silent gateway fails nothing.

    One supervised task runs the queued calls in order (a user's notices keep their order); each call
    carries its own deadline (the gRPC deadline setting). The queue is bounded: when full, the oldest
    calls are dropped and counted; they are hints, and devices catch up on their next sync or login.
    """

    def __init__(
        self,
        max_pending: int = 10_000,
        on_drop: Callable[[str], None] = lambda _what: None,
        on_failure: Callable[[str], None] = lambda _what: None,
        call_timeout: float = 30.0,
    ) -> None:
        self._max_pending = max_pending
        self._call_timeout = call_timeout  # a backstop: calls have their own (shorter) deadlines
        self._on_drop = on_drop  # metrics: told what was dropped / what failed
        self._on_failure = on_failure
        self._pending: deque[tuple[str, Callable[[], Awaitable[None]]]] = deque()
        self._runner: asyncio.Task[None] | None = None

    def defer(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        """Queue `call` (named `what` in logs and metrics); never blocks, never raises."""
        self._pending.append((what, call))
        while len(self._pending) > self._max_pending:
            dropped, _ = self._pending.popleft()
            self._on_drop(dropped)
            _log.warning("after-commit queue full: dropped the oldest call (%s)", dropped)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def drained(self) -> None:
        """Wait until every call queued so far has run (shutdown, tests)."""
        while self._runner is not None:
            await asyncio.wait({self._runner})

    async def _run(self) -> None:
        try:
            while self._pending:
                what, call = self._pending.popleft()
                try:
                    await asyncio.wait_for(call(), self._call_timeout)
                except Exception:
                    self._on_failure(what)
                    _log.warning("after-commit call failed (%s)", what, exc_info=True)
        finally:
            self._runner = None
