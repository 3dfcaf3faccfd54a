"""Finding 7: slow-header and idle connections are dropped; connections per client address are capped."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    env = {"IM_HTTP_HEADER_TIMEOUT_SECONDS": "2", "IM_MAX_CONNECTIONS_PER_ADDRESS": "30"}
    proc = ServerProcess(tmp_path_factory.mktemp("tinyim"), env=env).start()
    yield proc
    proc.stop()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(4096), seconds) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_slow_headers_are_cut_off(server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    closed = False
    try:
        for _ in range(20):  # one header byte every 0.5 s: never finishes the headers
            writer.write(b"X")
            await writer.drain()
            if await _closed_within(reader, 0.5):
                closed = True
                break
    except ConnectionError:
        closed = True
    writer.transport.abort()
    assert closed and time.monotonic() - started < 6


async def test_a_silent_connection_is_dropped(server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await _closed_within(reader, 6)
    writer.transport.abort()


async def test_connections_per_address_are_capped(server: ServerProcess) -> None:
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(30)]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await _closed_within(reader, 1.5), "the 31st connection from one address was served"
    writer.transport.abort()
    for _, w in held:
        w.transport.abort()
    await asyncio.sleep(0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
    writer.transport.abort()
