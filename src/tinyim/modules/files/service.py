"""The file meta service: tasks, instant uploads with proof of possession, tickets, who may download."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import replace

from tinyim.kernel import INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, Caller, ImError
from tinyim.modules.files.domain import (
    FILE_NOT_READY,
    DownloadTicket,
    FileStatus,
    FileTask,
    Ticket,
    TicketKind,
    UploadRequest,
    UploadTicket,
    check_md5,
    check_size,
    check_task_id,
    clean_name,
    parse_blob_key,
    proof_range,
)
from tinyim.modules.files.ports import (
    BlobStore,
    Clock,
    FileTaskRepository,
    GatewayLocator,
    Randomness,
    TicketCodec,
)

log = logging.getLogger(__name__)

TICKET_SECONDS = 15 * 60  # a token is checked when a transfer starts; it need not outlive it


class FileService:
    def __init__(
        self,
        tasks: FileTaskRepository,
        blobs: BlobStore,
        tickets: TicketCodec,
        gateways: GatewayLocator,
        clock: Clock,
        randomness: Randomness,
        *,
        max_bytes: int,
        upload_ttl_seconds: float,
        chunk_size: int,
    ) -> None:
        self._tasks = tasks
        self._blobs = blobs
        self._tickets = tickets
        self._gateways = gateways
        self._clock = clock
        self._random = randomness
        self._max_bytes = max_bytes
        self._ttl = upload_ttl_seconds
        self._chunk = chunk_size

    # ---------- uploads ----------
    async def apply_upload(self, caller: Caller, req: UploadRequest) -> UploadTicket:
        if req.task_id:
            return await self._follow_up(caller, req)
        size = check_size(req.size, self._max_bytes)
        md5 = check_md5(req.md5)
        mine = await self._tasks.find_uploading(caller.user_id, size, md5, self._now())
        if mine is not None:  # the same bytes again (a restarted client): resume that upload
            mine = mine.with_status(mine.status, expires_at=self._expiry())
            await self._tasks.save(mine)
            return await self._ticket(caller, mine)
        task = FileTask(
            task_id=self._random.task_id(),
            owner_id=caller.user_id,
            file_name=clean_name(req.file_name),
            size=size,
            md5=md5,
            expires_at=self._expiry(),
        )
        known = await self._tasks.find_finished(size, md5)
        if known is not None and self._blobs.has(known.blob_key):
            offset, length = proof_range(size, self._random.seed())
            task = replace(task, proof_offset=offset, proof_length=length)
        await self._tasks.add(task)
        return await self._ticket(caller, task)

    async def _follow_up(self, caller: Caller, req: UploadRequest) -> UploadTicket:
        task = await self._own_task(caller, req.task_id)
        if task.finished:
            return await self._ticket(caller, task)
        if task.status is not FileStatus.UPLOADING:
            raise ImError(FILE_NOT_READY, f"this upload is {task.status.name.lower()}; start a new one")
        if req.proof and task.proof_length:
            if await self._proof_holds(task, req.proof):
                known = await self._tasks.find_finished(task.size, task.md5)
                assert known is not None
                task = task.with_status(
                    FileStatus.FINISHED, received=task.size, blob_key=known.blob_key, proof_length=0
                )
                await self._tasks.save(task)
                log.info("instant upload", extra={"task": task.task_id, "user": caller.user_id})
                return await self._ticket(caller, task)
            # One attempt: a wrong proof turns the task into a normal upload.
            task = task.with_status(FileStatus.UPLOADING, proof_offset=0, proof_length=0)
        task = task.with_status(task.status, expires_at=self._expiry())
        await self._tasks.save(task)
        return await self._ticket(caller, task)

    async def _proof_holds(self, task: FileTask, proof: str) -> bool:
        known = await self._tasks.find_finished(task.size, task.md5)
        if known is None or not self._blobs.has(known.blob_key):
            return False
        data = self._blobs.read_range(known.blob_key, task.proof_offset, task.proof_length)
        expected = hashlib.md5(data).hexdigest()
        return hmac.compare_digest(expected, proof.strip().lower())

    async def _ticket(self, caller: Caller, task: FileTask) -> UploadTicket:
        gateway = None if task.finished else await self._gateways.locate(task.task_id)
        token = ""
        if not task.finished:
            token = self._tickets.issue(
                Ticket(TicketKind.UPLOAD, task.task_id, caller.user_id, self._now() + TICKET_SECONDS)
            )
        return UploadTicket(
            task_id=task.task_id,
            is_instant=task.finished,
            gateway=gateway,
            token=token,
            offset=task.size if task.finished else task.received,
            chunk_size=self._chunk,
            proof_required=bool(task.proof_length) and not task.finished,
            proof_offset=task.proof_offset,
            proof_length=task.proof_length,
        )

    async def update_status(
        self, task_id: str, status: FileStatus, *, received: int = 0, blob_key: str = "", error: str = ""
    ) -> None:
        task = await self._task(task_id)
        if task.status is not FileStatus.UPLOADING:
            if task.status is status:
                return  # a retried call
            raise ImError(FILE_NOT_READY, f"the task is {task.status.name.lower()} already")
        if status is FileStatus.UPLOADING:
            task = task.with_status(status, received=min(received, task.size), expires_at=self._expiry())
        elif status is FileStatus.FINISHED:
            md5, size = parse_blob_key(blob_key)
            if (md5, size) != (task.md5, task.size):
                raise ImError(INVALID_ARGUMENT, "the blob does not hold this task's bytes")
            task = task.with_status(status, received=task.size, blob_key=blob_key, proof_length=0)
        elif status is FileStatus.FAILED:
            task = task.with_status(status, error=error[:255])
        else:
            task = task.with_status(status)
        await self._tasks.save(task)

    async def get_task(self, task_id: str) -> FileTask:
        return await self._task(task_id)

    # ---------- downloads and file messages ----------
    async def apply_download(self, caller: Caller, task_id: str) -> DownloadTicket:
        task = await self._readable(caller.user_id, task_id)
        token = self._tickets.issue(
            Ticket(TicketKind.DOWNLOAD, task.task_id, caller.user_id, self._now() + TICKET_SECONDS)
        )
        return DownloadTicket(task, await self._gateways.locate(task.task_id), token)

    async def share(self, sender_id: int, task_id: str, reader_ids: Sequence[int]) -> FileTask:
        task = await self._readable(sender_id, task_id)
        await self._tasks.grant(task.task_id, sorted({r for r in reader_ids if r != task.owner_id}))
        return task

    async def _readable(self, user_id: int, task_id: str) -> FileTask:
        """A finished task the user uploaded or was sent. Unknown and forbidden look the same."""
        check_task_id(task_id)
        task = await self._tasks.get(task_id)
        if task is None or (task.owner_id != user_id and not await self._tasks.may_read(task_id, user_id)):
            raise ImError(NOT_FOUND, "no such file")
        if not task.finished:
            raise ImError(FILE_NOT_READY, "the file is not uploaded completely")
        return task

    # ---------- housekeeping ----------
    async def expire_uploads(self) -> list[str]:
        """Abandoned uploads (unfinished past IM_FILE_UPLOAD_TTL_SECONDS) become CANCELLED."""
        return await self._tasks.expire(self._now())

    async def _own_task(self, caller: Caller, task_id: str) -> FileTask:
        task = await self._task(task_id)
        if task.owner_id != caller.user_id:
            raise ImError(PERMISSION_DENIED, "this upload belongs to someone else")
        return task

    async def _task(self, task_id: str) -> FileTask:
        task = await self._tasks.get(check_task_id(task_id))
        if task is None:
            raise ImError(NOT_FOUND, "no such file task")
        return task

    def _now(self) -> int:
        return int(self._clock.now())

    def _expiry(self) -> int:
        return int(self._clock.now() + self._ttl)
