"""Finding 1: a request body is refused as soon as it passes the limit, whatever the transfer encoding."""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos.conftest import rss_kib
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

CHUNK = 64 * 1024
TOTAL = 64 * 1024 * 1024  # what the hostile client would send if nobody stopped it
RESET = 0  # the connection was reset before the answer could be read


async def _chunked_post(port: int, path: str) -> tuple[int, int]:
    """POST a huge chunked body; returns (status, bytes the client managed to send before the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = 0
    status_line = b""
    read = asyncio.ensure_future(reader.readline())
    try:
        while sent < TOTAL and not read.done():
            try:
                writer.write(f"{CHUNK:x}\r\n".encode() + b"[" * CHUNK + b"\r\n")
                await asyncio.wait_for(writer.drain(), 5)
            except (ConnectionError, TimeoutError):
                break
            sent += CHUNK
        try:
            status_line = await asyncio.wait_for(read, 30)
        except ConnectionResetError:
            # The server answered and closed with our unread bytes in its buffer: the kernel's reset
            # can overtake the answer. Either way it stopped reading.
            return RESET, sent
    finally:
        writer.transport.abort()
    return int(status_line.split()[1]), sent


@pytest.mark.parametrize(
    ("path", "refused_with"), [("/api/login", 413), ("/api/register", 413), ("/api/logout", 401)]
)
async def test_large_chunked_bodies_are_refused_early(
    server: ServerProcess, path: str, refused_with: int
) -> None:
    assert server.proc is not None
    before = rss_kib(server.proc.pid)
    results = await asyncio.gather(*(_chunked_post(server.port, path) for _ in range(4)))
    growth_mib = (rss_kib(server.proc.pid) - before) / 1024
    for status, sent in results:
        assert status in (refused_with, RESET)
        assert sent < 8 * 1024 * 1024, f"the server read {sent} bytes before refusing"
    assert growth_mib < 40, f"4 hostile uploads grew the process by {growth_mib:.0f} MiB"


async def test_content_length_over_the_limit_is_refused_before_reading(server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.transport.abort()
    assert int(status_line.split()[1]) == 413


async def test_small_json_body_over_the_json_limit_is_413(server: ServerProcess) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=server.base_url) as http:
        resp = await http.post("/api/register", json={"username": "x" * 5000})
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"
