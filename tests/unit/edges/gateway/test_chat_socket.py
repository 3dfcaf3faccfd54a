"""The chat WebSocket protocol on a fake transport: handshake, pipelining with backpressure, deadlines."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

from websockets.frames import Frame, Opcode

from tinyim.edges.gateway.connection import CLOSE_IDLE, CLOSE_UNAUTHENTICATED, Connection
from tinyim.edges.gateway.hub import GatewayHub
from tinyim.edges.gateway.ws import GatewayLimits, WebSocketGateway
from tinyim.edges.gateway.ws_protocol import ChatEndpoint, ChatSocket
from tinyim.kernel import ImError
from tinyim.modules.auth import TokenClaims
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode, encode
from tinyim.wire.codec import Frame as WireFrame


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.reading = True
        self.aborted = False
        self.closed = False
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        self.out += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def frames(self) -> list[tuple[int, bytes]]:
        """(opcode, payload) of every frame written after the 101 response."""
        data = bytes(self.out)
        assert data.startswith(b"HTTP/1.1 101"), data[:80]
        data = data[data.index(b"\r\n\r\n") + 4 :]
        frames = []
        while data:
            opcode, length, at = data[0] & 0x0F, data[1] & 0x7F, 2
            if length == 126:
                (length,), at = struct.unpack("!H", data[2:4]), 4
            elif length == 127:
                (length,), at = struct.unpack("!Q", data[2:10]), 10
            frames.append((opcode, data[at : at + length]))
            data = data[at + length :]
        return frames

    def answers(self) -> list[WireFrame]:
        return [decode(payload) for opcode, payload in self.frames() if opcode == Opcode.BINARY]


class Auth:
    async def verify_token(self, token: str) -> TokenClaims:
        if token != "good":
            raise ImError("ERR_UNAUTHENTICATED", "bad token")
        return TokenClaims(1, "PC", "tid", 2**40)


class GatedRouter:
    """Answers each request with its own body once its gate opens (one gate per body)."""

    def __init__(self) -> None:
        self.gates: dict[bytes, asyncio.Event] = {}
        self.started: list[bytes] = []

    async def handle(self, conn: Connection, frame: WireFrame) -> bytes:
        self.started.append(frame.body)
        await self.gates.setdefault(frame.body, asyncio.Event()).wait()
        return encode(Cmd.CMD_HEARTBEAT_RESP, frame.body)

    def open(self, body: bytes) -> None:
        self.gates.setdefault(body, asyncio.Event()).set()


def handshake(path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n"
    ).encode()


def client_frame(payload: bytes, opcode: Opcode = Opcode.BINARY) -> bytes:
    return Frame(opcode, payload).serialize(mask=True, extensions=[])


def request(body: bytes) -> bytes:
    return client_frame(encode(Cmd.CMD_HEARTBEAT_REQ, body))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def open_socket(
    path: str = "/ws?token=good&device_id=PC", **limits: Any
) -> tuple[ChatEndpoint, ChatSocket, FakeTransport, GatedRouter, GatewayHub]:
    router, hub = GatedRouter(), GatewayHub("gw", InMemorySessionDirectory())
    settings = {"heartbeat_timeout": 60, "login_timeout": 5, "max_frame_body": 65536, "rate_per_second": 1000}
    settings |= {"rate_burst": 1000, "max_bad_frames": 20} | limits
    gateway = WebSocketGateway(Auth(), hub, router, GatewayLimits(**settings))  # type: ignore[arg-type]
    endpoint, transport = ChatEndpoint(gateway), FakeTransport()
    endpoint.upgrade(transport, handshake(path), set())  # type: ignore[arg-type]
    await settle()
    return endpoint, transport.protocol, transport, router, hub


async def test_requests_in_flight_together_are_answered_in_order() -> None:
    endpoint, socket, transport, router, hub = await open_socket()
    assert hub.connection_count == 1
    socket.data_received(request(b"a") + request(b"b") + request(b"c"))
    await settle()
    assert router.started == [b"a", b"b", b"c"]  # all three in flight at once
    router.open(b"c")
    router.open(b"b")
    await settle()
    assert transport.answers() == []
    router.open(b"a")
    await settle()
    assert [f.body for f in transport.answers()] == [b"a", b"b", b"c"]
    endpoint.close()


async def test_a_full_window_stops_reading_until_an_answer_leaves() -> None:
    endpoint, socket, transport, router, _ = await open_socket(pipeline_depth=2)
    socket.data_received(request(b"1") + request(b"2") + request(b"3") + request(b"4"))
    await settle()
    assert router.started == [b"1", b"2"] and not transport.reading
    router.open(b"1")
    await settle()
    assert router.started == [b"1", b"2", b"3"] and not transport.reading
    for body in (b"2", b"3"):
        router.open(body)
    await settle()
    assert router.started == [b"1", b"2", b"3", b"4"] and transport.reading
    router.open(b"4")
    await settle()
    assert [f.body for f in transport.answers()] == [b"1", b"2", b"3", b"4"]
    endpoint.close()


async def test_a_bad_token_is_refused_before_the_handshake_completes() -> None:
    endpoint, _, transport, _, hub = await open_socket("/ws?token=forged&device_id=PC")
    assert transport.out.startswith(b"HTTP/1.1 403") and transport.closed
    assert hub.connection_count == 0
    endpoint.close()


async def test_login_frame_then_requests() -> None:
    endpoint, socket, transport, router, hub = await open_socket("/ws")
    login = encode(Cmd.CMD_LOGIN_REQ, pb.LoginReq(token="good", device_id="PC").SerializeToString())
    socket.data_received(client_frame(login) + request(b"after login"))  # one read, two frames
    await settle()
    router.open(b"after login")
    await settle()
    answers = transport.answers()
    assert answers[0].cmd == Cmd.CMD_LOGIN_RESP and pb.LoginResp.FromString(answers[0].body).success
    assert answers[1].body == b"after login" and hub.connection_count == 1
    endpoint.close()


async def test_no_login_frame_in_time_closes_with_4401() -> None:
    endpoint, socket, transport, _, _ = await open_socket("/ws")
    socket.expired(socket.deadline)
    (opcode, payload), *_ = transport.frames()
    assert opcode == Opcode.CLOSE and struct.unpack("!H", payload[:2])[0] == CLOSE_UNAUTHENTICATED
    socket.expired(socket.deadline)  # and the client never answered the close
    assert transport.aborted
    endpoint.close()


async def test_silence_closes_with_4408_but_a_request_in_flight_is_not_silence() -> None:
    endpoint, socket, transport, router, _ = await open_socket()
    socket.data_received(request(b"slow"))
    await settle()
    socket.expired(socket.deadline)
    assert transport.frames() == []  # still answering: the deadline moved on
    router.open(b"slow")
    await settle()
    socket.expired(socket.deadline)
    opcode, payload = transport.frames()[-1]
    assert opcode == Opcode.CLOSE and struct.unpack("!H", payload[:2])[0] == CLOSE_IDLE
    endpoint.close()


async def test_a_client_that_stops_reading_is_aborted_after_the_send_timeout() -> None:
    endpoint, socket, transport, _, _ = await open_socket(send_timeout=0.05)
    socket.pause_writing()  # the transport's buffer passed its high-water mark
    await asyncio.sleep(0.1)
    assert transport.aborted
    endpoint.close()


async def test_a_client_that_stopped_reading_gets_only_so_many_frames() -> None:
    endpoint, socket, transport, _, _ = await open_socket(send_timeout=60, max_queued_sends=3)
    socket.pause_writing()
    for _ in range(3):
        socket.write(b"push")
    assert not transport.aborted
    socket.write(b"one too many")
    assert transport.aborted
    endpoint.close()


async def test_a_client_that_catches_up_in_time_stays() -> None:
    endpoint, socket, transport, _, _ = await open_socket(send_timeout=0.05)
    socket.pause_writing()
    socket.resume_writing()
    await asyncio.sleep(0.1)
    assert not transport.aborted
    endpoint.close()


async def test_a_lost_connection_is_detached_and_its_requests_stopped() -> None:
    endpoint, socket, transport, router, hub = await open_socket()
    socket.data_received(request(b"never answered"))
    await settle()
    socket.connection_lost(None)
    router.open(b"never answered")
    await settle()
    assert hub.connection_count == 0 and socket not in endpoint.sockets
    assert transport.answers() == []
    endpoint.close()
