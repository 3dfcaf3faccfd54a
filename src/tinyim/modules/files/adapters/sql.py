"""SQL file tasks (SQLite, MySQL, MariaDB): the spec's `im_file_task` (+ 0003's columns), `im_file_grant`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, and_, func, select, update

from tinyim.infra.db import Database, insert_ignore, metadata
from tinyim.modules.files.domain import FileStatus, FileTask

im_file_task = Table(
    "im_file_task",
    metadata,
    Column("task_id", String(36), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("file_md5", String(32), nullable=False),
    Column("status", Integer, nullable=False),
    Column("current_size", BigInteger),
    Column("storage_path", String(512), nullable=False),
    Column("blob_key", String(80), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("proof_offset", BigInteger, nullable=False),
    Column("proof_length", BigInteger, nullable=False),
    Column("error", String(255), nullable=False),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
    Index("idx_md5", "file_md5"),
    Index("idx_md5_size", "file_md5", "file_size", "status"),
    Index("idx_status_expires", "status", "expires_at"),
)

im_file_grant = Table(
    "im_file_grant",
    metadata,
    Column("task_id", String(32), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
)


def _task(row: object) -> FileTask:
    r = row._mapping  # type: ignore[attr-defined]
    return FileTask(
        task_id=r["task_id"],
        owner_id=int(r["user_id"]),
        file_name=r["file_name"],
        size=int(r["file_size"]),
        md5=r["file_md5"],
        status=FileStatus(int(r["status"])),
        received=int(r["current_size"] or 0),
        blob_key=r["blob_key"],
        expires_at=int(r["expires_at"]),
        proof_offset=int(r["proof_offset"]),
        proof_length=int(r["proof_length"]),
        error=r["error"],
    )


def _values(task: FileTask) -> dict[str, object]:
    return {
        "status": int(task.status),
        "current_size": task.received,
        "blob_key": task.blob_key,
        # the spec's storage_path: where the bytes are, as a content address (never a client string)
        "storage_path": task.blob_key,
        "expires_at": task.expires_at,
        "proof_offset": task.proof_offset,
        "proof_length": task.proof_length,
        "error": task.error,
        "updated_at": func.now(),
    }


class SqlFileTasks:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, task: FileTask) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                im_file_task.insert().values(
                    task_id=task.task_id,
                    user_id=task.owner_id,
                    file_name=task.file_name,
                    file_size=task.size,
                    file_md5=task.md5,
                    **_values(task),
                )
            )

    async def get(self, task_id: str) -> FileTask | None:
        # Gateways and tickets act on what was just written: the primary answers.
        async with self._db.read(fresh=True) as conn:
            row = (await conn.execute(select(im_file_task).where(im_file_task.c.task_id == task_id))).first()
        return None if row is None else _task(row)

    async def find_finished(self, size: int, md5: str) -> FileTask | None:
        async with self._db.read(fresh=True) as conn:
            row = (
                await conn.execute(
                    select(im_file_task)
                    .where(
                        im_file_task.c.file_md5 == md5,
                        im_file_task.c.file_size == size,
                        im_file_task.c.status == int(FileStatus.FINISHED),
                    )
                    .limit(1)
                )
            ).first()
        return None if row is None else _task(row)

    async def find_uploading(self, owner_id: int, size: int, md5: str, now: int) -> FileTask | None:
        async with self._db.read(fresh=True) as conn:
            row = (
                await conn.execute(
                    select(im_file_task)
                    .where(
                        im_file_task.c.file_md5 == md5,
                        im_file_task.c.file_size == size,
                        im_file_task.c.status == int(FileStatus.UPLOADING),
                        im_file_task.c.user_id == owner_id,
                        im_file_task.c.expires_at >= now,
                    )
                    .order_by(im_file_task.c.expires_at.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else _task(row)

    async def save(self, task: FileTask) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(im_file_task).where(im_file_task.c.task_id == task.task_id).values(**_values(task))
            )

    async def grant(self, task_id: str, user_ids: Sequence[int]) -> None:
        if not user_ids:
            return
        async with self._db.write() as conn:
            await conn.execute(
                insert_ignore(conn, im_file_grant), [{"task_id": task_id, "user_id": u} for u in user_ids]
            )

    async def may_read(self, task_id: str, user_id: int) -> bool:
        async with self._db.read(fresh=True) as conn:
            row = (
                await conn.execute(
                    select(im_file_grant.c.user_id).where(
                        im_file_grant.c.task_id == task_id, im_file_grant.c.user_id == user_id
                    )
                )
            ).first()
        return row is not None

    async def expire(self, now: int) -> list[str]:
        stale = and_(im_file_task.c.status == int(FileStatus.UPLOADING), im_file_task.c.expires_at < now)
        async with self._db.write() as conn:
            ids = [r.task_id for r in await conn.execute(select(im_file_task.c.task_id).where(stale))]
            if ids:
                await conn.execute(
                    update(im_file_task)
                    .where(im_file_task.c.task_id.in_(ids), stale)
                    .values(status=int(FileStatus.CANCELLED), updated_at=func.now())
                )
        return ids
