"""A file above 4 GiB (a sparse source file with a few real bytes) uploads through the file gateway and
finishes with the right size and MD5: sizes and offsets are 64-bit end to end.

Slow (it moves 4 GiB through the gateway and the disk): `make test-big`, which .ci/run also calls;
`make test` leaves it out (marker `big`)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import new_user, online
from tests.support.server import ServerProcess
from tinyim.client import FileTransfers
from tinyim.client.files import md5_of
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd

pytestmark = [pytest.mark.e2e, pytest.mark.big]

SIZE = 4 * 1024**3 + 5 * 1024 * 1024 + 3  # past the 32-bit limit


@pytest.fixture(scope="module")
def server_big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("big"), env={"IM_FILE_CHUNK_BYTES": str(4 * 1024 * 1024)})
    proc.start()
    yield proc
    proc.stop()


def sparse_source(path: Path) -> Path:
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for at in (0, 2**31 - 1, 2**32 - 2, 2**32 + 7, SIZE - 16):  # real bytes around the 2/4 GiB marks
            f.seek(at)
            f.write(hashlib.sha256(str(at).encode()).digest()[:16])
    return path


async def test_an_upload_above_4_gib_finishes_with_the_right_size_and_md5(
    server_big: ServerProcess, tmp_path: Path
) -> None:
    source = sparse_source(tmp_path / "huge.img")
    name, _ = await new_user(server_big.base_url, "huge")
    async with online(server_big.base_url, name) as c:
        transfers = FileTransfers(c, stall_timeout=120)
        ref = await transfers.upload(source)
        assert ref.size == SIZE and transfers.attempts == 1
        task_blob = server_big.data_dir / "files" / "blobs" / ref.md5[:2] / f"{ref.md5}-{SIZE}"
        assert task_blob.stat().st_size == SIZE
        assert await asyncio.to_thread(md5_of, task_blob) == ref.md5  # ref.md5: the SDK's MD5 of the source
        # bytes past 4 GiB come back right: an HTTP Range read and a TCP download resumed above 2**32
        ticket = await c.request(Cmd.CMD_FILE_DOWNLOAD_REQ, pb.FileDownloadReq(task_id=ref.task_id))
        assert isinstance(ticket, pb.FileDownloadResp)
        at = 2**32 + 7
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.get(ticket.http_url, headers={"Range": f"bytes={at}-{at + 15}"})
        assert r.status_code == 206 and r.content == hashlib.sha256(str(at).encode()).digest()[:16]
        part = tmp_path / "tail.bin.part"
        with open(source, "rb") as src, open(part, "wb") as dst:  # noqa: ASYNC230
            os.copy_file_range(src.fileno(), dst.fileno(), 2**32 + 1, 0, 0)
        out = await transfers.download(ref, tmp_path / "tail.bin")
        assert out.stat().st_size == SIZE and transfers.attempts == 1
        task_blob.unlink()
