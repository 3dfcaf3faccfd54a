"""Pipelining: requests of one connection in flight together, answers still in request order."""

from __future__ import annotations

import asyncio

from tinyim.edges.gateway.pipeline import AnswerQueue
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode, decode


class Wire:
    """What the queue wrote, and how often it said there is room again."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.room = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def has_room(self) -> None:
        self.room += 1


async def answer_when(gate: asyncio.Event, data: bytes) -> bytes:
    await gate.wait()
    return data


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_answers_leave_in_request_order_whatever_order_they_complete_in() -> None:
    wire = Wire()
    queue = AnswerQueue(8, wire.write, wire.has_room)
    gates = [asyncio.Event() for _ in range(3)]
    for i, gate in enumerate(gates):
        queue.start(answer_when(gate, b"answer %d" % i))
    gates[2].set()
    gates[1].set()
    await settle()
    assert wire.written == []  # the first is still being handled: the later two wait for it
    gates[0].set()
    await settle()
    assert wire.written == [b"answer 0", b"answer 1", b"answer 2"]
    assert len(queue) == 0


async def test_an_answer_known_at_once_waits_for_those_before_it() -> None:
    wire = Wire()
    queue = AnswerQueue(8, wire.write, wire.has_room)
    queue.answer(b"nothing in flight: at once")
    assert wire.written == [b"nothing in flight: at once"]
    gate = asyncio.Event()
    queue.start(answer_when(gate, b"slow"))
    queue.answer(b"error frame")
    await settle()
    assert wire.written == [b"nothing in flight: at once"]
    gate.set()
    await settle()
    assert wire.written[1:] == [b"slow", b"error frame"]


async def test_the_window_is_bounded_and_room_is_announced_once_it_frees() -> None:
    wire = Wire()
    queue = AnswerQueue(2, wire.write, wire.has_room)
    first, second = asyncio.Event(), asyncio.Event()
    queue.start(answer_when(first, b"1"))
    assert not queue.full
    queue.start(answer_when(second, b"2"))
    assert queue.full and len(queue) == 2
    second.set()  # a later one completing frees nothing: answers leave in order
    await settle()
    assert queue.full and wire.room == 0
    first.set()
    await settle()
    assert not queue.full and wire.room == 1 and wire.written == [b"1", b"2"]


async def test_a_failing_request_gets_an_error_and_the_others_their_answers() -> None:
    wire = Wire()
    queue = AnswerQueue(8, wire.write, wire.has_room)

    async def broken() -> bytes:
        raise RuntimeError("a bug in a handler")

    gate = asyncio.Event()
    queue.start(answer_when(gate, b"before"))
    queue.start(broken())
    queue.start(answer_when(gate, b"after"))
    gate.set()
    await settle()
    assert wire.written[0] == b"before" and wire.written[2] == b"after"
    error = decode(wire.written[1])
    assert error.cmd == Cmd.CMD_ERROR_RESP
    assert int(pb.ErrorResp.FromString(error.body).code) == ErrorCode.ERR_INTERNAL


async def test_cancel_stops_what_is_in_flight_and_writes_nothing_more() -> None:
    wire = Wire()
    queue = AnswerQueue(8, wire.write, wire.has_room)
    gate = asyncio.Event()
    queue.start(answer_when(gate, b"never"))
    queue.answer(b"queued behind it")
    queue.cancel()
    gate.set()
    await settle()
    assert wire.written == [] and len(queue) == 0


async def test_a_read_starts_only_after_the_earlier_requests_are_handled() -> None:
    """A sync pipelined right after a send must see that send (read-your-writes on one connection)."""
    wire = Wire()
    queue = AnswerQueue(8, wire.write, wire.has_room)
    stored: list[str] = []
    send_gate = asyncio.Event()

    async def send() -> bytes:
        await send_gate.wait()
        stored.append("hi")
        return b"sent"

    async def sync() -> bytes:
        return b"synced " + ",".join(stored).encode()

    async def other_send() -> bytes:
        stored.append("other")
        return b"sent 2"

    queue.start(send())
    queue.start(sync(), after_earlier=True)
    queue.start(other_send())  # sends run side by side: this one does not wait
    await settle()
    assert stored == ["other"] and wire.written == []
    send_gate.set()
    await settle()
    assert wire.written == [b"sent", b"synced other,hi", b"sent 2"]


async def test_a_read_waiting_for_earlier_requests_is_cancelled_cleanly() -> None:
    queue = AnswerQueue(8, Wire().write, Wire().has_room)
    queue.start(answer_when(asyncio.Event(), b"never"))
    queue.start(answer_when(asyncio.Event(), b"read"), after_earlier=True)
    await settle()
    queue.cancel()  # the connection went away: nothing is left running (and no "never awaited" warning)
    await settle()
    assert len(queue) == 0
