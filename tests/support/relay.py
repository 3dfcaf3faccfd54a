"""A TCP relay for gRPC tests: what a channel meets when a container restarted and its old address went
to another role."""

from __future__ import annotations

import asyncio
import contextlib


class Relay:
    """A TCP relay on its own port: the first connection goes to `first`, every later one to `then`. What
    a channel meets after a container restart: its old connection's address now belongs to another role,
    and only a new channel (resolving the name again) reaches the gateway."""

    def __init__(self, first: int, then: int) -> None:
        self.upstreams = [first, then]
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = self.upstreams[min(self.connections, 1)]
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            self._pipes.add(asyncio.create_task(task))

    async def stop(self) -> None:
        for task in self._pipes:
            task.cancel()
        if self._server is not None:
            self._server.close()
