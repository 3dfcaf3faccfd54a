"""The ASGI "http.response.zerocopysend" extension for uvicorn's httptools protocol (uvicorn offers
neither it nor "http.response.pathsend"), so an app can send file bytes with `os.sendfile`: they go
from the page cache to the socket without passing through Python.

    {"type": "http.response.zerocopysend", "file": <object with fileno()>, "offset": int | None,
     "count": int | None, "more_body": bool}

The bytes go straight to the connection's socket once the transport's own buffer is empty (the
response head and earlier body bytes first); uvicorn's bookkeeping (Content-Length, completion) is
then advanced as if they had been sent as a body. A chunked response cannot frame bytes it never sees,
and a HEAD response carries none: both get an ordinary body. uvloop owns the socket's descriptor, so
the wait for room in the socket uses a duplicate of it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

EXTENSION = "http.response.zerocopysend"

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def offer(cycle: Any, transport: asyncio.Transport) -> None:
    """Announce the extension in the cycle's scope and let its `send` take the extension's messages."""
    scope = cycle.scope
    extensions = scope.setdefault("extensions", {})
    if EXTENSION in extensions:
        return
    extensions[EXTENSION] = {}
    send: Send = cycle.send

    async def send_with_zerocopy(message: Message) -> None:
        if message["type"] != EXTENSION:
            await send(message)
        else:
            await _zerocopy(cycle, transport, send, message)

    cycle.send = send_with_zerocopy


async def _zerocopy(cycle: Any, transport: asyncio.Transport, send: Send, message: Message) -> None:
    more_body = bool(message.get("more_body", False))
    fd = message["file"].fileno()
    offset = message.get("offset")
    offset = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else int(offset)
    count = message.get("count")
    count = max(0, os.fstat(fd).st_size - offset) if count is None else int(count)
    if cycle.disconnected:
        return
    if not cycle.response_started or cycle.response_complete:
        raise RuntimeError(f"'{EXTENSION}' is only valid between the response start and its end")
    if cycle.scope["method"] == "HEAD" or cycle.chunked_encoding:
        body = await asyncio.to_thread(os.pread, fd, count, offset) if cycle.chunked_encoding else b""
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
        return
    if count > cycle.expected_content_length:
        raise RuntimeError("Response content longer than Content-Length")
    sock = transport.get_extra_info("socket")
    if sock is None or not count:
        body = await asyncio.to_thread(os.pread, fd, count, offset) if count else b""
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
        return
    try:
        sent = await _sendfile(transport, sock.fileno(), fd, offset, count)
    except (BrokenPipeError, ConnectionResetError):
        # the peer went away: what uvicorn does when it notices, at once
        cycle.disconnected = True
        transport.abort()
        return
    cycle.expected_content_length -= sent
    if sent != count:
        raise RuntimeError(f"sent {sent} of {count} bytes: the file is shorter than the response says")
    await send({"type": "http.response.body", "body": b"", "more_body": more_body})


async def _sendfile(transport: asyncio.Transport, sock_fd: int, fd: int, offset: int, count: int) -> int:
    loop = asyncio.get_running_loop()
    dup = os.dup(sock_fd)  # shares the socket (and its O_NONBLOCK); a descriptor uvloop does not watch
    try:
        while transport.get_write_buffer_size():  # the head (or earlier bytes) still queued: they go first
            if transport.is_closing():
                raise ConnectionResetError("the connection is closing")
            await _writable(loop, dup)
            await asyncio.sleep(0)  # the transport writes its buffer on the same readiness
        total = 0
        while total < count:
            if transport.is_closing():
                raise ConnectionResetError("the connection is closing")
            try:
                n = os.sendfile(dup, fd, offset + total, count - total)
            except BlockingIOError:
                await _writable(loop, dup)
                continue
            if n == 0:  # end of file
                break
            total += n
        return total
    finally:
        os.close(dup)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await future
    finally:
        loop.remove_writer(fd)
