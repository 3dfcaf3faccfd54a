"""Ports of the files module: the inbound FileApi and the outbound repository, blob store, tickets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tinyim.kernel import Caller
from tinyim.modules.files.domain import (
    DownloadTicket,
    FileStatus,
    FileTask,
    GatewayEndpoint,
    Ticket,
    UploadRequest,
    UploadTicket,
)


class FileApi(Protocol):
    """Inbound: what the chat gateway, the file gateways and the msg role ask of the file meta service."""

    async def apply_upload(self, caller: Caller, req: UploadRequest) -> UploadTicket:
        """New task (or, with task_id: answer the instant-upload proof challenge / a fresh resume ticket)."""
        ...

    async def apply_download(self, caller: Caller, task_id: str) -> DownloadTicket:
        """A download ticket for a finished file the caller uploaded or was sent; NOT_FOUND otherwise."""
        ...

    async def get_task(self, task_id: str) -> FileTask: ...

    async def update_status(
        self, task_id: str, status: FileStatus, *, received: int = 0, blob_key: str = "", error: str = ""
    ) -> None:
        """The spec's UpdateFileStatus: progress (UPLOADING), done (FINISHED + blob_key), or FAILED."""
        ...

    async def share(self, sender_id: int, task_id: str, reader_ids: Sequence[int]) -> FileTask:
        """A message naming the file goes to reader_ids: the sender must own it or have been sent it,
        and it must be finished. The readers may download it from then on."""
        ...


class FileTaskRepository(Protocol):
    async def add(self, task: FileTask) -> None: ...
    async def get(self, task_id: str) -> FileTask | None: ...
    async def find_finished(self, size: int, md5: str) -> FileTask | None:
        """A finished task with these bytes (any owner), for instant uploads."""
        ...

    async def find_uploading(self, owner_id: int, size: int, md5: str, now: int) -> FileTask | None:
        """The owner's unexpired unfinished upload of these bytes (a restarted client resumes it)."""
        ...

    async def save(self, task: FileTask) -> None:
        """Write status, received, blob_key, expires_at, challenge and error of an existing task."""
        ...

    async def grant(self, task_id: str, user_ids: Sequence[int]) -> None:
        """Let these users download the task's file (idempotent)."""
        ...

    async def may_read(self, task_id: str, user_id: int) -> bool:
        """Whether the file was granted to the user (the owner is checked by the service)."""
        ...

    async def expire(self, now: int) -> list[str]:
        """Mark uploads unfinished past their expires_at CANCELLED; their task ids."""
        ...


class BlobStore(Protocol):
    """Finished files by content address, and partial uploads by task id (both on this host's disk)."""

    def blob_path(self, key: str) -> Path: ...
    def has(self, key: str) -> bool: ...
    def publish(self, partial: Path, key: str) -> None:
        """Move a verified partial file to its content address (keeps an existing identical blob)."""
        ...

    def read_range(self, key: str, offset: int, length: int) -> bytes: ...
    def partial_path(self, task_id: str) -> Path: ...
    def sweep_partials(self, older_than: float) -> list[str]:
        """Delete partial files untouched since `older_than` (epoch seconds) and not being written."""
        ...


class TicketCodec(Protocol):
    def issue(self, ticket: Ticket) -> str: ...
    def read(self, token: str) -> Ticket:
        """The ticket a token carries; raises ImError(UNAUTHENTICATED) when forged or expired."""
        ...


class GatewayLocator(Protocol):
    """Which file gateway serves a task (consistent hash of task_id over the live file gateways)."""

    async def locate(self, task_id: str) -> GatewayEndpoint | None: ...


class Clock(Protocol):
    def now(self) -> float: ...


class Randomness(Protocol):
    def task_id(self) -> str: ...
    def seed(self) -> int: ...


class TransferSlots(Protocol):
    """Leases on a user's concurrent transfers, counted across every file gateway sharing the store.
    A lease expires unless renewed, so a gateway killed mid-transfer frees its slots by itself."""

    async def acquire(self, user_id: int, slot: str, limit: int, ttl: float) -> bool:
        """Take `slot` for `ttl` seconds if the user holds fewer than `limit` live ones."""
        ...

    async def renew(self, user_id: int, slot: str, ttl: float) -> None: ...
    async def release(self, user_id: int, slot: str) -> None: ...
