"""The file gateway's TCP listener (IM_FILE_PORT): the 9-byte frame of the chat protocol, raw sockets.

    client -> FileAuthReq (0x3006) {token, offset}
    upload:   <- FileUploadResp (0x3002) {task_id, offset held, chunk_size}
              -> data frames (0x3003, raw bytes, <= chunk_size each) from that offset to the end
              <- FileUploadDone (0x3008) once size and MD5 are verified, or ErrorResp (0x1FFF)
    download: <- FileDownloadBegin (0x3007) {task_id, file_size, offset, md5, file_name}
              <- data frames (0x3003) from `offset` to the end (bytes go file -> socket by sendfile)

Uploads go from the socket into the partial file (`sock_recv_into` a reused buffer, `os.pwrite`);
bytes of a frame are written as they arrive, so a cut loses nothing that reached the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any, cast

from google.protobuf.message import Message

from tinyim.infra import metrics
from tinyim.kernel import ImError
from tinyim.modules.files import FileTask, TicketKind
from tinyim.modules.files.domain import UploadTicket
from tinyim.modules.files.protocol import upload_resp
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode, encode, parse_body
from tinyim.wire.codec import FrameError
from tinyim.wire.sendfile import sock_sendfile

from ..errors import wire_code
from .transfers import FileGateway, UploadSession, check_offset

log = logging.getLogger(__name__)

HEADER = struct.Struct("!2sBHI")
MAGIC = b"IM"
AUTH_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
LINGER_SECONDS = 1.0
# Download frames stay short: the SDK reports progress (and resumes are observed) per frame; 64 MiB frames
# measured no faster once G5's readers did the same work
DOWNLOAD_FRAME = 4 * 1024 * 1024
SENDFILE_STEP = 4 * 1024 * 1024
MIN_RATE = 64 * 1024  # bytes/s a limited transfer may slow down to before it counts as idle
MAX_AUTH_BODY = 4096
# Socket buffers bounded so that a cut loses (and the client resends) at most about one chunk.
BUFFER_FRACTION = 4


class Closed(Exception):
    pass


def error_frame(code: ErrorCode, message: str, cmd: int) -> bytes:
    resp = pb.ErrorResp(code=cast(Any, int(code)), message=message, cmd=cmd)
    return encode(Cmd.CMD_ERROR_RESP, resp.SerializeToString())


class FileConnection:
    def __init__(self, gateway: FileGateway, sock: socket.socket) -> None:
        self._gw = gateway
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._head = bytearray(HEADER.size)

    async def serve(self) -> None:
        cmd: int = Cmd.CMD_FILE_AUTH_REQ
        try:
            cmd, body = await asyncio.wait_for(self._frame(MAX_AUTH_BODY), AUTH_TIMEOUT)
            if cmd != Cmd.CMD_FILE_AUTH_REQ:
                raise FrameError(ErrorCode.ERR_UNAUTHENTICATED, "the first frame must be FileAuthReq", cmd)
            auth = cast(pb.FileAuthReq, parse_body(cmd, body))
            ticket = self._gw.tickets.read(auth.token)
            if ticket.kind is TicketKind.UPLOAD:
                await self._upload(auth)
            else:
                await self._download(auth)
        except FrameError as exc:
            await self._send_quietly(error_frame(exc.code, exc.message, exc.cmd or cmd))
        except ImError as exc:
            await self._send_quietly(error_frame(wire_code(exc.code), exc.message, cmd))
        except (Closed, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("file connection failed")
            await self._send_quietly(error_frame(ErrorCode.ERR_INTERNAL, "internal error; retry", cmd))

    # ---------- uploads ----------
    async def _upload(self, auth: pb.FileAuthReq) -> None:
        gw = self._gw
        ticket = gw.ticket(auth.token, TicketKind.UPLOAD)
        task, _ = await gw.upload_state(ticket)
        chunk = gw.limits.chunk_size
        if task.finished:
            await self._send(Cmd.CMD_FILE_UPLOAD_ACK, _ack(task.task_id, task.size, chunk))
            await self._send(Cmd.CMD_FILE_UPLOAD_DONE, _done(task))
            return
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, max(chunk // BUFFER_FRACTION, 65536))
        async with gw.upload(ticket) as session:
            await self._send(Cmd.CMD_FILE_UPLOAD_ACK, _ack(task.task_id, session.held, chunk))
            async with asyncio.timeout(None) as idle:  # rescheduled before every receive
                await self._receive(session, chunk, idle)
            task = await session.finish()
        await self._send(Cmd.CMD_FILE_UPLOAD_DONE, _done(task))

    async def _receive(self, session: UploadSession, chunk: int, idle: asyncio.Timeout) -> None:
        """Data frames into the partial file until it holds every byte (pieces are written as they come)."""
        gw = self._gw
        rate = gw.rate()
        report_every = min(gw.limits.upload_ttl_seconds / 3, 10.0)
        counter = metrics.FILE_BYTES.labels(direction="up")
        while not session.complete:
            idle.reschedule(self._loop.time() + IDLE_TIMEOUT)
            cmd, length = await self._header(chunk)
            if cmd != Cmd.CMD_FILE_DATA_TRANS:
                raise FrameError(ErrorCode.ERR_INVALID_ARGUMENT, "expected a data frame (0x3003)", cmd)
            session.check(session.held, length)
            while length:
                idle.reschedule(self._loop.time() + IDLE_TIMEOUT)
                view = await session.space()
                n = await self._loop.sock_recv_into(self._sock, view[: rate.step(min(length, len(view)))])
                if n == 0:
                    raise Closed("peer closed mid-frame")
                session.commit(n)
                counter.inc(n)
                length -= n
                await rate.moved(n)
            await session.report_progress(report_every)

    # ---------- downloads ----------
    async def _download(self, auth: pb.FileAuthReq) -> None:
        gw = self._gw
        ticket = gw.ticket(auth.token, TicketKind.DOWNLOAD)
        task, path = await gw.downloadable(ticket)
        offset = check_offset(auth.offset, task.size)
        with contextlib.suppress(OSError):  # room for a frame in flight: fewer wake-ups per GiB
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SENDFILE_STEP)
        async with gw.transfer_slot(ticket.user_id):
            begin = pb.FileDownloadBegin(task_id=task.task_id, file_size=task.size, offset=offset,
                                         md5=task.md5, file_name=task.file_name)  # fmt: skip
            await self._send(Cmd.CMD_FILE_DOWNLOAD_BEGIN, begin)
            rate = gw.rate()
            counter = metrics.FILE_BYTES.labels(direction="down")
            with open(path, "rb", buffering=0) as f:  # noqa: ASYNC230 (a file handle; bytes go by sendfile)
                while offset < task.size:
                    frame = rate.step(min(DOWNLOAD_FRAME, task.size - offset))
                    async with asyncio.timeout(IDLE_TIMEOUT):
                        await self._loop.sock_sendall(
                            self._sock, HEADER.pack(MAGIC, 1, Cmd.CMD_FILE_DATA_TRANS, frame)
                        )
                    end = offset + frame
                    while offset < end:  # the frame's bytes in steps, each with its own idle timeout
                        n = min(SENDFILE_STEP, end - offset)
                        async with asyncio.timeout(IDLE_TIMEOUT + n / MIN_RATE):
                            await sock_sendfile(self._loop, self._sock, f, offset, n)
                        counter.inc(n)
                        offset += n
                    await rate.moved(frame)

    # ---------- frames ----------
    async def _header(self, max_body: int) -> tuple[int, int]:
        view = memoryview(self._head)
        got = 0
        while got < HEADER.size:  # callers bound the wait (auth timeout, idle timeout)
            n = await self._loop.sock_recv_into(self._sock, view[got:])
            if n == 0:
                raise Closed("peer closed")
            got += n
        magic, version, cmd, length = HEADER.unpack(self._head)
        if magic != MAGIC or version != 1:
            raise FrameError(ErrorCode.ERR_BAD_FRAME, "bad magic or version", 0)
        if length > max_body:
            raise FrameError(ErrorCode.ERR_FRAME_TOO_LARGE, f"frame body above {max_body} bytes", cmd)
        return cmd, length

    async def _frame(self, max_body: int) -> tuple[int, bytes]:
        cmd, length = await self._header(max_body)
        body = bytearray(length)
        view = memoryview(body)
        got = 0
        while got < length:
            n = await self._loop.sock_recv_into(self._sock, view[got:])
            if n == 0:
                raise Closed("peer closed")
            got += n
        return cmd, bytes(body)

    async def _send(self, cmd: int, message: Message) -> None:
        await self._loop.sock_sendall(self._sock, encode(cmd, message.SerializeToString()))

    async def _send_quietly(self, frame: bytes) -> None:
        """An error frame, then a lingering close: closing with unread bytes would send a reset that
        can destroy the error frame before the client reads it, so what the client still sends is
        read and dropped for a moment first."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._loop.sock_sendall(self._sock, frame), 2.0)
            self._sock.shutdown(socket.SHUT_WR)
            drop = bytearray(65536)
            async with asyncio.timeout(LINGER_SECONDS):
                while await self._loop.sock_recv_into(self._sock, drop):
                    pass


def _done(task: FileTask) -> pb.FileUploadDone:
    return pb.FileUploadDone(task_id=task.task_id, file_size=task.size, md5=task.md5)


def _ack(task_id: str, offset: int, chunk: int) -> pb.FileUploadResp:
    return upload_resp(UploadTicket(task_id, False, None, "", offset, chunk))


@contextlib.asynccontextmanager
async def file_listener(gateway: FileGateway, host: str, port: int) -> AsyncIterator[None]:
    """Accept file connections on host:port until the block ends (then cut the live ones)."""
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(512)
    listener.setblocking(False)
    live: set[asyncio.Task[None]] = set()

    async def handle(sock: socket.socket) -> None:
        try:
            await FileConnection(gateway, sock).serve()
        finally:
            sock.close()

    async def accept() -> None:
        while True:
            sock, _ = await loop.sock_accept(listener)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.create_task(handle(sock))
            live.add(task)
            task.add_done_callback(live.discard)

    acceptor = asyncio.create_task(accept())
    log.info("file gateway listening on %s:%d", host, port)
    try:
        yield
    finally:
        acceptor.cancel()
        for task in list(live):
            task.cancel()
        await asyncio.gather(acceptor, *live, return_exceptions=True)
        listener.close()
