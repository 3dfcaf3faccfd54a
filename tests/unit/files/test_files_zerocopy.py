"""Zero-copy downloads, on asyncio's own loop (native `loop.sock_sendfile`) and on uvloop (`os.sendfile`
on the socket): the TCP download resumed from an offset gives the exact bytes (the MD5 of what was kept
before the cut and what came after is the file's), with and without a bandwidth limit, and its bytes
went by sendfile; the HTTP download through our uvicorn protocol (the "http.response.zerocopysend"
extension) answers whole files and ranges exactly, keeps the connection usable for the next request,
honours the bandwidth limit, and sends by sendfile too."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import uvicorn
import uvloop
from starlette.routing import Router

from tests.support.server import free_port
from tests.unit.files.test_files_service import ALICE, Env
from tinyim.edges.filegw import tcp
from tinyim.edges.filegw.http import file_routes
from tinyim.edges.filegw.transfers import FileGateway, FileLimits
from tinyim.infra.listener import GuardedHttpProtocol
from tinyim.modules.files import UploadRequest
from tinyim.modules.files.adapters.memory import InMemoryTransferSlots
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, encode

LOOPS = ["asyncio", "uvloop"]
HEAD = struct.Struct("!2sBHI")


def run_on(kind: str, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    factory = uvloop.new_event_loop if kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(scenario())


class SendfileSpy:
    """Counts the bytes `os.sendfile` moved (asyncio's native path and ours both call it)."""

    def __init__(self) -> None:
        self.bytes = 0
        self._real = os.sendfile

    def __call__(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = self._real(out_fd, in_fd, offset, count)
        self.bytes += n
        return n


async def finished_file(env: Env, data: bytes, name: str = "photo.jpg") -> tuple[str, str]:
    """A finished task holding `data`; its task id and a download token."""
    t = await env.service.apply_upload(ALICE, UploadRequest(name, len(data), hashlib.md5(data).hexdigest()))
    await env.finish(t.task_id, data)
    return t.task_id, (await env.service.apply_download(ALICE, t.task_id)).token


# ---------- TCP ----------
async def tcp_download(
    port: int, token: str, offset: int, keep: int | None
) -> tuple[pb.FileDownloadBegin, bytes]:
    """Download from `offset`; with `keep`, cut the connection once that many bytes arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            encode(Cmd.CMD_FILE_AUTH_REQ, pb.FileAuthReq(token=token, offset=offset).SerializeToString())
        )
        _, _, cmd, n = HEAD.unpack(await reader.readexactly(HEAD.size))
        assert cmd == Cmd.CMD_FILE_DOWNLOAD_BEGIN, hex(cmd)
        begin = pb.FileDownloadBegin.FromString(await reader.readexactly(n))
        got = bytearray()
        while offset + len(got) < begin.file_size and (keep is None or len(got) < keep):
            _, _, cmd, n = HEAD.unpack(await reader.readexactly(HEAD.size))
            assert cmd == Cmd.CMD_FILE_DATA_TRANS and n > 0
            got += await reader.readexactly(n)
        return begin, bytes(got[:keep] if keep is not None else got)
    finally:
        writer.close()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("rate", [0, 4 * 1024 * 1024])
def test_a_tcp_download_resumed_from_an_offset_by_sendfile_hashes_the_same(
    tmp_path: Path, loop: str, rate: int
) -> None:
    data = random.Random(len(loop) + rate).randbytes(3 * 1024 * 1024 + 12_345)
    spy = SendfileSpy()

    async def scenario() -> None:
        env = Env(tmp_path)
        gw = FileGateway(
            env.service,
            env.blobs,
            env.tickets,
            FileLimits(rate_bytes_per_second=rate),
            InMemoryTransferSlots(),
        )
        _, token = await finished_file(env, data)
        port = free_port()
        async with tcp.file_listener(gw, "127.0.0.1", port):
            cut = random.Random(rate).randrange(1, len(data) - 1)
            first, before = await tcp_download(port, token, 0, keep=cut)
            assert first.offset == 0 and first.file_size == len(data) and len(before) == cut
            again, rest = await tcp_download(port, token, cut, keep=None)
            assert again.offset == cut and again.md5 == hashlib.md5(data).hexdigest()
            assert hashlib.md5(before + rest).hexdigest() == again.md5 and before + rest == data
            last, tail = await tcp_download(port, token, len(data), keep=None)  # resumed at the very end
            assert last.offset == len(data) and tail == b""

    # frames of 256 KiB: several sendfile calls per download, a cut inside a frame
    with mock.patch.object(tcp, "DOWNLOAD_FRAME", 256 * 1024), mock.patch("os.sendfile", spy):
        run_on(loop, scenario)
    assert spy.bytes >= len(data), "the payload went by os.sendfile"


# ---------- HTTP ----------
async def serve_http(gw: FileGateway, test: Callable[[str], Awaitable[None]]) -> None:
    """Our uvicorn protocol in front of the file routes, on the running loop, for the test's duration."""
    port = free_port()
    app = Router(file_routes(lambda: gw))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=GuardedHttpProtocol, loop="none",
                            lifespan="off", log_config=None, access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, no event)
            await asyncio.sleep(0.01)
        await test(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize("loop", LOOPS)
def test_http_downloads_go_by_sendfile_and_ranges_stay_exact(tmp_path: Path, loop: str) -> None:
    data = random.Random(7).randbytes(2 * 1024 * 1024 + 777)
    size = len(data)
    spy = SendfileSpy()

    async def scenario() -> None:
        env = Env(tmp_path)
        gw = FileGateway(env.service, env.blobs, env.tickets, FileLimits(), InMemoryTransferSlots())
        task_id, token = await finished_file(env, data)
        one_id, one_token = await finished_file(env, b"x", "one.txt")

        async def test(base: str) -> None:
            url = f"{base}/files/downloads/{task_id}?token={token}"
            # one keep-alive connection for all: each response must end exactly where it says
            async with httpx.AsyncClient(timeout=20) as http:
                whole = await http.get(url)
                assert whole.status_code == 200 and whole.content == data
                assert whole.headers["content-length"] == str(size)
                rng = random.Random(8)
                for a, b in [(0, 0), (size - 1, size - 1), (1000, 1999), (0, size - 1)] + [
                    tuple(sorted((rng.randrange(size), rng.randrange(size)))) for _ in range(6)
                ]:
                    part = await http.get(url, headers={"Range": f"bytes={a}-{b}"})
                    assert part.status_code == 206 and part.content == data[a : b + 1], (a, b)
                    assert part.headers["content-range"] == f"bytes {a}-{b}/{size}"
                suffix = await http.get(url, headers={"Range": "bytes=-500"})
                assert suffix.status_code == 206 and suffix.content == data[-500:]
                open_end = await http.get(url, headers={"Range": f"bytes={size - 3000}-"})
                assert open_end.status_code == 206 and open_end.content == data[-3000:]
                many = await http.get(url, headers={"Range": "bytes=0-9,100-109"})  # Starlette reads these
                assert many.status_code == 206 and data[:10] in many.content and data[100:110] in many.content
                bad = await http.get(url, headers={"Range": f"bytes={size}-"})
                assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
                head = await http.head(url)
                assert (
                    head.status_code == 200
                    and head.content == b""
                    and head.headers["content-length"] == str(size)
                )
                one = await http.get(f"{base}/files/downloads/{one_id}?token={one_token}")
                assert one.status_code == 200 and one.content == b"x"
                assert (await http.get(url)).content == data  # the connection still frames right

        await serve_http(gw, test)

    with mock.patch("os.sendfile", spy):
        run_on(loop, scenario)
    assert spy.bytes >= 2 * size, "whole files and ranges went by os.sendfile"


@pytest.mark.parametrize("loop", LOOPS)
def test_http_downloads_by_sendfile_keep_the_bandwidth_limit(tmp_path: Path, loop: str) -> None:
    rate = 1024 * 1024
    data = random.Random(9).randbytes(600_000)
    spy = SendfileSpy()
    timings: dict[str, float] = {}

    async def scenario() -> None:
        env = Env(tmp_path)
        gw = FileGateway(
            env.service,
            env.blobs,
            env.tickets,
            FileLimits(rate_bytes_per_second=rate),
            InMemoryTransferSlots(),
        )
        task_id, token = await finished_file(env, data, "a.bin")

        async def test(base: str) -> None:
            async with httpx.AsyncClient(timeout=20) as http:
                started = time.monotonic()
                r = await http.get(f"{base}/files/downloads/{task_id}?token={token}")
                timings["whole"] = time.monotonic() - started
                assert r.content == data
                started = time.monotonic()
                r = await http.get(
                    f"{base}/files/downloads/{task_id}?token={token}", headers={"Range": "bytes=100000-"}
                )
                timings["range"] = time.monotonic() - started
                assert r.status_code == 206 and r.content == data[100_000:]
                started = time.monotonic()  # several ranges: Starlette reads them, under the limit too
                r = await http.get(
                    f"{base}/files/downloads/{task_id}?token={token}",
                    headers={"Range": "bytes=0-199999,300000-499999"},
                )
                timings["ranges"] = time.monotonic() - started
                assert (
                    r.status_code == 206
                    and data[:200_000] in r.content
                    and data[300_000:500_000] in r.content
                )

        await serve_http(gw, test)

    with mock.patch("os.sendfile", spy):
        run_on(loop, scenario)
    # the bucket's burst is a twentieth of a second's worth: the rest waits for the rate
    assert timings["whole"] >= (len(data) - rate / 20) / rate * 0.9, timings
    assert timings["range"] >= (500_000 - rate / 20) / rate * 0.9, timings
    assert timings["ranges"] >= (400_000 - rate / 20) / rate * 0.9, timings
    assert spy.bytes >= len(data) + 500_000


@pytest.mark.parametrize("loop", LOOPS)
def test_a_browser_leaving_mid_download_harms_no_one(
    tmp_path: Path, loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The reader goes away in the middle of a (limited, so unfinished) sendfile response: no error is
    logged, and the next download is whole."""
    data = random.Random(10).randbytes(3 * 1024 * 1024)

    async def scenario() -> None:
        env = Env(tmp_path)
        gw = FileGateway(
            env.service,
            env.blobs,
            env.tickets,
            FileLimits(rate_bytes_per_second=2 * 1024 * 1024),
            InMemoryTransferSlots(),
        )
        task_id, token = await finished_file(env, data, "a.bin")

        async def test(base: str) -> None:
            path = f"/files/downloads/{task_id}?token={token}"
            reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = await reader.readexactly(200_000)
            assert got.startswith(b"HTTP/1.1 200")
            writer.transport.abort()  # a reset, as a closed tab
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(timeout=20) as http:
                r = await http.get(f"{base}{path}", headers={"Range": "bytes=1000000-1099999"})
                assert r.status_code == 206 and r.content == data[1_000_000:1_100_000]

        await serve_http(gw, test)

    with caplog.at_level("WARNING"):
        run_on(loop, scenario)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
