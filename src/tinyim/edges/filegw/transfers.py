"""What the file gateway's TCP and HTTP sides share: upload sessions on the partial file, downloads,
per-user transfer caps, bandwidth limits, verification and publication of finished files.

An upload session holds the task's partial file under an exclusive flock (so two gateways of a host,
or two connections of one, never write the same task at once). Bytes go from the socket into a reused
buffer, from there to the file with `os.pwrite` at the held offset, and the same buffer is fed to an MD5
on a worker thread (another core; no second read of the file). A resumed upload continues the MD5 state
this process kept, or hashes the bytes already on disk once. The disk is flushed in the background as
the file grows, so the fsync before publishing has little left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyim.kernel import INVALID_ARGUMENT, UNAUTHENTICATED, ImError
from tinyim.modules.files import (
    FILE_BUSY,
    FILE_CORRUPT,
    FILE_DISK_FULL,
    FILE_EXPIRED,
    FILE_NOT_READY,
    FILE_TOO_MANY,
    BlobStore,
    FileApi,
    FileStatus,
    FileTask,
    Ticket,
    TicketCodec,
    TicketKind,
    TokenBucket,
    TransferSlots,
    accept_data,
    blob_key,
    check_task_id,
)
from tinyim.wire.md5stream import HashedBuffers, StreamMd5

log = logging.getLogger(__name__)

TAKEOVER_SECONDS = 5.0
# Bytes go from the socket into one of a few buffers, then to the file; a full buffer is hashed on the
# MD5 thread while the next one fills.
RECEIVE_BUFFER = 2 * 1024 * 1024
RECEIVE_BUFFERS = 3
WRITEBACK_STEP = 64 * 1024 * 1024  # start writing to the disk after this many new bytes
SLOT_LEASE_SECONDS = 30.0  # a transfer slot's lease, renewed every third of it while the transfer lives


@dataclass(frozen=True, slots=True)
class FileLimits:
    chunk_size: int = 4 * 1024 * 1024
    rate_bytes_per_second: int = 0  # 0 = unlimited
    max_transfers_per_user: int = 4
    upload_ttl_seconds: float = 24 * 3600.0


class RateLimit:
    """Per-connection bandwidth: how many bytes to move next and how long to wait after moving them."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._bucket = TokenBucket(rate, max(rate / 20, 4096), time.monotonic()) if rate else None

    def step(self, wanted: int) -> int:
        """At most this many bytes at once (a tenth of a second's worth when limited)."""
        return wanted if self._bucket is None else max(1, min(wanted, max(self.rate // 20, 4096)))

    async def moved(self, n: int) -> None:
        if self._bucket is not None:
            delay = self._bucket.delay(n, time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)


class UploadSession:
    """One connection's hold on a task's partial file: bytes are appended with `os.pwrite` as they
    arrive and fed to a `StreamMd5` from the buffer they arrived in (TCP: `space` / `commit`, a few
    reused buffers; HTTP: `write`)."""

    def __init__(self, gateway: FileGateway, task: FileTask, user_id: int, fd: int, path: Path) -> None:
        self._gw = gateway
        self.task = task
        self.user_id = user_id
        self._fd = fd
        self.path = path
        self.held = os.fstat(fd).st_size
        done, state = gateway._hashes.pop(task.task_id, (0, None))
        if state is None or done > self.held:
            done, state = 0, None
        self._md5 = StreamMd5(state, done)
        if done < self.held:  # a resume whose hash state this process lost: hash the prefix once
            self._md5.feed_file(fd, done, self.held)
        self._ring = HashedBuffers(self._md5, RECEIVE_BUFFER, RECEIVE_BUFFERS)
        self._synced_at = self.held
        self._sync: asyncio.Future[None] | None = None
        self.owner: asyncio.Task[Any] | None = asyncio.current_task()
        self.released = asyncio.Event()
        self._reported = time.monotonic()

    @property
    def size(self) -> int:
        return self.task.size

    @property
    def complete(self) -> bool:
        return self.held >= self.task.size

    def check(self, offset: int, length: int) -> None:
        accept_data(self.held, offset, length, self.task.size)

    # ---------- TCP: receive straight into the session's buffers ----------
    async def space(self) -> memoryview:
        """Where to receive the next bytes (then `commit` how many came)."""
        return await self._ring.space()

    def commit(self, n: int) -> None:
        """`n` bytes arrived at the start of `space()`: append them to the file (and hash them)."""
        accept_data(self.held, self.held, n, self.task.size)
        self._append(self._ring.last(n), self._ring.keep)

    # ---------- HTTP (and tests): bytes someone else owns ----------
    def write(self, data: memoryview | bytes) -> None:
        """Append to the partial file. A full disk keeps what was written (held says how much)."""
        accept_data(self.held, self.held, len(data), self.task.size)
        self._ring.flush()  # keep the MD5 in stream order
        view = memoryview(data)
        written = [0]

        def wrote(k: int) -> None:
            written[0] += k

        try:
            self._append(view, wrote)
        finally:
            if written[0]:
                whole = written[0] == len(view) and isinstance(data, bytes)
                self._md5.feed(data if whole else bytes(view[: written[0]]))

    def _append(self, view: memoryview, wrote: Callable[[int], None]) -> None:
        while view:
            try:
                n = os.pwrite(self._fd, view, self.held)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise ImError(
                        FILE_DISK_FULL,
                        f"the file gateway's disk is full; {self.held} bytes are kept, resume later",
                    ) from None
                raise
            self.held += n
            wrote(n)
            view = view[n:]
        if self.held - self._synced_at >= WRITEBACK_STEP and (self._sync is None or self._sync.done()):
            # start the disk writing early (one flush at a time, off the loop), so that the fsync
            # before publishing has little left to wait for
            self._synced_at = self.held
            self._sync = asyncio.get_running_loop().run_in_executor(None, os.fdatasync, self._fd)

    async def report_progress(self, every: float) -> None:
        if time.monotonic() - self._reported >= every:
            self._reported = time.monotonic()
            try:
                await self._gw.files.update_status(
                    self.task.task_id, FileStatus.UPLOADING, received=self.held
                )
            except ImError:
                raise
            except Exception:
                log.warning("progress report failed", exc_info=True)

    async def finish(self) -> FileTask:
        """Verify size and MD5, publish under the content address and mark the task finished."""
        if self.held != self.task.size:
            raise ImError(FILE_NOT_READY, f"{self.held} of {self.task.size} bytes received")
        self._ring.flush()
        md5 = await self._md5.hexdigest()
        if md5 != self.task.md5:
            await self._gw.files.update_status(
                self.task.task_id, FileStatus.FAILED, error=f"MD5 {md5} does not match {self.task.md5}"
            )
            self._gw.discard(self)
            raise ImError(FILE_CORRUPT, f"the received bytes have MD5 {md5}, not {self.task.md5}; refused")
        await self._settle_sync()
        await asyncio.to_thread(os.fsync, self._fd)
        key = blob_key(md5, self.task.size)
        await asyncio.to_thread(self._gw.blobs.publish, self.path, key)
        await self._gw.files.update_status(self.task.task_id, FileStatus.FINISHED, blob_key=key)
        self.task = self.task.with_status(FileStatus.FINISHED, blob_key=key, received=self.task.size)
        return self.task

    async def _settle_sync(self) -> None:
        """Wait for the writeback in flight (it uses the file descriptor), even when cancelled."""
        sync, cancelled = self._sync, False
        while sync is not None and not sync.done():
            try:
                await asyncio.shield(sync)
            except asyncio.CancelledError:
                cancelled = True
            except OSError:
                break
        if sync is not None and sync.done() and not sync.cancelled():
            sync.exception()  # retrieved: a failed early flush is retried by the fsync before publishing
        if cancelled:
            raise asyncio.CancelledError

    async def close(self) -> None:
        try:
            self._ring.flush()
            try:
                await self._md5.drain()
                if not self.task.finished and self.held and self.path.exists():
                    self._gw.remember_hash(self.task.task_id, self.held, await self._md5.state())
            finally:
                await self._settle_sync()
        except OSError:
            log.warning("hashing of an upload failed; its next session hashes the file again", exc_info=True)
        finally:
            self._md5.close()
            os.close(self._fd)  # releases the flock


class FileGateway:
    def __init__(
        self, files: FileApi, blobs: BlobStore, tickets: TicketCodec, limits: FileLimits,
        slots: TransferSlots,
    ) -> None:  # fmt: skip
        self.files = files
        self.blobs = blobs
        self.tickets = tickets
        self.limits = limits
        # the per-user cap: leases in Redis when gateways share it, else this process's own
        self.slots = slots
        self._active: dict[str, UploadSession] = {}
        self._hashes: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self.transfers = 0  # live transfers: the load this gateway announces

    def ticket(self, token: str, kind: TicketKind, task_id: str = "") -> Ticket:
        ticket = self.tickets.read(token)
        if ticket.kind is not kind or (task_id and ticket.task_id != task_id):
            raise ImError(UNAUTHENTICATED, f"this token is not a {kind.name.lower()} token for this file")
        check_task_id(ticket.task_id)
        return ticket

    def rate(self) -> RateLimit:
        return RateLimit(self.limits.rate_bytes_per_second)

    @contextlib.asynccontextmanager
    async def transfer_slot(self, user_id: int) -> AsyncIterator[None]:
        slot = uuid.uuid4().hex
        limit = self.limits.max_transfers_per_user
        if not await self.slots.acquire(user_id, slot, limit, SLOT_LEASE_SECONDS):
            raise ImError(FILE_TOO_MANY, f"at most {limit} transfers at once per user; retry later")
        self.transfers += 1
        renewer = asyncio.create_task(self._renew(user_id, slot))
        try:
            yield
        finally:
            self.transfers -= 1
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self.slots.release(user_id, slot)
            except Exception:  # the lease expires by itself
                log.warning("releasing a transfer slot failed", exc_info=True)

    async def _renew(self, user_id: int, slot: str) -> None:
        while True:
            await asyncio.sleep(SLOT_LEASE_SECONDS / 3)
            try:
                await self.slots.renew(user_id, slot, SLOT_LEASE_SECONDS)
            except Exception:  # a store hiccup: the next renewal may still come in time
                log.warning("renewing a transfer slot failed", exc_info=True)

    @contextlib.asynccontextmanager
    async def upload(self, ticket: Ticket) -> AsyncIterator[UploadSession]:
        """The task's upload session: its partial file locked for this connection until the block ends.

        Another connection of this process holding the task is cut (the client reconnected after a
        drop the gateway has not noticed yet); one of another process makes this one FILE_BUSY.
        """
        task = await self._uploadable(ticket)
        old = self._active.get(task.task_id)
        if old is not None and old.owner is not None and old.owner is not asyncio.current_task():
            old.owner.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(old.released.wait(), TAKEOVER_SECONDS)
        async with self.transfer_slot(ticket.user_id):
            path = self.blobs.partial_path(task.task_id)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ImError(FILE_BUSY, "another connection is uploading this file; retry shortly") from None
            session = UploadSession(self, task, ticket.user_id, fd, path)
            self._active[task.task_id] = session
            try:
                yield session
            finally:
                if self._active.get(task.task_id) is session:
                    del self._active[task.task_id]
                await session.close()
                session.released.set()
                if not session.task.finished and task.status is FileStatus.UPLOADING:
                    with contextlib.suppress(Exception):
                        await self.files.update_status(
                            task.task_id, FileStatus.UPLOADING, received=session.held
                        )

    async def _uploadable(self, ticket: Ticket) -> FileTask:
        task = await self.files.get_task(ticket.task_id)
        if task.owner_id != ticket.user_id:
            raise ImError(UNAUTHENTICATED, "this upload token is not for this task")
        if task.status is FileStatus.CANCELLED:
            raise ImError(FILE_EXPIRED, "this upload was abandoned and expired; start a new one")
        if task.status is FileStatus.FAILED:
            raise ImError(FILE_CORRUPT, f"this upload failed: {task.error}")
        return task

    async def upload_state(self, ticket: Ticket) -> tuple[FileTask, int]:
        """The task and the bytes held for it (without taking the upload)."""
        task = await self._uploadable(ticket)
        if task.finished:
            return task, task.size
        path = self.blobs.partial_path(task.task_id)
        return task, path.stat().st_size if path.exists() else 0

    def remember_hash(self, task_id: str, done: int, state: Any) -> None:
        self._hashes[task_id] = (done, state)
        while len(self._hashes) > 256:
            self._hashes.popitem(last=False)

    def discard(self, session: UploadSession) -> None:
        session.path.unlink(missing_ok=True)
        self._hashes.pop(session.task.task_id, None)

    async def downloadable(self, ticket: Ticket) -> tuple[FileTask, Path]:
        task = await self.files.get_task(ticket.task_id)
        if not task.finished:
            raise ImError(FILE_NOT_READY, "the file is not uploaded completely")
        path = self.blobs.blob_path(task.blob_key)
        if not path.is_file():
            raise ImError(FILE_NOT_READY, "the file's bytes are not on this host")
        return task, path

    def sweep(self) -> list[str]:
        return self.blobs.sweep_partials(time.time() - self.limits.upload_ttl_seconds)


def check_offset(offset: int, size: int) -> int:
    if not 0 <= offset <= size:
        raise ImError(INVALID_ARGUMENT, f"offset {offset} is outside the file (0..{size})")
    return offset
