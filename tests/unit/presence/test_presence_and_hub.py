"""Presence routing (spec test plan C.2 push/offline) and the gateway's session manager (plan D)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tests.unit.fakes import RecordingGatewayLink
from tinyim.edges.gateway.connection import CLOSE_KICKED, INLINE_MAX_MESSAGES, Connection, TokenBucket
from tinyim.edges.gateway.hub import GatewayHub, LocalGatewayLink
from tinyim.kernel import PushTarget
from tinyim.modules.presence import DeviceSession, PresenceRouter
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode


class FakeSocket:
    """Records what the gateway would put on the wire."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed_with: int | None = None

    async def send(self, data: bytes) -> None:
        await asyncio.sleep(0)  # a real send yields; signals pile up meanwhile
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = code

    def cmds(self) -> list[int]:
        return [decode(d).cmd for d in self.sent]


def connection(user_id: int, device: str, token: str = "t") -> tuple[Connection, FakeSocket]:
    sock = FakeSocket()
    conn = Connection(
        sock.send,
        sock.close,
        user_id,
        device,
        token,
        f"c-{user_id}-{device}-{token}",
        TokenBucket(10, 10),
        TokenBucket(0.2, 20),
    )
    return conn, sock


async def test_a_slow_gateway_does_not_hold_back_the_others() -> None:
    """Pushes go to every gateway at once: gw-a answers only after gw-b got its batch."""
    b_reached = asyncio.Event()

    class Link(RecordingGatewayLink):
        async def push(self, gateway_id: str, targets: Sequence[PushTarget]) -> None:
            if gateway_id == "gw-a":
                await b_reached.wait()
            else:
                b_reached.set()
            await super().push(gateway_id, targets)

    sessions = InMemorySessionDirectory()
    await sessions.bind(DeviceSession(1, "PC", "gw-a", "c1"))
    await sessions.bind(DeviceSession(2, "PC", "gw-b", "c2"))
    link = Link()
    await asyncio.wait_for(PresenceRouter(sessions, link).notify([PushTarget(1, 1), PushTarget(2, 1)]), 2)
    assert {g for g, _ in link.pushes} == {"gw-a", "gw-b"}


async def test_a_dead_gateway_does_not_stop_a_kick_elsewhere() -> None:
    """A login kicks the old session wherever it is; a gateway that died meanwhile cannot fail it."""
    sessions = InMemorySessionDirectory()
    link = RecordingGatewayLink(dead=frozenset({"gw-dead"}))
    await sessions.bind(DeviceSession(1, "PC", "gw-dead", "c1"))
    await sessions.bind(DeviceSession(1, "Web", "gw-b", "c2"))
    await PresenceRouter(sessions, link).kick(1, "", "keep", "logged out everywhere")
    assert link.kicks == [("gw-b", 1, "", "keep")]


async def test_push_goes_once_to_each_gateway_holding_a_recipient() -> None:
    sessions = InMemorySessionDirectory()
    link = RecordingGatewayLink()
    router = PresenceRouter(sessions, link)
    await sessions.bind(DeviceSession(1, "PC", "gw-a", "c1"))
    await sessions.bind(DeviceSession(1, "Web", "gw-b", "c2"))
    await sessions.bind(DeviceSession(2, "PC", "gw-a", "c3"))
    targets = [PushTarget(1, 5, "PC"), PushTarget(2, 9), PushTarget(3, 1)]  # 3 is offline
    await router.notify(targets)
    calls = dict(link.pushes)
    assert set(calls) == {"gw-a", "gw-b"} and len(link.pushes) == 2
    assert calls["gw-a"] == [PushTarget(2, 9)]  # user 1's only device on gw-a is the excepted one
    assert calls["gw-b"] == [PushTarget(1, 5, "PC")]


async def test_a_gateway_holding_only_the_excepted_device_gets_no_call() -> None:
    """The sender's own device needs no signal for its message: its gateway is not called for it."""
    sessions = InMemorySessionDirectory()
    link = RecordingGatewayLink()
    await sessions.bind(DeviceSession(1, "PC", "gw-a", "c1"))
    await sessions.bind(DeviceSession(2, "PC", "gw-b", "c2"))
    await PresenceRouter(sessions, link).notify([PushTarget(1, 5, "PC"), PushTarget(2, 5)])
    assert link.pushes == [("gw-b", [PushTarget(2, 5)])]


async def test_offline_recipients_cost_no_gateway_call() -> None:
    link = RecordingGatewayLink()
    await PresenceRouter(InMemorySessionDirectory(), link).notify([PushTarget(7, 1)])
    assert link.pushes == []


async def test_kick_goes_only_where_that_device_is() -> None:
    sessions = InMemorySessionDirectory()
    link = RecordingGatewayLink()
    await sessions.bind(DeviceSession(1, "PC", "gw-a", "c1"))
    await sessions.bind(DeviceSession(1, "Web", "gw-b", "c2"))
    await PresenceRouter(sessions, link).kick(1, "PC", "new-token", "relogin")
    assert link.kicks == [("gw-a", 1, "PC", "new-token")]


async def test_hub_add_find_remove_and_count() -> None:
    sessions = InMemorySessionDirectory()
    hub = GatewayHub("gw-1", sessions)
    pc, _ = connection(1, "PC")
    web, _ = connection(1, "Web")
    await hub.attach(pc)
    await hub.attach(web)
    assert hub.connection_count == 2 and hub.connections_of(1) == {"PC": pc, "Web": web}
    assert {s.device_id for s in (await sessions.lookup([1]))[1]} == {"PC", "Web"}
    await hub.detach(pc)
    assert hub.connection_count == 1 and hub.connections_of(1) == {"Web": web}
    assert [s.device_id for s in (await sessions.lookup([1]))[1]] == ["Web"]


async def test_same_device_attach_kicks_the_older_connection_only() -> None:
    sessions = InMemorySessionDirectory()
    hub = GatewayHub("gw-1", sessions)
    old, old_sock = connection(1, "PC", "t1")
    web, web_sock = connection(1, "Web", "t2")
    new, _ = connection(1, "PC", "t3")
    for c in (old, web, new):
        await hub.attach(c)
    await asyncio.sleep(0.05)  # the kick's frames go out in the background
    assert old_sock.cmds() == [Cmd.CMD_KICK_NOTIFY] and old_sock.closed_with == CLOSE_KICKED
    assert web_sock.closed_with is None and hub.connections_of(1) == {"PC": new, "Web": web}
    await hub.detach(old)  # the old connection's cleanup must not unbind the new one
    assert (await sessions.lookup([1]))[1][0].conn_id in {new.conn_id, web.conn_id}
    assert len((await sessions.lookup([1]))[1]) == 2


async def test_signals_skip_the_sending_device_and_coalesce() -> None:
    hub = GatewayHub("gw-1", InMemorySessionDirectory())
    pc, pc_sock = connection(1, "PC")
    web, web_sock = connection(1, "Web")
    await hub.attach(pc)
    await hub.attach(web)
    link = LocalGatewayLink(hub)
    for seq in range(1, 6):
        await link.push("gw-1", [PushTarget(1, seq, "PC")])
    await asyncio.sleep(0.05)
    assert pc_sock.sent == []
    seqs = [pb.MsgPushNotify.FromString(decode(d).body).max_seq_id for d in web_sock.sent]
    assert seqs[-1] == 5 and seqs == sorted(seqs) and len(seqs) < 5  # coalesced, never backwards


def pushed(sock: FakeSocket) -> list[tuple[int, list[int]]]:
    """(max_seq, seqs of the messages it carries) of each push a socket got."""
    frames = [pb.MsgPushNotify.FromString(decode(d).body) for d in sock.sent]
    return [(f.max_seq_id, [m.seq_id for m in f.msgs]) for f in frames]


def copy(seq: int) -> bytes:
    return pb.MessageData(msg_id=100 + seq, seq_id=seq, content=f"m{seq}").SerializeToString()


async def test_one_notify_calls_messages_leave_as_one_frame_per_device() -> None:
    """A batch's messages for one user (a busy group) ride one push per device, in seq order; the device
    that sent one of them gets the others, and its own with them (no gap to sync for); one too large to
    ride leaves that device only the seq; a device's own message alone brings it no push."""
    hub = GatewayHub("gw-1", InMemorySessionDirectory())
    pc, pc_sock = connection(1, "PC")
    web, web_sock = connection(1, "Web")
    other, other_sock = connection(2, "PC")
    for conn in (pc, web, other):
        await hub.attach(conn)
    await hub.push(
        [
            PushTarget(1, 8, "", copy(8)),
            PushTarget(2, 3, "", copy(3)),
            PushTarget(1, 7, "PC", copy(7)),  # sent from user 1's PC: that device has it from the ack
            PushTarget(1, 9, "", copy(9)),
        ]
    )
    await asyncio.sleep(0.05)
    assert pushed(web_sock) == [(9, [7, 8, 9])]
    assert pushed(pc_sock) == [(9, [7, 8, 9])]  # its own 7 rides: whether the ack came first or not
    assert pushed(other_sock) == [(3, [3])]
    await hub.push([PushTarget(1, 10, "", copy(10)), PushTarget(1, 11, "", b"")])  # 11 is too large
    await asyncio.sleep(0.05)
    assert pushed(web_sock)[-1] == (11, [])  # the client syncs, as for one large message


class RecordingWire:
    """The gateway's WebSocket protocol as a Connection sees it: frames written at once."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


async def test_on_a_wire_the_messages_are_written_at_once_in_one_frame() -> None:
    hub = GatewayHub("gw-1", InMemorySessionDirectory())
    wire = RecordingWire()
    await hub.attach(Connection.on_wire(wire, 1, "PC", "t", "c", TokenBucket(10, 10), TokenBucket(1, 20)))
    await hub.push([PushTarget(1, 5, "", copy(5)), PushTarget(1, 4, "", copy(4))])
    frames = [pb.MsgPushNotify.FromString(decode(d).body) for d in wire.sent]
    assert [(f.max_seq_id, [m.seq_id for m in f.msgs]) for f in frames] == [(5, [4, 5])]
    assert frames[0].msgs[1] == pb.MessageData.FromString(copy(5))  # each copy as it was encoded


async def test_more_messages_than_a_frame_carries_leave_as_several_frames_in_order() -> None:
    """A busy group's paced push can bring a member more messages than one frame carries: several frames,
    each continuing the one before, so a device one behind still applies them all without a sync."""
    hub = GatewayHub("gw-1", InMemorySessionDirectory())
    wire = RecordingWire()
    await hub.attach(Connection.on_wire(wire, 1, "PC", "t", "c", TokenBucket(10, 10), TokenBucket(1, 20)))
    n = 2 * INLINE_MAX_MESSAGES + 5
    await hub.push([PushTarget(1, seq, "", copy(seq)) for seq in range(n, 0, -1)])
    frames = [pb.MsgPushNotify.FromString(decode(d).body) for d in wire.sent]
    assert [(f.max_seq_id, len(f.msgs)) for f in frames] == [
        (INLINE_MAX_MESSAGES, INLINE_MAX_MESSAGES),
        (2 * INLINE_MAX_MESSAGES, INLINE_MAX_MESSAGES),
        (n, 5),
    ]
    assert [m.seq_id for f in frames for m in f.msgs] == list(range(1, n + 1))


async def test_kick_through_the_link_keeps_the_new_token() -> None:
    hub = GatewayHub("gw-1", InMemorySessionDirectory())
    old, old_sock = connection(1, "PC", "old")
    await hub.attach(old)
    await LocalGatewayLink(hub).kick("gw-1", 1, "PC", "old", "noop")
    assert old_sock.closed_with is None  # the session that caused the kick stays
    await LocalGatewayLink(hub).kick("gw-1", 1, "PC", "new", "relogin")
    await asyncio.sleep(0.05)  # the kick's frames go out in the background
    assert old_sock.closed_with == CLOSE_KICKED and hub.connection_count == 0


def test_token_bucket_spends_and_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("tinyim.edges.gateway.connection.time.monotonic", lambda: now[0])
    strikes = TokenBucket(0.2, 3)  # three strikes, one back every 5 s
    assert [strikes.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 4.9
    assert not strikes.take()
    now[0] += 0.2
    assert strikes.take() and not strikes.take()  # an occasional bad frame never adds up to a close
    now[0] += 3600
    assert [strikes.take() for _ in range(4)] == [True, True, True, False]  # never more than the burst
