"""Calls owed after a commit (read notices, receipts, kicks) never hold up the answer: a gateway that
never answers delays no read mark and no login; gateways are called at once; failures and drops are
counted, and the queue keeps going."""

from __future__ import annotations

import asyncio
import time

from tests.unit.fakes import FakeHasher, FakePolicy, RecordingGatewayLink
from tinyim.bootstrap.bridges import AfterCommitKicker
from tinyim.infra.snowflake import Snowflake
from tinyim.kernel import AfterCommit, Caller
from tinyim.modules.auth import AuthService
from tinyim.modules.auth.adapters.crypto import JwtCodec
from tinyim.modules.auth.adapters.memory import InMemoryAccounts, InMemoryDeviceSessions
from tinyim.modules.auth.adapters.memory_unit_of_work import InMemoryAuthUnits
from tinyim.modules.presence import PresenceRouter
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.modules.presence.ports import DeviceSession
from tinyim.modules.timeline import (
    Conversation,
    ConvType,
    MsgType,
    SendRequest,
    TimelineService,
    TimelineWriter,
)
from tinyim.modules.timeline.adapters.memory import InMemoryTimelineStore
from tinyim.modules.timeline.adapters.push import FramePushNotifier

ALICE, BOB = 1, 2
ANSWER_WITHIN = 1.0  # seconds: far below "never"; a request that waited on the gateway would hang


class SilentGateways(RecordingGatewayLink):
    """Gateways that accept calls and never answer (a partitioned host: no error, no reply), except
    those named `answering`."""

    def __init__(self, answering: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.answering = answering
        self.calls: list[tuple[str, str]] = []  # (gateway, what) as calls start

    async def _hang(self, gateway_id: str, what: str) -> None:
        self.calls.append((gateway_id, what))
        if gateway_id not in self.answering:
            await asyncio.Event().wait()

    async def push_read(
        self, gateway_id: str, user_id: int, except_device: str, peer_id: int, group_id: int, read_seq: int
    ) -> None:
        await self._hang(gateway_id, "read")
        await super().push_read(gateway_id, user_id, except_device, peer_id, group_id, read_seq)

    async def kick(
        self, gateway_id: str, user_id: int, device_id: str, keep_token_id: str, reason: str
    ) -> None:
        await self._hang(gateway_id, "kick")
        await super().kick(gateway_id, user_id, device_id, keep_token_id, reason)


async def online(sessions: InMemorySessionDirectory, user_id: int, device: str, *gateways: str) -> None:
    for n, gateway_id in enumerate(gateways):
        await sessions.bind(DeviceSession(user_id, device, gateway_id, f"c{n}"))


async def test_a_read_mark_is_answered_while_the_gateway_never_answers_its_notice() -> None:
    sessions, gateways = InMemorySessionDirectory(), SilentGateways()
    await online(sessions, BOB, "Phone", "gw-a")  # bob's other device, behind a silent gateway
    pushes = FramePushNotifier(PresenceRouter(sessions, gateways))  # as the composition root wires it
    store = InMemoryTimelineStore()
    after_commit = AfterCommit(call_timeout=60)
    timeline = TimelineService(
        store,
        TimelineWriter(store, Snowflake(1), pushes),
        FakePolicy({ALICE, BOB}),
        pushes,
        after_commit=after_commit,
    )
    await timeline.send(Caller(ALICE, "PC"), SendRequest(BOB, 0, MsgType.TEXT, "hi"))
    started = time.monotonic()
    stored = await asyncio.wait_for(
        timeline.mark_read(Caller(BOB, "PC"), Conversation(ConvType.DIRECT, ALICE), 1), ANSWER_WITHIN
    )
    assert stored == 1 and time.monotonic() - started < ANSWER_WITHIN
    for _ in range(100):  # the notice is on its way (and stuck at the gateway), not forgotten
        if ("gw-a", "read") in gateways.calls:
            break
        await asyncio.sleep(0.01)
    assert ("gw-a", "read") in gateways.calls and gateways.reads == []


async def test_a_login_is_answered_while_the_old_sessions_gateway_never_answers_the_kick() -> None:
    sessions, gateways = InMemorySessionDirectory(), SilentGateways(answering=frozenset({"gw-b"}))
    presence = PresenceRouter(sessions, gateways)
    after_commit = AfterCommit()
    accounts, device_sessions = InMemoryAccounts(), InMemoryDeviceSessions()
    auth = AuthService(
        accounts,
        device_sessions,
        FakeHasher(),
        JwtCodec("s" * 40),
        AfterCommitKicker(presence, after_commit),
        600,
        units=InMemoryAuthUnits(accounts, device_sessions),
    )
    user_id = await auth.register("alice", "password1", "Alice")
    await auth.login("alice", "password1", "PC")
    await online(sessions, user_id, "PC", "gw-a")  # the old PC session, behind a silent gateway
    result = await asyncio.wait_for(auth.login("alice", "password1", "PC"), ANSWER_WITHIN)
    assert result.user_id == user_id
    for _ in range(100):  # the kick is on its way (and stuck at the gateway), not forgotten
        if gateways.calls:
            break
        await asyncio.sleep(0.01)
    assert gateways.calls == [("gw-a", "kick")]


async def test_every_gateway_is_called_at_once_so_a_silent_one_holds_up_no_other() -> None:
    sessions, gateways = InMemorySessionDirectory(), SilentGateways(answering=frozenset({"gw-b"}))
    await online(sessions, ALICE, "Phone", "gw-a")
    await online(sessions, ALICE, "PC", "gw-b")
    presence = PresenceRouter(sessions, gateways)
    kick = asyncio.create_task(presence.kick(ALICE, "", "", "account disabled"))  # every device
    for _ in range(100):
        if gateways.kicks:
            break
        await asyncio.sleep(0.01)
    assert [(g, u, d) for g, u, d, _ in gateways.kicks] == [("gw-b", ALICE, "")]
    assert ("gw-a", "kick") in gateways.calls and not kick.done()  # gw-a still has not answered
    kick.cancel()


async def test_calls_run_in_order_and_a_failure_is_counted_without_stopping_the_next() -> None:
    failed: list[str] = []
    queue = AfterCommit(on_failure=failed.append)
    ran: list[int] = []

    async def ok(n: int) -> None:
        ran.append(n)

    async def broken() -> None:
        raise ConnectionError("gateway gone")

    queue.defer("one", lambda: ok(1))
    queue.defer("broken", broken)
    queue.defer("two", lambda: ok(2))
    await queue.drained()
    assert ran == [1, 2] and failed == ["broken"]


async def test_a_full_queue_drops_the_oldest_calls_and_counts_them() -> None:
    dropped: list[str] = []
    queue = AfterCommit(max_pending=2, on_drop=dropped.append)
    ran: list[str] = []

    def call(name: str) -> object:
        async def run() -> None:
            ran.append(name)

        return run

    for name in ("a", "b", "c", "d"):  # queued before the runner had a chance to start
        queue.defer(name, call(name))  # type: ignore[arg-type]
    assert queue.pending == 2 and dropped == ["a", "b"]
    await queue.drained()
    assert ran == ["c", "d"]


async def test_a_call_that_never_ends_is_cut_by_the_backstop_and_the_queue_goes_on() -> None:
    failed: list[str] = []
    queue = AfterCommit(on_failure=failed.append, call_timeout=0.05)
    ran: list[str] = []

    async def hang() -> None:
        await asyncio.Event().wait()

    async def after() -> None:
        ran.append("after")

    queue.defer("hang", hang)
    queue.defer("after", after)
    await asyncio.wait_for(queue.drained(), 5)
    assert failed == ["hang"] and ran == ["after"]
