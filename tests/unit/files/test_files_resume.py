"""Offset and resume arithmetic (hypothesis), and the file gateway's upload sessions on a real disk:
any sequence of cuts and resumes ends with the exact bytes and MD5; a wrong offset, data past the size,
a corrupted byte and a full disk are refused clearly and keep what was written."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.files.test_files_service import ALICE, BOB, Env
from tinyim.edges.filegw import transfers
from tinyim.edges.filegw.transfers import FileGateway, FileLimits, UploadSession
from tinyim.kernel import ImError
from tinyim.modules.files import (
    FILE_BUSY,
    FILE_CORRUPT,
    FILE_DISK_FULL,
    FILE_OFFSET,
    FILE_TOO_LARGE,
    FILE_TOO_MANY,
    FileStatus,
    Ticket,
    TicketKind,
    TokenBucket,
    UploadRequest,
    accept_data,
    parse_range,
    resume_offset,
)
from tinyim.modules.files.adapters.memory import InMemoryTransferSlots
from tinyim.modules.files.domain import chunks, clean_name, proof_range


# ---------- pure arithmetic ----------
@given(st.integers(1, 2**40), st.integers(1, 2**26), st.integers(0, 2**40))
def test_chunks_cover_the_rest_exactly_once_in_order(size: int, chunk: int, start: int) -> None:
    start = resume_offset(start, size)
    if (size - start) // chunk > 10_000:
        chunk = (size - start) // 10_000 + 1
    parts = chunks(start, size, chunk)
    held = start
    for at, length in parts:
        assert 0 < length <= chunk
        held = accept_data(held, at, length, size)
    assert held == size


@given(st.integers(1, 2**40), st.integers(0, 2**63))
def test_the_proof_range_lies_inside_the_file(size: int, seed: int) -> None:
    offset, length = proof_range(size, seed)
    assert offset >= 0 and 0 < length <= 64 * 1024 and offset + length <= size


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**30), st.integers(1, 2**40))
def test_data_is_accepted_only_where_the_gateway_stopped_and_within_the_size(
    held: int, at: int, length: int, size: int
) -> None:
    try:
        after = accept_data(held, at, length, size)
    except ImError as exc:
        assert (exc.code == FILE_OFFSET and at != held) or (
            exc.code == FILE_TOO_LARGE and held + length > size
        )
    else:
        assert at == held and after == held + length <= size


@given(st.integers(1, 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_ranges_are_inside_the_file_or_refused(size: int, a: int, b: int) -> None:
    for header in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        try:
            got = parse_range(header, size)
        except ValueError:
            continue
        assert got is not None
        start, end = got
        assert 0 <= start <= end < size


@given(st.text(max_size=400))
def test_names_never_carry_a_path(name: str) -> None:
    clean = clean_name(name)
    assert "/" not in clean and "\\" not in clean and clean not in ("", ".", "..") and len(clean) <= 255


@given(st.integers(1000, 10**8), st.lists(st.integers(1, 10**6), min_size=1, max_size=200))
def test_the_token_bucket_holds_the_rate(rate: int, sizes: list[int]) -> None:
    now = 0.0
    bucket = TokenBucket(rate, rate / 20, now)
    for n in sizes:
        now += bucket.delay(n, now)
    # moving sum(sizes) takes at least what the rate allows, minus the initial burst
    assert now >= (sum(sizes) - rate / 20) / rate - 1e-6


# ---------- upload sessions on disk: cuts and resumes ----------
def gateway(env: Env, **limits: Any) -> FileGateway:
    limits = {"chunk_size": 65536, **limits}
    return FileGateway(env.service, env.blobs, env.tickets, FileLimits(**limits), InMemoryTransferSlots())


async def new_upload(env: Env, data: bytes, who: int = ALICE.user_id) -> Ticket:
    caller = ALICE if who == ALICE.user_id else BOB
    t = await env.service.apply_upload(
        caller, UploadRequest("f.bin", len(data), hashlib.md5(data).hexdigest())
    )
    return env.tickets.read(t.token)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=300_000),
    cuts=st.lists(st.tuples(st.integers(0, 300_000), st.booleans()), max_size=6),
    seed=st.integers(0, 2**32),
)
def test_any_sequence_of_cuts_and_resumes_ends_with_the_exact_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cuts: list[tuple[int, bool]], seed: int
) -> None:
    """Each cut ends a session after some bytes (optionally with the gateway forgetting its hash state,
    as after a restart); the next session learns the held offset and sends from there."""

    async def scenario() -> None:
        env = Env(tmp_path_factory.mktemp("blobs"))
        gw = gateway(env)
        ticket = await new_upload(env, data)
        rng = random.Random(seed)
        for cut_at, restart in cuts:
            async with gw.upload(ticket) as s:
                while s.held < min(cut_at, len(data) - 1):
                    n = rng.randint(1, 70_000)
                    s.write(data[s.held : min(s.held + n, cut_at, len(data) - 1)])
            if restart:
                gw = gateway(env)  # a new process: hash state from disk
        async with gw.upload(ticket) as s:
            held = s.held
            assert held == env.blobs.partial_path(ticket.task_id).stat().st_size
            s.write(data[held:])
            task = await s.finish()
        assert task.status is FileStatus.FINISHED
        assert env.blobs.blob_path(task.blob_key).read_bytes() == data
        assert not env.blobs.partial_path(ticket.task_id).exists()

    asyncio.run(scenario())


async def receive(s: UploadSession, data: bytes, upto: int, rng: random.Random) -> None:
    """As the TCP side: receive pieces of random size straight into the session's buffers."""
    while s.held < upto:
        view = await s.space()
        n = min(rng.randint(1, 9_000), len(view), upto - s.held)
        view[:n] = data[s.held : s.held + n]
        s.commit(n)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=120_000),
    cuts=st.lists(st.tuples(st.integers(0, 120_000), st.booleans(), st.booleans()), max_size=6),
    seed=st.integers(0, 2**32),
)
def test_bytes_received_into_the_session_buffers_hash_right_across_cuts(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cuts: list[tuple[int, bool, bool]], seed: int
) -> None:
    """The TCP path (receive buffers of 4 KiB here, so pieces cross buffers and buffers are reused),
    mixed with `write` as HTTP does, with cuts and restarts: the MD5 checked at the end is right."""

    async def scenario() -> None:
        env = Env(tmp_path_factory.mktemp("blobs"))
        gw = gateway(env)
        ticket = await new_upload(env, data)
        rng = random.Random(seed)
        for cut_at, restart, http in cuts:
            async with gw.upload(ticket) as s:
                upto = max(s.held, min(cut_at, len(data) - 1))
                await receive(s, data, (s.held + upto) // 2, rng)
                if http:
                    s.write(data[s.held : upto])
                await receive(s, data, upto, rng)
            if restart:
                gw = gateway(env)
        async with gw.upload(ticket) as s:
            await receive(s, data, len(data), rng)
            task = await s.finish()
        assert env.blobs.blob_path(task.blob_key).read_bytes() == data

    with mock.patch.multiple(transfers, RECEIVE_BUFFER=4096, RECEIVE_BUFFERS=2):
        asyncio.run(scenario())


async def test_a_full_disk_on_the_receive_path_keeps_and_hashes_only_what_was_written(tmp_path: Path) -> None:
    env = Env(tmp_path)
    data = random.Random(3).randbytes(300_000)
    ticket = await new_upload(env, data)
    real = os.pwrite
    calls = {"n": 0}

    def filling(fd: int, buf: object, at: int) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            return real(fd, memoryview(buf)[:777], at)  # type: ignore[arg-type]
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, buf, at)  # type: ignore[arg-type]

    gw = gateway(env)
    async with gw.upload(ticket) as s:
        with mock.patch("tinyim.edges.filegw.transfers.os.pwrite", filling), pytest.raises(ImError) as err:
            await receive(s, data, len(data), random.Random(4))
        assert err.value.code == FILE_DISK_FULL
        kept = s.held
    assert env.blobs.partial_path(ticket.task_id).read_bytes() == data[:kept]
    async with gw.upload(ticket) as s:  # the hash state this process kept covers exactly those bytes
        assert s.held == kept
        await receive(s, data, len(data), random.Random(5))
        assert (await s.finish()).status is FileStatus.FINISHED


async def test_a_corrupted_byte_fails_the_task_and_deletes_the_partial(tmp_path: Path) -> None:
    env = Env(tmp_path)
    data = random.Random(1).randbytes(100_000)
    ticket = await new_upload(env, data)
    bad = bytearray(data)
    bad[5000] ^= 0xFF
    async with gateway(env).upload(ticket) as s:
        s.write(bytes(bad))
        with pytest.raises(ImError) as err:
            await s.finish()
    assert err.value.code == FILE_CORRUPT
    task = await env.service.get_task(ticket.task_id)
    assert task.status is FileStatus.FAILED and "MD5" in task.error
    assert not env.blobs.partial_path(ticket.task_id).exists() and not list((tmp_path / "blobs").glob("*/*"))
    with pytest.raises(ImError) as err:
        async with gateway(env).upload(ticket):
            pass
    assert err.value.code == FILE_CORRUPT


async def test_wrong_offsets_and_data_past_the_size_are_refused(tmp_path: Path) -> None:
    env = Env(tmp_path)
    data = b"x" * 1000
    ticket = await new_upload(env, data)
    async with gateway(env).upload(ticket) as s:
        s.write(data[:400])
        with pytest.raises(ImError) as err:
            s.check(0, 10)
        assert err.value.code == FILE_OFFSET
        with pytest.raises(ImError) as err:
            s.write(data[:601] + b"y")
        assert err.value.code == FILE_TOO_LARGE and s.held == 400


async def test_a_full_disk_keeps_what_was_written(tmp_path: Path) -> None:
    env = Env(tmp_path)
    data = random.Random(2).randbytes(50_000)
    ticket = await new_upload(env, data)
    real = os.pwrite
    calls = {"n": 0}

    def filling(fd: int, buf: object, at: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real(fd, memoryview(buf)[:1234], at)  # type: ignore[arg-type]
        raise OSError(errno.ENOSPC, "No space left on device")

    gw = gateway(env)
    async with gw.upload(ticket) as s:
        with mock.patch("tinyim.edges.filegw.transfers.os.pwrite", filling), pytest.raises(ImError) as err:
            s.write(data)
        assert err.value.code == FILE_DISK_FULL and "1234 bytes are kept" in err.value.message
    async with gw.upload(ticket) as s:
        assert s.held == 1234
        s.write(data[1234:])
        await s.finish()


async def test_one_writer_per_task_and_a_cap_per_user(tmp_path: Path) -> None:
    env = Env(tmp_path)
    gw = gateway(env, max_transfers_per_user=2)
    one, two, three = [await new_upload(env, bytes([i]) * 10) for i in range(3)]
    other = FileGateway(
        env.service, env.blobs, env.tickets, FileLimits(), InMemoryTransferSlots()
    )  # another process, same disk
    async with gw.upload(one):
        with pytest.raises(ImError) as err:
            async with other.upload(one):
                pass
        assert err.value.code == FILE_BUSY
        async with gw.upload(two):
            with pytest.raises(ImError) as err:
                async with gw.upload(three):
                    pass
            assert err.value.code == FILE_TOO_MANY


async def test_a_reconnect_takes_over_its_tasks_session_in_this_process(tmp_path: Path) -> None:
    env = Env(tmp_path)
    gw = gateway(env)
    ticket = await new_upload(env, b"z" * 100)
    holding = asyncio.Event()

    async def stale_connection() -> None:
        async with gw.upload(ticket) as s:
            s.write(b"z" * 10)
            holding.set()
            await asyncio.sleep(30)

    stale = asyncio.create_task(stale_connection())
    await holding.wait()
    async with gw.upload(ticket) as s:
        assert s.held == 10
        s.write(b"z" * 90)
        await s.finish()
    assert stale.cancelled()


async def test_expired_partials_are_swept_unless_being_written(tmp_path: Path) -> None:
    env = Env(tmp_path)
    gw = gateway(env, upload_ttl_seconds=60)
    idle, busy = await new_upload(env, b"a" * 10), await new_upload(env, b"b" * 10)
    async with gw.upload(idle) as s:
        s.write(b"a" * 5)
    async with gw.upload(busy) as s:
        s.write(b"b" * 5)
        for t in (idle, busy):
            os.utime(env.blobs.partial_path(t.task_id), (1, 1))
        assert gw.sweep() == [idle.task_id]
    assert not env.blobs.partial_path(idle.task_id).exists()
    assert env.blobs.partial_path(busy.task_id).exists()


def test_kinds_of_ticket_are_not_interchangeable(tmp_path: Path) -> None:
    env = Env(tmp_path)
    gw = gateway(env)
    down = env.tickets.issue(Ticket(TicketKind.DOWNLOAD, "a" * 32, 1, 2**40))
    with pytest.raises(ImError):
        gw.ticket(down, TicketKind.UPLOAD)
    with pytest.raises(ImError):
        gw.ticket(down, TicketKind.DOWNLOAD, "b" * 32)
    assert gw.ticket(down, TicketKind.DOWNLOAD, "a" * 32).user_id == 1
