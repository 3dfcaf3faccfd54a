"""FileApi: the local FileService and the gRPC client adapter in front of it (a real grpc.aio server),
on in-memory fakes that keep state: tasks, instant uploads with proof, tickets, grants, expiry."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.grpc_loop import remote_if
from tinyim.kernel import INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, Caller, ImError
from tinyim.modules.files import (
    FILE_NOT_READY,
    FILE_TOO_LARGE,
    FileApi,
    FileService,
    FileStatus,
    GatewayEndpoint,
    TicketKind,
    UploadRequest,
    blob_key,
)
from tinyim.modules.files.adapters.blobs import LocalBlobStore
from tinyim.modules.files.adapters.memory import InMemoryFileTasks
from tinyim.modules.files.adapters.rpc import GrpcFileClient, files_registrar
from tinyim.modules.files.adapters.tickets import JwtTickets
from tinyim.pb.im_internal_pb2_grpc import FileServiceStub

ALICE, BOB, CAROL = Caller(1, "PC"), Caller(2, "PC"), Caller(3, "PC")
DATA = bytes(range(256)) * 1000  # 256,000 bytes
MD5 = hashlib.md5(DATA).hexdigest()


class FakeClock:
    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t


class CountingRandom:
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def task_id(self) -> str:
        return f"{next(self._ids):032x}"

    def seed(self) -> int:
        return 123_457


class OneGateway:
    async def locate(self, task_id: str) -> GatewayEndpoint | None:
        return GatewayEndpoint("127.0.0.1", 8090, "http://127.0.0.1:8080")


class Env:
    def __init__(self, root: Path) -> None:
        self.tasks = InMemoryFileTasks()
        self.blobs = LocalBlobStore(root)
        self.tickets = JwtTickets("s" * 40)
        self.clock = FakeClock()
        self.service = FileService(
            self.tasks, self.blobs, self.tickets, OneGateway(), self.clock, CountingRandom(),
            max_bytes=10**9, upload_ttl_seconds=3600, chunk_size=65536,
        )  # fmt: skip
        self.api: FileApi = self.service

    async def finish(self, task_id: str, data: bytes = DATA) -> None:
        """What a file gateway does once every byte arrived and matched."""
        partial = self.blobs.partial_path(task_id)
        partial.write_bytes(data)
        key = blob_key(hashlib.md5(data).hexdigest(), len(data))
        self.blobs.publish(partial, key)
        await self.api.update_status(task_id, FileStatus.FINISHED, blob_key=key)


@pytest.fixture(params=["local", "grpc"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    env = Env(tmp_path)
    async with remote_if(request.param, "filemeta", files_registrar(env.service), FileServiceStub) as remote:
        if remote is not None:
            env.api = GrpcFileClient(remote)
        yield env


def upload(name: str = "a.bin", data: bytes = DATA) -> UploadRequest:
    return UploadRequest(name, len(data), hashlib.md5(data).hexdigest())


async def test_a_new_upload_gets_a_task_a_gateway_and_a_token_bound_to_user_and_task(env: Env) -> None:
    t = await env.api.apply_upload(ALICE, upload())
    assert not t.is_instant and not t.proof_required and t.offset == 0 and t.chunk_size == 65536
    assert t.gateway == GatewayEndpoint("127.0.0.1", 8090, "http://127.0.0.1:8080")
    ticket = env.tickets.read(t.token)
    assert (ticket.kind, ticket.task_id, ticket.user_id) == (TicketKind.UPLOAD, t.task_id, ALICE.user_id)
    task = await env.api.get_task(t.task_id)
    assert (task.owner_id, task.size, task.md5, task.status) == (1, len(DATA), MD5, FileStatus.UPLOADING)


async def test_bad_requests_are_refused_clearly(env: Env) -> None:
    for req, code in (
        (UploadRequest("a", 0, MD5), INVALID_ARGUMENT),
        (UploadRequest("a", 10**10, MD5), FILE_TOO_LARGE),
        (UploadRequest("a", 10, "not-an-md5"), INVALID_ARGUMENT),
        (UploadRequest("a", 10, MD5, task_id="../etc"), INVALID_ARGUMENT),
    ):
        with pytest.raises(ImError) as err:
            await env.api.apply_upload(ALICE, req)
        assert err.value.code == code


async def test_names_keep_only_their_last_component(env: Env) -> None:
    t = await env.api.apply_upload(ALICE, upload("../../etc/pass\x00wd"))
    assert (await env.api.get_task(t.task_id)).file_name == "passwd"
    t = await env.api.apply_upload(BOB, upload(".."))
    assert (await env.api.get_task(t.task_id)).file_name == "file"


async def test_the_same_upload_again_resumes_the_owners_task(env: Env) -> None:
    first = await env.api.apply_upload(ALICE, upload())
    await env.api.update_status(first.task_id, FileStatus.UPLOADING, received=1000)
    again = await env.api.apply_upload(ALICE, upload())
    assert again.task_id == first.task_id and again.offset == 1000
    other = await env.api.apply_upload(BOB, upload())  # someone else's upload is their own task
    assert other.task_id != first.task_id


async def test_instant_upload_needs_the_hash_of_a_range_the_server_picked(env: Env) -> None:
    first = await env.api.apply_upload(ALICE, upload())
    await env.finish(first.task_id)
    challenge = await env.api.apply_upload(BOB, upload())
    assert challenge.proof_required and not challenge.is_instant and challenge.proof_length == 64 * 1024
    start, end = challenge.proof_offset, challenge.proof_offset + challenge.proof_length
    assert end <= len(DATA)
    proof = hashlib.md5(DATA[start:end]).hexdigest()
    done = await env.api.apply_upload(BOB, UploadRequest("", 0, "", challenge.task_id, proof))
    assert done.is_instant and done.offset == len(DATA) and not done.token
    task = await env.api.get_task(challenge.task_id)
    assert task.status is FileStatus.FINISHED and task.owner_id == BOB.user_id and task.blob_key
    ticket = await env.api.apply_download(BOB, challenge.task_id)
    assert ticket.task.size == len(DATA)


async def test_a_wrong_proof_turns_into_a_normal_upload_once(env: Env) -> None:
    first = await env.api.apply_upload(ALICE, upload())
    await env.finish(first.task_id)
    challenge = await env.api.apply_upload(CAROL, upload())
    wrong = await env.api.apply_upload(CAROL, UploadRequest("", 0, "", challenge.task_id, "0" * 32))
    assert not wrong.is_instant and not wrong.proof_required and wrong.token and wrong.offset == 0
    # the challenge is gone: even the right answer now is only a resume ticket
    start, end = challenge.proof_offset, challenge.proof_offset + challenge.proof_length
    right = hashlib.md5(DATA[start:end]).hexdigest()
    again = await env.api.apply_upload(CAROL, UploadRequest("", 0, "", challenge.task_id, right))
    assert not again.is_instant
    with pytest.raises(ImError) as err:
        await env.api.apply_download(CAROL, challenge.task_id)
    assert err.value.code == FILE_NOT_READY


async def test_someone_elses_task_cannot_be_followed_up(env: Env) -> None:
    t = await env.api.apply_upload(ALICE, upload())
    with pytest.raises(ImError) as err:
        await env.api.apply_upload(BOB, UploadRequest("", 0, "", t.task_id, ""))
    assert err.value.code == PERMISSION_DENIED


async def test_only_the_owner_and_those_it_was_shared_with_may_download(env: Env) -> None:
    t = await env.api.apply_upload(ALICE, upload())
    with pytest.raises(ImError) as err:
        await env.api.share(ALICE.user_id, t.task_id, [BOB.user_id])
    assert err.value.code == FILE_NOT_READY  # unfinished files cannot be sent
    await env.finish(t.task_id)
    for caller in (BOB, CAROL):
        with pytest.raises(ImError) as err:
            await env.api.apply_download(caller, t.task_id)
        assert err.value.code == NOT_FOUND  # forbidden looks like unknown
    with pytest.raises(ImError) as err:
        await env.api.share(CAROL.user_id, t.task_id, [CAROL.user_id])  # carol cannot forward it
    assert err.value.code == NOT_FOUND
    await env.api.share(ALICE.user_id, t.task_id, [ALICE.user_id, BOB.user_id])
    ticket = await env.api.apply_download(BOB, t.task_id)
    decoded = env.tickets.read(ticket.token)
    assert (decoded.kind, decoded.user_id, decoded.task_id) == (TicketKind.DOWNLOAD, BOB.user_id, t.task_id)
    await env.api.share(BOB.user_id, t.task_id, [CAROL.user_id])  # bob may forward what he got
    await env.api.apply_download(CAROL, t.task_id)


async def test_a_failed_task_is_never_published(env: Env) -> None:
    t = await env.api.apply_upload(ALICE, upload())
    await env.api.update_status(t.task_id, FileStatus.FAILED, error="MD5 mismatch")
    task = await env.api.get_task(t.task_id)
    assert task.status is FileStatus.FAILED and task.error == "MD5 mismatch"
    with pytest.raises(ImError):
        await env.api.update_status(t.task_id, FileStatus.FINISHED, blob_key=blob_key(MD5, len(DATA)))
    with pytest.raises(ImError):
        await env.api.apply_download(ALICE, t.task_id)


async def test_finishing_needs_the_tasks_own_bytes(env: Env) -> None:
    t = await env.api.apply_upload(ALICE, upload())
    with pytest.raises(ImError) as err:
        await env.api.update_status(t.task_id, FileStatus.FINISHED, blob_key=blob_key("0" * 32, len(DATA)))
    assert err.value.code == INVALID_ARGUMENT


async def test_abandoned_uploads_expire(env: Env) -> None:
    old = await env.api.apply_upload(ALICE, upload())
    env.clock.t += 1800
    kept = await env.api.apply_upload(BOB, upload())
    env.clock.t += 1801
    assert await env.service.expire_uploads() == [old.task_id]
    assert (await env.api.get_task(old.task_id)).status is FileStatus.CANCELLED
    assert (await env.api.get_task(kept.task_id)).status is FileStatus.UPLOADING
    with pytest.raises(ImError) as err:
        await env.api.apply_upload(ALICE, UploadRequest("", 0, "", old.task_id, ""))
    assert err.value.code == FILE_NOT_READY


def test_tickets_refuse_forgeries_other_keys_and_chat_tokens(tmp_path: Path) -> None:
    from tinyim.modules.auth.adapters.crypto import JwtCodec
    from tinyim.modules.auth.domain import TokenClaims
    from tinyim.modules.files import Ticket

    codec = JwtTickets("k" * 40)
    token = codec.issue(Ticket(TicketKind.UPLOAD, "a" * 32, 7, 2**40))
    assert codec.read(token).user_id == 7
    chat = JwtCodec("k" * 40).issue(TokenClaims(7, "PC", "jti", 2**40))
    expired = codec.issue(Ticket(TicketKind.UPLOAD, "a" * 32, 7, 1))
    for bad in (token[:-2] + "xx", JwtTickets("z" * 40).issue(Ticket(TicketKind.UPLOAD, "a" * 32, 7, 2**40)),
                chat, expired, "", "x" * 5000):  # fmt: skip
        with pytest.raises(ImError) as err:
            codec.read(bad)
        assert err.value.code == UNAUTHENTICATED
