"""File transfer for the SDK: upload (instant when the server knows the bytes), send as a message, download.

    ref = await client.upload_file("photo.jpg", progress=lambda done, total: ...)
    await client.send_file("report.pdf", to=bob_id)                # a FILE (or IMAGE) message naming it
    path = await client.download_file(message, "downloads/")       # a received file message, or a task id

Uploads ask the chat gateway for a task (FileUploadReq), answer the instant-upload proof challenge if
the server has the same bytes, and otherwise stream the file to the file gateway over TCP (sendfile).
Any cut (client connection, file gateway killed and restarted, chat connection) is retried with backoff:
the gateway says which offset it holds and the upload continues from there. Downloads resume from the
bytes of `<dest>.part` and are checked against the MD5 before the file takes its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import os
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, ErrorCode, encode, parse_body
from tinyim.wire.md5stream import HashedBuffers, StreamMd5
from tinyim.wire.sendfile import sock_sendfile

from .errors import ConnectionLost, Kicked, ServerError
from .models import Message, Sent

if TYPE_CHECKING:
    from .sdk import Client

Progress = Callable[[int, int], None]
R = TypeVar("R", bound=ProtoMessage)

HEADER = struct.Struct("!2sBHI")
IDLE_SECONDS = 30.0  # no byte moving for this long: the connection is cut
MIN_RATE = 64 * 1024  # bytes/s a transfer may slow down to (bandwidth limits) before it counts as idle
READ_STEP = 8 * 1024 * 1024
DOWNLOAD_SOCKET_BUFFER = 4 * 1024 * 1024  # asked for; the kernel caps it (net.core.rmem_max)
# Errors after which the same transfer is tried again (the gateway or a backend is back soon).
RETRYABLE = frozenset(
    {
        ErrorCode.ERR_UNAVAILABLE,
        ErrorCode.ERR_INTERNAL,
        ErrorCode.ERR_FILE_BUSY,
        ErrorCode.ERR_FILE_TOO_MANY,
        ErrorCode.ERR_FILE_OFFSET,
        ErrorCode.ERR_UNAUTHENTICATED,  # an expired ticket: a fresh one is asked for
    }
)


@dataclass(frozen=True, slots=True)
class FileRef:
    task_id: str
    file_name: str
    size: int
    md5: str

    def content(self) -> str:
        """The body of a FILE / IMAGE message naming this file (the spec's JSON)."""
        return json.dumps({"task_id": self.task_id, "file_name": self.file_name, "size": self.size})


class _Cut(Exception):
    """The file connection ended before the transfer did."""


def md5_of(path: Path, offset: int = 0, length: int | None = None) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left is None or left > 0:
            data = f.read(READ_STEP if left is None else min(READ_STEP, left))
            if not data:
                break
            h.update(data)
            if left is not None:
                left -= len(data)
    return h.hexdigest()


class FileTransfers:
    def __init__(
        self,
        client: Client,
        *,
        stall_timeout: float = 60.0,
        backoff: tuple[float, float] = (0.1, 2.0),
        connect_timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._stall = stall_timeout
        self._backoff = backoff
        self._connect_timeout = connect_timeout
        self.attempts = 0  # connections made by the last transfer (1 = no cut)

    # ---------- upload ----------
    async def upload(self, path: str | os.PathLike[str], *, progress: Progress | None = None) -> FileRef:
        source = Path(path)
        size = source.stat().st_size  # noqa: ASYNC240 (local metadata / file handle; the bytes move off the loop)
        md5 = await asyncio.to_thread(md5_of, source)
        ref = FileRef("", source.name, size, md5)
        req = pb.FileUploadReq(file_name=source.name, file_size=size, md5=md5)
        resp = await self._ask(Cmd.CMD_FILE_UPLOAD_REQ, req, pb.FileUploadResp)
        if resp.proof_required:
            proof = await asyncio.to_thread(md5_of, source, resp.proof_offset, resp.proof_length)
            follow = pb.FileUploadReq(task_id=resp.task_id, proof=proof)
            resp = await self._ask(Cmd.CMD_FILE_UPLOAD_REQ, follow, pb.FileUploadResp)
        ref = FileRef(resp.task_id, source.name, size, md5)
        if resp.is_instant:
            if progress:
                progress(size, size)
            return ref
        self.attempts = 0
        last_progress = time.monotonic()
        delay = self._backoff[0]
        while True:
            self.attempts += 1
            held_before = resp.offset
            try:
                await self._upload_once(resp, source, size, progress)
                return ref
            except (_Cut, OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionLost) as exc:
                cause: Exception = exc
            except ServerError as exc:
                if exc.code not in RETRYABLE:
                    raise
                cause = exc
            if resp.offset > held_before:
                last_progress = time.monotonic()
            if time.monotonic() - last_progress > self._stall:
                raise ConnectionLost(f"upload stalled for {self._stall:.0f}s: {cause}") from cause
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._backoff[1])
            with contextlib.suppress(ConnectionLost, TimeoutError, ServerError):
                resp = await self._ask(
                    Cmd.CMD_FILE_UPLOAD_REQ, pb.FileUploadReq(task_id=ref.task_id), pb.FileUploadResp
                )
            if resp.is_instant:
                return ref

    async def _upload_once(
        self, ticket: pb.FileUploadResp, source: Path, size: int, progress: Progress | None
    ) -> None:
        chunk = max(ticket.chunk_size, 4096)
        async with _FileSocket.open(ticket.gateway_ip, ticket.gateway_port, self._connect_timeout) as conn:
            with contextlib.suppress(OSError):  # a cut loses at most about one chunk in flight
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(chunk // 4, 65536))
            await conn.send(Cmd.CMD_FILE_AUTH_REQ, pb.FileAuthReq(token=ticket.upload_token))
            ack = await conn.expect(Cmd.CMD_FILE_UPLOAD_ACK, pb.FileUploadResp)
            offset = ack.offset
            ticket.offset = offset  # what the gateway holds: progress for the retry loop
            if progress:
                progress(offset, size)
            with open(source, "rb") as f:  # noqa: ASYNC230 (a file handle; the bytes move by sendfile)
                try:
                    while offset < size:
                        n = min(chunk, size - offset)
                        await conn.sendfile(f, offset, n)
                        offset += n
                        if progress:
                            progress(offset, size)
                except (OSError, RuntimeError) as exc:
                    # the gateway may have said why before it closed (wrong offset, disk full, ...)
                    await conn.raise_sent_error()
                    raise _Cut(str(exc)) from None
            await conn.expect(Cmd.CMD_FILE_UPLOAD_DONE, pb.FileUploadDone)
            ticket.offset = size

    # ---------- send as a message ----------
    async def send(
        self,
        path: str | os.PathLike[str],
        *,
        to: int = 0,
        group: int = 0,
        progress: Progress | None = None,
        image: bool | None = None,
    ) -> Sent:
        ref = await self.upload(path, progress=progress)
        if image is None:
            image = (mimetypes.guess_type(ref.file_name)[0] or "").startswith("image/")
        msg_type = pb.IMAGE if image else pb.FILE
        return await self._client.send(
            receiver_id=to, group_id=group, content=ref.content(), msg_type=msg_type
        )

    # ---------- download ----------
    async def download(
        self, message_or_task_id: Message | FileRef | str, dest: str | os.PathLike[str], *,
        progress: Progress | None = None,
    ) -> Path:  # fmt: skip
        task_id = _task_id_of(message_or_task_id)
        ticket = await self._ask(
            Cmd.CMD_FILE_DOWNLOAD_REQ, pb.FileDownloadReq(task_id=task_id), pb.FileDownloadResp
        )
        target = Path(dest)
        if target.is_dir():  # noqa: ASYNC240 (local metadata / file handle; the bytes move off the loop)
            name = Path(ticket.file_name.replace("\\", "/")).name
            target = target / (name if name not in ("", ".", "..") else task_id)
        part = target.with_name(target.name + ".part")
        self.attempts = 0
        last_progress = time.monotonic()
        delay = self._backoff[0]
        md5 = StreamMd5()  # follows the bytes as they land in the .part file
        try:
            while True:
                self.attempts += 1
                held_before = part.stat().st_size if part.exists() else 0
                if md5.fed != held_before:  # bytes from an earlier download (or a short write): hash them
                    md5.close()
                    md5 = StreamMd5()
                    if held_before <= ticket.file_size:
                        md5.feed_path(part, 0, held_before)
                try:
                    await self._download_once(ticket, part, md5, progress)
                    break
                except (_Cut, OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionLost) as exc:
                    cause: Exception = exc
                except ServerError as exc:
                    if exc.code not in RETRYABLE:
                        raise
                    cause = exc
                if (part.stat().st_size if part.exists() else 0) > held_before:
                    last_progress = time.monotonic()
                if time.monotonic() - last_progress > self._stall:
                    raise ConnectionLost(f"download stalled for {self._stall:.0f}s: {cause}") from cause
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._backoff[1])
                with contextlib.suppress(ConnectionLost, TimeoutError, ServerError):
                    ticket = await self._ask(
                        Cmd.CMD_FILE_DOWNLOAD_REQ, pb.FileDownloadReq(task_id=task_id), pb.FileDownloadResp
                    )
            digest = await md5.hexdigest()
        finally:
            md5.close()
        if digest != ticket.md5:
            part.unlink(missing_ok=True)
            raise ServerError(
                ErrorCode.ERR_FILE_CORRUPT, f"downloaded bytes have MD5 {digest}, not {ticket.md5}"
            )
        os.replace(part, target)
        return target

    async def _download_once(
        self, ticket: pb.FileDownloadResp, part: Path, md5: StreamMd5, progress: Progress | None
    ) -> None:
        offset = part.stat().st_size if part.exists() else 0  # noqa: ASYNC240
        if offset > ticket.file_size:
            part.unlink()  # noqa: ASYNC240
            offset = 0
        async with _FileSocket.open(ticket.gateway_ip, ticket.gateway_port, self._connect_timeout) as conn:
            with contextlib.suppress(OSError):  # room for a few frames in flight: fewer wake-ups
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DOWNLOAD_SOCKET_BUFFER)
            await conn.send(Cmd.CMD_FILE_AUTH_REQ, pb.FileAuthReq(token=ticket.download_token, offset=offset))
            begin = await conn.expect(Cmd.CMD_FILE_DOWNLOAD_BEGIN, pb.FileDownloadBegin)
            if begin.offset != offset:
                raise _Cut(f"the gateway starts at {begin.offset}, not {offset}")
            if progress:
                progress(offset, ticket.file_size)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            ring = HashedBuffers(md5)
            try:
                while offset < ticket.file_size:
                    cmd, length = await conn.header()
                    if cmd == Cmd.CMD_ERROR_RESP:
                        await conn.raise_error(length)
                    if cmd != Cmd.CMD_FILE_DATA_TRANS or offset + length > ticket.file_size:
                        raise _Cut(f"unexpected frame 0x{cmd:04X}")
                    offset += await conn.recv_to(fd, length, ring)
                    if progress:
                        progress(offset, ticket.file_size)
            finally:
                ring.flush()
                os.close(fd)

    # ---------- requests over the chat connection, across its reconnects ----------
    async def _ask(self, cmd: int, req: ProtoMessage, resp_type: type[R]) -> R:
        deadline = time.monotonic() + self._stall
        while True:
            try:
                resp = await self._client.request(cmd, req)
                if not isinstance(resp, resp_type):
                    raise ServerError("unexpected_response", type(resp).__name__)
                return resp
            except (ConnectionLost, TimeoutError):
                if self._client.kicked.is_set() or time.monotonic() > deadline:
                    raise
                await self._client.session.wait_connected(deadline)
            except ServerError as exc:
                if exc.code != ErrorCode.ERR_UNAVAILABLE or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(self._backoff[0])


def _task_id_of(ref: Message | FileRef | str) -> str:
    if isinstance(ref, str):
        return ref
    if isinstance(ref, FileRef):
        return ref.task_id
    try:
        task_id = json.loads(ref.content)["task_id"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("this message does not name a file") from None
    if not isinstance(task_id, str):
        raise ValueError("this message does not name a file")
    return task_id


class _FileSocket:
    """A connection to a file gateway: raw non-blocking socket, loop.sock_* calls, an idle timeout."""

    def __init__(self, sock: socket.socket, idle: float) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._idle = idle

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, host: str, port: int, timeout: float) -> AsyncIterator[_FileSocket]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, address), timeout)
            yield cls(sock, max(timeout, IDLE_SECONDS))
        finally:
            sock.close()

    async def send(self, cmd: int, message: ProtoMessage) -> None:
        async with asyncio.timeout(self._idle):
            await self._loop.sock_sendall(self.sock, encode(cmd, message.SerializeToString()))

    async def sendfile(self, f: Any, offset: int, n: int) -> None:
        async with asyncio.timeout(self._idle + n / MIN_RATE):
            await self._loop.sock_sendall(self.sock, HEADER.pack(b"IM", 1, Cmd.CMD_FILE_DATA_TRANS, n))
            await sock_sendfile(self._loop, self.sock, f, offset, n)

    async def recv_exactly(self, n: int) -> bytes:
        out = bytearray(n)
        view = memoryview(out)
        got = 0
        async with asyncio.timeout(self._idle):
            while got < n:
                k = await self._loop.sock_recv_into(self.sock, view[got:])
                if not k:
                    raise _Cut("the file gateway closed the connection")
                got += k
        return bytes(out)

    async def recv_to(self, fd: int, length: int, ring: HashedBuffers) -> int:
        """Receive `length` bytes into the file, through the ring's buffers (which hash them)."""
        left = length
        while left:
            view = await ring.space()
            async with asyncio.timeout(self._idle):
                k = await self._loop.sock_recv_into(self.sock, view[: min(left, len(view))])
            if not k:
                raise _Cut("the file gateway closed mid-frame")
            written = 0
            try:
                while written < k:
                    written += os.write(fd, view[written:k])
            finally:
                ring.keep(written)  # what is in the file is what gets hashed
            left -= k
        return length

    async def header(self) -> tuple[int, int]:
        magic, version, cmd, length = HEADER.unpack(await self.recv_exactly(HEADER.size))
        if magic != b"IM" or version != 1:
            raise _Cut("bad frame from the file gateway")
        return int(cmd), int(length)

    async def raise_error(self, length: int) -> None:
        err: Any = parse_body(Cmd.CMD_ERROR_RESP, await self.recv_exactly(length))
        raise ServerError(int(err.code), err.message, err.cmd)

    async def raise_sent_error(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, _Cut):
            async with asyncio.timeout(1.0):
                cmd, length = await self.header()
                if cmd == Cmd.CMD_ERROR_RESP:
                    await self.raise_error(length)

    async def expect(self, cmd: int, resp_type: type[R]) -> R:
        got, length = await self.header()
        if got == Cmd.CMD_ERROR_RESP:
            await self.raise_error(length)
        if got != cmd:
            raise _Cut(f"expected 0x{cmd:04X}, got 0x{got:04X}")
        msg = parse_body(got, await self.recv_exactly(length))
        assert isinstance(msg, resp_type)
        return msg


__all__ = ["FileRef", "FileTransfers", "Kicked", "md5_of"]
