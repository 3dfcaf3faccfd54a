"""Zero-copy file -> socket for asyncio: `loop.sock_sendfile` where the loop has it natively (asyncio's
selector loop), else `os.sendfile` on the non-blocking socket, waiting for room with `add_writer`
(uvloop has no sock_sendfile)."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import BinaryIO


async def sock_sendfile(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, file: BinaryIO, offset: int, count: int
) -> None:
    """Send exactly `count` bytes of `file` from `offset`; raises ConnectionError if the peer goes away."""
    if count <= 0:
        return
    try:
        sent = await loop.sock_sendfile(sock, file, offset, count, fallback=False)
    except (NotImplementedError, asyncio.SendfileNotAvailableError):
        sent = await _os_sendfile(loop, sock, file.fileno(), offset, count)
    if sent != count:
        raise ConnectionError(f"sent {sent} of {count} bytes (the file is shorter?)")


async def _os_sendfile(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, fd: int, offset: int, count: int
) -> int:
    total = 0
    while total < count:
        try:
            n = os.sendfile(sock.fileno(), fd, offset + total, count - total)
        except BlockingIOError:
            await _writable(loop, sock)
            continue
        if n == 0:
            break
        total += n
    return total


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_writer(sock.fileno(), ready)
    try:
        await future
    finally:
        loop.remove_writer(sock.fileno())
