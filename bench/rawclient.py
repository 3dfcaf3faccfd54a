"""A lean chat connection for the load generator: raw 9-byte frames over websockets' Sans-I/O client.

The load generator must cost far less CPU per message than the server, so it skips the asyncio layer of
`websockets` (a reader task, an assembler, futures and locks per message) and drives the library's
Sans-I/O `ClientProtocol` from a plain asyncio.Protocol: bytes in → frames out, frames in → bytes out.
The library still does the handshake, masking (its C speedup), control frames and closing.

No SDK, no retries, no reconnects: a request's answer is matched by order (a connection answers in
request order; pushes, the *_NOTIFY commands, may interleave), and every push goes to one callback.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tinyim.wire import PUSH_COMMANDS, Cmd

_HEADER = struct.Struct(">2sBHI")  # magic, version, cmd, length: see tinyim.wire.codec

Answer = Callable[[int, bytes], None]  # (cmd, body): the answer to one request, in request order
Push = Callable[[int, bytes], None]


def frame(cmd: int, body: bytes) -> bytes:
    return _HEADER.pack(b"IM", 1, cmd, len(body)) + body


class RawConnection(asyncio.Protocol):
    def __init__(self, url: str, on_push: Push | None = None) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=2**22)
        self.on_push = on_push
        self._answers: deque[Answer] = deque()
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self.open = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, url: str, on_push: Push | None = None, timeout: float = 60) -> RawConnection:
        wsuri = parse_uri(url)
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(url, on_push), wsuri.host, wsuri.port)
        await asyncio.wait_for(conn.open, timeout)
        return conn

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response) and not self.open.done():
                if self.ws.handshake_exc is not None:
                    self.open.set_exception(self.ws.handshake_exc)
                else:
                    self.open.set_result(None)
        self._flush()  # pongs, close frames

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed during the handshake"))
        self.closed.set()

    # requests
    @property
    def in_flight(self) -> int:
        return len(self._answers)

    def send(self, cmd: int, body: bytes, on_answer: Answer) -> None:
        """Send one request; `on_answer` runs when its answer (or ErrorResp) arrives."""
        self._answers.append(on_answer)
        self.ws.send_binary(frame(cmd, body))
        self._flush()

    async def call(self, cmd: int, body: bytes) -> bytes:
        """One request, awaited (setup only: the hot path uses `send` with a callback)."""
        done: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.send(cmd, body, lambda c, b: None if done.done() else done.set_result((c, b)))
        answer_cmd, answer = await asyncio.wait_for(done, 60)
        if answer_cmd == Cmd.CMD_ERROR_RESP:
            from tinyim.pb import im_protocol_pb2 as pb

            error = pb.ErrorResp.FromString(answer)
            raise RuntimeError(f"server error {error.code} for cmd 0x{error.cmd:04X}: {error.message}")
        return answer

    async def close(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self.ws.send_close()
        self._flush()
        try:
            await asyncio.wait_for(self.closed.wait(), 5)
        except TimeoutError:
            self._transport.abort()

    def _flush(self) -> None:
        assert self._transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self._transport.write(chunk)
            elif self._transport.can_write_eof():
                self._transport.write_eof()

    def _frame(self, f: Frame) -> None:
        if f.opcode == Opcode.BINARY or (f.opcode == Opcode.CONT and self._fragments):
            if not f.fin:
                self._fragments.append(bytes(f.data))
                return
            data = b"".join([*self._fragments, f.data]) if self._fragments else bytes(f.data)
            self._fragments.clear()
            self._message(data)

    def _message(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            return
        cmd = _HEADER.unpack_from(data)[2]
        body = data[_HEADER.size :]
        if cmd in PUSH_COMMANDS:
            if self.on_push is not None:
                self.on_push(cmd, body)
        elif self._answers:
            self._answers.popleft()(cmd, body)


class FastConnection(RawConnection):
    """A RawConnection that splits the server's frames itself once the connection is open, and hands the
    common one, a whole unfragmented binary frame, straight to the message handler: G2 receives one push
    per member per group message, and websockets' generator-based parser was half of the client's Python
    time per push. Anything else (control frames, fragments, a masked or odd frame) still goes, whole,
    through the library's parser, so pings, closing and errors behave as in RawConnection."""

    def __init__(self, url: str, on_push: Push | None = None) -> None:
        super().__init__(url, on_push)
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        # the handshake, and whatever the library's parser holds part of, stay with the library
        if not self._buffer and (not self.open.done() or self.ws.reader.buffer):
            super().data_received(data)
            return
        buf = self._buffer
        buf += data
        at, size = 0, len(buf)
        while size - at >= 2:
            head1, head2 = buf[at], buf[at + 1]
            length, start = head2 & 0x7F, at + 2
            if length == 126:
                length, start = int.from_bytes(buf[at + 2 : at + 4]), at + 4
            elif length == 127:
                length, start = int.from_bytes(buf[at + 2 : at + 10]), at + 10
            end = start + length
            if start > size or end > size:
                break  # the rest of this frame is still on its way
            if head1 == 0x82 and not head2 & 0x80 and not self._fragments:  # FIN, binary, no RSV, unmasked
                self._message(bytes(buf[start:end]))
            else:
                super().data_received(bytes(buf[at:end]))
            at = end
        del buf[:at]
