"""File transfer end to end, through the SDK, on one process and on the multi-process topology
(dispatch, 2 gateways, auth, user, 2 msg, 2 file gateways, file meta): upload and download with cuts
at random points (client killed, file gateway kill -9 and restarted), instant upload with and without
proof, a corrupted byte refused, another user's download refused, names stored harmlessly, browser
HTTP uploads/downloads with Range, and file messages checked by the timeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ClusterAsServer, Served
from tests.e2e.helpers import PASSWORD, friend_pair, new_user, online
from tests.support.compose import ComposeStack
from tests.support.server import ServerProcess
from tinyim.client import Client, ClientOptions, FileTransfers, ServerError
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.settings import Settings
from tinyim.wire import Cmd, ErrorCode, encode

pytestmark = pytest.mark.e2e


# the servers' chunk (the default): a cut resends at most about this much
CHUNK = int(Settings.model_fields["file_chunk_bytes"].default)


def payload(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(deployment: Served) -> Served:
    return deployment


async def test_upload_send_and_download_between_friends(served: Served, tmp_path: Path) -> None:
    alice, _, bob, bob_id = await friend_pair(served.base_url)
    source = payload(tmp_path / "report.bin", 3 * 1024 * 1024 + 17, seed=1)
    seen: list[tuple[int, int]] = []
    async with online(served.base_url, alice) as a, online(served.base_url, bob) as b:
        sent = await a.send_file(source, to=bob_id, progress=lambda d, t: seen.append((d, t)))
        assert sent.seq_id > 0 and seen[-1] == (source.stat().st_size, source.stat().st_size)
        got = await b.next_message()
        assert got.type == pb.FILE
        content = json.loads(got.content)
        assert content["file_name"] == "report.bin" and content["size"] == source.stat().st_size
        out = await b.download_file(got, tmp_path / "bob.bin")
        assert md5(out) == md5(source)
        # the uploader may download what they uploaded, by task id
        again = await a.download_file(content["task_id"], tmp_path / "alice.bin")
        assert md5(again) == md5(source)


async def test_instant_upload_needs_proof_of_the_bytes(served: Served, tmp_path: Path) -> None:
    (alice, _), (carol, _) = (
        await new_user(served.base_url, "alice"),
        await new_user(served.base_url, "carol"),
    )
    source = payload(tmp_path / "same.bin", 300_000, seed=2)
    async with online(served.base_url, alice) as a, online(served.base_url, carol) as c:
        first = await a.upload_file(source)
        transfers = FileTransfers(c)
        second = await transfers.upload(source)  # carol holds the bytes: she proves it, nothing is sent
        assert second.task_id != first.task_id and transfers.attempts == 0
        assert md5(await c.download_file(second, tmp_path / "c.bin")) == md5(source)
        # knowing size + MD5 only: the challenge cannot be answered; a wrong proof means a normal upload
        req = pb.FileUploadReq(file_name="x.bin", file_size=300_000, md5=md5(source))
        challenge = await c.request(Cmd.CMD_FILE_UPLOAD_REQ, req)
        assert isinstance(challenge, pb.FileUploadResp) and challenge.proof_required
        answer = pb.FileUploadReq(task_id=challenge.task_id, proof=hashlib.md5(b"guess").hexdigest())
        resp = await c.request(Cmd.CMD_FILE_UPLOAD_REQ, answer)
        assert isinstance(resp, pb.FileUploadResp) and not resp.is_instant and resp.upload_token
        with pytest.raises(ServerError) as err:
            await c.request(Cmd.CMD_FILE_DOWNLOAD_REQ, pb.FileDownloadReq(task_id=challenge.task_id))
        assert err.value.code == ErrorCode.ERR_FILE_NOT_READY


async def test_corrupted_byte_is_refused_and_never_published(served: Served, tmp_path: Path) -> None:
    alice, _ = await new_user(served.base_url, "alice")
    source = payload(tmp_path / "good.bin", 200_000, seed=3)
    async with online(served.base_url, alice) as a:
        req = pb.FileUploadReq(file_name="good.bin", file_size=200_000, md5=md5(source))
        ticket = await a.request(Cmd.CMD_FILE_UPLOAD_REQ, req)
        assert isinstance(ticket, pb.FileUploadResp)
        corrupt = bytearray(source.read_bytes())
        corrupt[123_456] ^= 0x01
        bad = tmp_path / "bad.bin"
        bad.write_bytes(bytes(corrupt))
        with pytest.raises(ServerError) as err:
            await FileTransfers(a)._upload_once(ticket, bad, 200_000, None)
        assert err.value.code == ErrorCode.ERR_FILE_CORRUPT
        with pytest.raises(ServerError) as err:
            await a.download_file(ticket.task_id, tmp_path / "never.bin")
        assert err.value.code == ErrorCode.ERR_FILE_NOT_READY
        # a FILE message cannot name it either
        with pytest.raises(ServerError):
            await a.send(receiver_id=a.user_id, content=json.dumps({"task_id": ticket.task_id,
                         "file_name": "good.bin", "size": 200_000}), msg_type=pb.FILE)  # fmt: skip


async def test_only_readers_of_the_message_may_download(served: Served, tmp_path: Path) -> None:
    alice, _, bob, bob_id = await friend_pair(served.base_url)
    mallory, _ = await new_user(served.base_url, "mallory")
    source = payload(tmp_path / "secret.bin", 100_000, seed=4)
    async with (
        online(served.base_url, alice) as a,
        online(served.base_url, bob) as b,
        online(served.base_url, mallory) as m,
    ):
        ref = await a.upload_file(source)
        with pytest.raises(ServerError) as err:  # not sent to bob yet
            await b.download_file(ref.task_id, tmp_path / "early.bin")
        assert err.value.code == ErrorCode.ERR_NOT_FOUND
        # mallory cannot send a message naming a file she does not have, nor download it
        with pytest.raises(ServerError) as err:
            await m.send(receiver_id=m.user_id, content=ref.content(), msg_type=pb.FILE)
        for guess in (ref.task_id, "0" * 32, "../../etc/passwd"):
            with pytest.raises(ServerError) as err:
                await m.download_file(guess, tmp_path / "stolen.bin")
            assert err.value.code in (ErrorCode.ERR_NOT_FOUND, ErrorCode.ERR_INVALID_ARGUMENT)
        await a.send(receiver_id=bob_id, content=ref.content(), msg_type=pb.FILE)
        got = await b.next_message()
        assert md5(await b.download_file(got, tmp_path)) == md5(source)
        # a download token is bound to its user and task: mallory cannot replay bob's on another task
        ticket = await b.request(Cmd.CMD_FILE_DOWNLOAD_REQ, pb.FileDownloadReq(task_id=ref.task_id))
        assert isinstance(ticket, pb.FileDownloadResp)
        async with httpx.AsyncClient() as http:
            wrong = ticket.http_url.replace(ref.task_id, "f" * 32)
            assert (await http.get(wrong)).status_code == 401
            assert (await http.get(ticket.http_url.split("?")[0])).status_code == 401


async def test_group_members_may_download(served: Served, tmp_path: Path) -> None:
    alice, _, bob, bob_id = await friend_pair(served.base_url)
    async with online(served.base_url, alice) as a, online(served.base_url, bob) as b:
        group = await a.create_group("files", [bob_id])
        await asyncio.sleep(0.2)
        b.take_delivered()
        source = payload(tmp_path / "pic.png", 50_000, seed=5)
        await a.send_file(source, group=group)
        while (got := await b.next_message()).type != pb.IMAGE:
            pass
        assert md5(await b.download_file(got, tmp_path / "b.png")) == md5(source)


async def test_names_are_display_text_only(served: Served, tmp_path: Path) -> None:
    alice, _ = await new_user(served.base_url, "alice")
    data = b"not a system file\n"
    async with online(served.base_url, alice) as a:
        for name in ("../../../../etc/passwd", "..\\..\\boot.ini", "a/b/../../c.txt", "\x00..", ".."):
            req = pb.FileUploadReq(file_name=name, file_size=len(data), md5=hashlib.md5(data).hexdigest())
            ticket = await a.request(Cmd.CMD_FILE_UPLOAD_REQ, req)
            assert isinstance(ticket, pb.FileUploadResp)
            (tmp_path / "x").write_bytes(data)
            if not ticket.is_instant:
                await FileTransfers(a)._upload_once(ticket, tmp_path / "x", len(data), None)
            resp = await a.request(Cmd.CMD_FILE_DOWNLOAD_REQ, pb.FileDownloadReq(task_id=ticket.task_id))
            assert isinstance(resp, pb.FileDownloadResp)
            assert (
                "/" not in resp.file_name and "\\" not in resp.file_name and resp.file_name not in ("..", ".")
            )
            out = await a.download_file(ticket.task_id, tmp_path)  # a directory: saved under the clean name
            assert out.parent == tmp_path and out.read_bytes() == data
    assert Path("/etc/passwd").read_bytes() != data  # noqa: ASYNC240


async def test_browser_upload_by_offsets_and_range_download(served: Served, tmp_path: Path) -> None:
    alice, _ = await new_user(served.base_url, "alice")
    data = random.Random(6).randbytes(700_000)
    async with online(served.base_url, alice) as a:
        req = pb.FileUploadReq(file_name="photo.jpg", file_size=len(data), md5=hashlib.md5(data).hexdigest())
        t = await a.request(Cmd.CMD_FILE_UPLOAD_REQ, req)
        assert isinstance(t, pb.FileUploadResp) and t.http_url and t.chunk_size
        url = f"{t.http_url}/files/uploads/{t.task_id}"
        auth = {"Authorization": f"Bearer {t.upload_token}"}
        async with httpx.AsyncClient(timeout=10) as http:
            # dispatch hands out the same file gateway for the task as FileUploadResp did
            allocated = await http.get(
                f"{served.base_url}/api/allocate_file_gateway",
                params={"task_id": t.task_id},
                headers={"Authorization": f"Bearer {a.token}"},
            )
            assert allocated.json() == {"host": t.gateway_ip, "port": t.gateway_port, "http_url": t.http_url}
            assert (await http.get(url, headers=auth)).json() == {
                "task_id": t.task_id, "offset": 0, "size": len(data), "status": "uploading"}  # fmt: skip
            r = await http.put(url, headers={**auth, "Upload-Offset": "0"}, content=data[:300_000])
            assert r.status_code == 200 and r.json() == {"offset": 300_000, "status": "uploading"}
            r = await http.put(url, headers={**auth, "Upload-Offset": "0"}, content=data[:10])
            assert r.status_code == 409 and r.json()["offset"] == 300_000  # not what the gateway holds
            assert (await http.get(url, headers=auth)).json()["offset"] == 300_000  # resume point
            r = await http.put(
                url, headers={**auth, "Upload-Offset": "300000"}, content=data[300_000:] + b"x"
            )
            assert r.status_code == 413  # past the size
            r = await http.put(url, headers={**auth, "Upload-Offset": "300000"}, content=data[300_000:])
            assert r.status_code == 200 and r.json() == {"offset": len(data), "status": "finished"}
            assert (await http.get(url)).status_code == 401  # no token
            d = await a.request(Cmd.CMD_FILE_DOWNLOAD_REQ, pb.FileDownloadReq(task_id=t.task_id))
            assert isinstance(d, pb.FileDownloadResp)
            whole = await http.get(d.http_url)
            assert whole.status_code == 200 and whole.content == data
            assert whole.headers["content-type"] == "image/jpeg"
            assert whole.headers["content-disposition"].startswith("inline")
            part = await http.get(d.http_url, headers={"Range": "bytes=1000-1999"})
            assert part.status_code == 206 and part.content == data[1000:2000]
            assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"


async def test_file_gateway_cuts_resume_to_the_same_bytes(served: Served, tmp_path: Path) -> None:
    """Cuts at random points of an upload and a download: the client's connection dropped; the SDK
    resumes from what the gateway holds and the result hashes the same."""
    alice, _ = await new_user(served.base_url, "alice")
    source = payload(tmp_path / "big.bin", 24 * 1024 * 1024, seed=7)
    rng = random.Random(8)
    async with online(served.base_url, alice) as a:
        transfers = FileTransfers(a)
        cuts = sorted(rng.randrange(1, 23) * 1024 * 1024 for _ in range(3))

        def cut_at(done: int, _total: int) -> None:
            if cuts and done >= cuts[0]:
                cuts.pop(0)
                raise ConnectionResetError("cut by the test")

        ref = await transfers.upload(source, progress=cut_at)
        assert transfers.attempts >= 2 and not cuts
        cuts = sorted(rng.randrange(1, 23) * 1024 * 1024 for _ in range(3))
        out = await transfers.download(ref, tmp_path / "back.bin", progress=cut_at)
        assert transfers.attempts >= 2 and md5(out) == md5(source)


# ---------- processes killed: the client (upload resumed by a new process) and the file gateway ----------
UPLOADER = """
import asyncio, sys
from tinyim.client import Client
async def main():
    c = Client(sys.argv[1], sys.argv[2], sys.argv[3], "PC")
    await c.start()
    await c.upload_file(sys.argv[4], progress=lambda d, t: print(d, flush=True))
asyncio.run(main())
"""


async def test_client_killed_mid_upload_a_new_one_resumes(served: Served, tmp_path: Path) -> None:
    """A client process kill -9ed mid-upload; the same user uploading the same file again continues
    the same task from the gateway's offset instead of starting over."""
    alice, _ = await new_user(served.base_url, "alice")
    size = 48 * 1024 * 1024
    source = payload(tmp_path / "killed.bin", size, seed=9)
    proc = subprocess.Popen(  # noqa: ASYNC220 (the uploader runs on its own)
        [sys.executable, "-c", UPLOADER, served.base_url, alice, PASSWORD, str(source)],
        stdout=subprocess.PIPE,
    )
    target = random.Random(10).randrange(4, 40) * 1024 * 1024
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        while line and int(line) < target:
            line = await asyncio.to_thread(proc.stdout.readline)
        assert line, "the upload ended before the cut"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    async with online(served.base_url, alice) as a:
        offsets: list[int] = []
        ref = await a.upload_file(source, progress=lambda d, t: offsets.append(d))
        assert offsets[0] >= target - CHUNK, "resumed, not restarted"
        assert md5(await a.download_file(ref, tmp_path / "out.bin")) == md5(source)


async def test_file_gateway_killed_and_restarted_mid_transfer(served: Served, tmp_path: Path) -> None:
    """kill -9 of the file gateway that holds the task, restarted: the same gateway (hash of the task
    id) resumes the upload from the bytes on its disk; the download resumes too."""
    alice, _ = await new_user(served.base_url, "alice")
    size = 40 * 1024 * 1024
    source = payload(tmp_path / "gw.bin", size, seed=11)
    rng = random.Random(12)
    async with online(
        served.base_url, alice, options=ClientOptions(heartbeat_interval=5, reconnect=True)
    ) as a:
        transfers = FileTransfers(a)
        kills: list[int] = []
        cut = rng.randrange(2, 36) * 1024 * 1024
        seen: list[int] = []

        def on_progress(done: int, _total: int) -> None:
            seen.append(done)
            if not kills and done >= cut:
                # killed and restarted while this client waits (its loop blocked: no byte moves meanwhile)
                _kill_file_gateway(served, a)
                kills.append(done)

        ref = await transfers.upload(source, progress=on_progress)
        assert kills and transfers.attempts >= 2
        # after the cut the gateway answered with what it held: progress stepped back at most a little
        resumed = next(b for a_, b in itertools.pairwise(seen) if b <= a_)
        assert resumed >= cut - CHUNK, "resumed from the gateway's disk (at most a chunk resent)"
        kills.clear()
        seen.clear()
        # early enough that the rest (>= 28 MiB) cannot all sit in the socket buffers between the gateway
        # and the client when it dies (~20 MiB through docker's port proxy: two TCP hops), or the kill
        # interrupts nothing and the download finishes in one attempt
        cut = rng.randrange(2, 12) * 1024 * 1024
        out = await transfers.download(ref, tmp_path / "gw-back.bin", progress=on_progress)
        assert kills and transfers.attempts >= 2 and md5(out) == md5(source)


def _kill_file_gateway(served: Served, client: Client) -> None:
    """kill -9 the process(es) serving file transfer and start them again on the same ports."""
    if isinstance(served, ServerProcess):
        served.stop(signal.SIGKILL)
        served.start()
        return
    if isinstance(served, ComposeStack):  # make compose-e2e: the containers get SIGKILL
        served.run("kill", "filegw-1", "filegw-2")
        served.run("start", "filegw-1", "filegw-2")
        for name in ("filegw-1", "filegw-2"):
            served.wait_healthy(name)
        return
    assert isinstance(served, ClusterAsServer)
    cluster = served._cluster
    for name in ("filegw-1", "filegw-2"):  # whichever holds the task: both die
        cluster.kill(name)
    for name in ("filegw-1", "filegw-2"):
        cluster.start(name)


async def test_garbage_and_wrong_tokens_on_the_file_port_get_an_error_and_hurt_no_one(
    served: Served, tmp_path: Path
) -> None:
    alice, _ = await new_user(served.base_url, "alice")
    async with online(served.base_url, alice) as a:
        data = b"still fine\n" * 1000
        req = pb.FileUploadReq(file_name="ok.txt", file_size=len(data), md5=hashlib.md5(data).hexdigest())
        t = await a.request(Cmd.CMD_FILE_UPLOAD_REQ, req)
        assert isinstance(t, pb.FileUploadResp)

        async def answer(payload: bytes) -> tuple[int, bytes]:
            """The last frame the gateway sends before it closes the connection."""
            reader, writer = await asyncio.open_connection(t.gateway_ip, t.gateway_port)
            try:
                writer.write(payload)
                last = (0, b"")
                while head := await asyncio.wait_for(reader.read(9), 5):
                    head += await reader.readexactly(9 - len(head))
                    last = (
                        int.from_bytes(head[3:5], "big"),
                        await reader.readexactly(int.from_bytes(head[5:9], "big")),
                    )
                return last
            finally:
                writer.close()

        def auth(token: str) -> bytes:
            return encode(Cmd.CMD_FILE_AUTH_REQ, pb.FileAuthReq(token=token).SerializeToString())

        too_much = encode(Cmd.CMD_FILE_DATA_TRANS, b"x" * (len(data) + 1))
        for payload, code in (
            (b"GET / HTTP/1.1\r\n\r\n", ErrorCode.ERR_BAD_FRAME),
            (encode(Cmd.CMD_FILE_AUTH_REQ, b"\xff\xff\xff"), ErrorCode.ERR_BAD_BODY),
            (auth(a.token), ErrorCode.ERR_UNAUTHENTICATED),  # a chat session token is no file ticket
            (auth(t.upload_token[:-3] + "abc"), ErrorCode.ERR_UNAUTHENTICATED),
            (encode(Cmd.CMD_HEARTBEAT_REQ, b""), ErrorCode.ERR_UNAUTHENTICATED),
            (auth(t.upload_token) + too_much, ErrorCode.ERR_FILE_TOO_LARGE),
        ):  # fmt: skip
            cmd, body = await answer(payload)
            assert cmd == Cmd.CMD_ERROR_RESP, payload[:20]
            err = pb.ErrorResp.FromString(body)
            assert int(err.code) == code, (payload[:20], err)
        src = tmp_path / "ok.txt"
        src.write_bytes(data)
        assert md5(await a.download_file(await a.upload_file(src), tmp_path / "back.txt")) == md5(src)
