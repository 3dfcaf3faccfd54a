"""FileTaskRepository contract, on every adapter (memory, SQLite, MariaDB); the blob store on a real disk."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.contract.conftest import Backend, fresh_id
from tinyim.modules.files import FileStatus, FileTask, FileTaskRepository, blob_key
from tinyim.modules.files.adapters.blobs import LocalBlobStore
from tinyim.modules.files.adapters.memory import InMemoryFileTasks
from tinyim.modules.files.adapters.sql import SqlFileTasks


@asynccontextmanager
async def open_repo(backend: Backend) -> AsyncIterator[FileTaskRepository]:
    async with backend.database() as db:
        yield InMemoryFileTasks() if db is None else SqlFileTasks(db)


def task(owner: int, size: int = 5 * 1024**3, md5: str = "", **kw: Any) -> FileTask:
    kw.setdefault("expires_at", 2_000_000_000)
    return FileTask(
        task_id=secrets.token_hex(16), owner_id=owner, file_name="名字 ünïcode.bin", size=size,
        md5=md5 or secrets.token_hex(16), **kw,
    )  # fmt: skip


async def test_add_get_and_save_round_trip_64_bit_sizes(backend: Backend) -> None:
    async with open_repo(backend) as repo:
        t = task(fresh_id())
        await repo.add(t)
        assert await repo.get(t.task_id) == t
        assert await repo.get(secrets.token_hex(16)) is None
        progressed = t.with_status(
            FileStatus.UPLOADING, received=4 * 1024**3 + 7, proof_offset=9, proof_length=3
        )
        await repo.save(progressed)
        assert await repo.get(t.task_id) == progressed
        done = t.with_status(FileStatus.FINISHED, received=t.size, blob_key=blob_key(t.md5, t.size))
        await repo.save(done)
        assert await repo.get(t.task_id) == done


async def test_find_finished_by_size_and_md5_of_any_owner(backend: Backend) -> None:
    async with open_repo(backend) as repo:
        md5 = secrets.token_hex(16)
        uploading = task(fresh_id(), 100, md5)
        await repo.add(uploading)
        assert await repo.find_finished(100, md5) is None
        finished = task(fresh_id(), 100, md5, status=FileStatus.FINISHED, blob_key=blob_key(md5, 100))
        await repo.add(finished)
        assert (await repo.find_finished(100, md5)) == finished
        assert await repo.find_finished(101, md5) is None


async def test_find_uploading_is_per_owner_and_unexpired(backend: Backend) -> None:
    async with open_repo(backend) as repo:
        owner, md5 = fresh_id(), secrets.token_hex(16)
        mine = task(owner, 100, md5)
        await repo.add(mine)
        assert await repo.find_uploading(owner, 100, md5, 1_000) == mine
        assert await repo.find_uploading(fresh_id(), 100, md5, 1_000) is None
        assert await repo.find_uploading(owner, 100, md5, 2_000_000_001) is None


async def test_grants_are_idempotent_and_per_user(backend: Backend) -> None:
    async with open_repo(backend) as repo:
        t = task(fresh_id())
        await repo.add(t)
        a, b = fresh_id(), fresh_id()
        await repo.grant(t.task_id, [a])
        await repo.grant(t.task_id, [a, a + 0])
        await repo.grant(t.task_id, [])
        assert await repo.may_read(t.task_id, a)
        assert not await repo.may_read(t.task_id, b)
        assert not await repo.may_read(secrets.token_hex(16), a)


async def test_expire_cancels_only_stale_unfinished_uploads(backend: Backend) -> None:
    async with open_repo(backend) as repo:
        now = 2_100_000_000 + fresh_id() % 1000
        stale = task(fresh_id(), expires_at=now - 1)
        fresh = task(fresh_id(), expires_at=now + 100)
        done = task(fresh_id(), expires_at=now - 1, status=FileStatus.FINISHED)
        for t in (stale, fresh, done):
            await repo.add(t)
        expired = await repo.expire(now)
        assert stale.task_id in expired and fresh.task_id not in expired and done.task_id not in expired
        assert (await repo.get(stale.task_id)).status is FileStatus.CANCELLED  # type: ignore[union-attr]
        assert (await repo.get(done.task_id)).status is FileStatus.FINISHED  # type: ignore[union-attr]
        assert stale.task_id not in await repo.expire(now)


def test_blob_store_is_content_addressed_and_never_takes_client_paths(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"hello world" * 100
    key = blob_key(hashlib.md5(data).hexdigest(), len(data))
    task_id = secrets.token_hex(16)
    partial = store.partial_path(task_id)
    partial.write_bytes(data)
    store.publish(partial, key)
    assert store.has(key) and store.blob_path(key).read_bytes() == data and not partial.exists()
    assert store.read_range(key, 6, 5) == b"world"
    assert store.blob_path(key).is_relative_to(tmp_path / "blobs")
    again = store.partial_path(secrets.token_hex(16))
    again.write_bytes(data)
    store.publish(again, key)  # identical bytes are stored once
    assert not again.exists() and len(list((tmp_path / "blobs").rglob("*-*"))) == 1
    for bad in ("../../etc/passwd", "a" * 32 + "/x", ""):
        with pytest.raises(Exception):  # noqa: B017 (ImError or ValueError: refused either way)
            store.partial_path(bad)
        assert not store.has(bad)
