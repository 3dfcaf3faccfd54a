"""File tasks, names, content addresses, tickets and the offset arithmetic of resumable transfers (no I/O)."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Final

from tinyim.kernel import INVALID_ARGUMENT, ImError

# Error codes of the files module (strings, like the kernel's; the edges map them to ErrorCode 30-49).
FILE_NOT_READY: Final = "file_not_ready"
FILE_CORRUPT: Final = "file_corrupt"
FILE_TOO_LARGE: Final = "file_too_large"
FILE_OFFSET: Final = "file_offset"
FILE_BUSY: Final = "file_busy"
FILE_TOO_MANY: Final = "file_too_many_transfers"
FILE_DISK_FULL: Final = "file_disk_full"
FILE_EXPIRED: Final = "file_expired"

MAX_NAME_CHARS: Final = 255
PROOF_BYTES: Final = 64 * 1024  # the byte range an instant upload must prove it holds
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_TASK_ID = re.compile(r"^[0-9a-f]{32}$")


class FileStatus(enum.IntEnum):
    UPLOADING = 0
    FINISHED = 1
    CANCELLED = 2  # expired (abandoned) or cancelled: partial data deleted
    FAILED = 3  # the bytes did not match size / MD5; never published

    @property
    def label(self) -> str:
        return {0: "uploading", 1: "finished", 2: "failed", 3: "failed"}[int(self)]


@dataclass(frozen=True, slots=True)
class FileTask:
    task_id: str
    owner_id: int
    file_name: str
    size: int
    md5: str
    status: FileStatus = FileStatus.UPLOADING
    received: int = 0  # bytes the gateway reported (progress; the gateway's disk is the truth)
    blob_key: str = ""  # content address of the finished bytes
    expires_at: int = 0  # epoch seconds: an upload still unfinished then is abandoned
    proof_offset: int = 0  # instant-upload challenge (proof_length 0 = none)
    proof_length: int = 0
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.status is FileStatus.FINISHED

    def with_status(self, status: FileStatus, **changes: Any) -> FileTask:
        return replace(self, status=status, **changes)


@dataclass(frozen=True, slots=True)
class UploadRequest:
    file_name: str
    size: int
    md5: str
    task_id: str = ""  # set: answer a proof challenge, or ask for a fresh ticket to resume
    proof: str = ""


@dataclass(frozen=True, slots=True)
class GatewayEndpoint:
    """The file gateway of a task: TCP (host, port) and its HTTP base URL for browsers."""

    host: str
    port: int
    http_url: str


@dataclass(frozen=True, slots=True)
class UploadTicket:
    task_id: str
    is_instant: bool
    gateway: GatewayEndpoint | None
    token: str
    offset: int
    chunk_size: int
    proof_required: bool = False
    proof_offset: int = 0
    proof_length: int = 0


@dataclass(frozen=True, slots=True)
class DownloadTicket:
    task: FileTask
    gateway: GatewayEndpoint | None
    token: str


class TicketKind(enum.StrEnum):
    UPLOAD = "up"
    DOWNLOAD = "down"


@dataclass(frozen=True, slots=True)
class Ticket:
    """What an upload or download token grants: one user, one task, one direction, until expires_at."""

    kind: TicketKind
    task_id: str
    user_id: int
    expires_at: int


def check_task_id(task_id: str) -> str:
    """Task ids are 32 lower-case hex digits (server-made); anything else is refused before any lookup."""
    if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
        raise ImError(INVALID_ARGUMENT, "task_id must be 32 hex digits")
    return task_id


def check_md5(md5: str) -> str:
    md5 = md5.strip().lower()
    if not _MD5.match(md5):
        raise ImError(INVALID_ARGUMENT, "md5 must be 32 hex digits")
    return md5


def clean_name(name: str) -> str:
    """The name shown to people: its last path component, no control characters, at most 255 chars.

    It is only ever displayed (and sent back in Content-Disposition); no path is built from it.
    """
    if not isinstance(name, str):
        raise ImError(INVALID_ARGUMENT, "file_name must be a string")
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf", "Cs")).strip()
    if base in ("", ".", ".."):
        base = "file"
    return base[:MAX_NAME_CHARS]


def check_size(size: int, max_bytes: int) -> int:
    if size <= 0:
        raise ImError(INVALID_ARGUMENT, "file_size must be at least 1 byte")
    if size > max_bytes:
        raise ImError(FILE_TOO_LARGE, f"files are limited to {max_bytes} bytes")
    return size


def blob_key(md5: str, size: int) -> str:
    """The content address of verified bytes: MD5 and size (both checked on every byte received)."""
    return f"{check_md5(md5)}-{size}"


def parse_blob_key(key: str) -> tuple[str, int]:
    md5, _, size = key.partition("-")
    if not _MD5.match(md5) or not size.isdigit():
        raise ValueError(f"not a blob key: {key!r}")
    return md5, int(size)


# ---------- offsets: resumable transfers ----------
def proof_range(size: int, seed: int) -> tuple[int, int]:
    """The byte range [offset, offset + length) an instant upload must prove, picked from `seed`."""
    length = min(size, PROOF_BYTES)
    span = size - length
    return (seed % (span + 1) if span else 0), length


def resume_offset(held: int, size: int) -> int:
    """Where a resumed upload continues: the bytes on disk, never past the file's end."""
    return max(0, min(held, size))


def accept_data(held: int, at: int, length: int, size: int) -> int:
    """Bytes held after writing `length` bytes at offset `at`; raises unless `at` is exactly `held`.

    The gateway appends only: data must start where it stopped, and may not run past the size.
    """
    if at != held:
        raise ImError(FILE_OFFSET, f"the gateway holds {held} bytes; data for offset {at} refused")
    if length < 0 or held + length > size:
        raise ImError(FILE_TOO_LARGE, f"data past the file size {size}")
    return held + length


def chunks(start: int, size: int, chunk: int) -> list[tuple[int, int]]:
    """(offset, length) of the data frames that send bytes [start, size) in frames of at most `chunk`."""
    return [(at, min(chunk, size - at)) for at in range(start, size, chunk)]


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range as (start, end inclusive); None = whole file.

    Raises ValueError for a range that cannot be satisfied (HTTP 416).
    """
    header = header.strip()
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # unknown unit or several ranges: the whole file (allowed by RFC 9110)
    first, _, last = spec.strip().partition("-")
    if not first.strip():
        if not last.strip().isdigit() or int(last) == 0:
            raise ValueError("unsatisfiable range")
        return max(0, size - int(last)), size - 1
    if not first.strip().isdigit() or (last.strip() and not last.strip().isdigit()):
        return None
    start = int(first)
    end = min(int(last), size - 1) if last.strip() else size - 1
    if start >= size or end < start:
        raise ValueError("unsatisfiable range")
    return start, end


class TokenBucket:
    """Bandwidth limit: `rate` bytes per second with a burst of `burst` bytes. Pure arithmetic on a clock
    the caller passes in: `delay(n, now)` takes n bytes and says how long to wait before moving them."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = now

    def delay(self, n: int, now: float) -> float:
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
