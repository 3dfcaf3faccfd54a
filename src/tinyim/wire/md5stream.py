"""An MD5 that follows a byte stream as it arrives, on a worker thread of its own.

Transfers hash the bytes they have just received (from the buffer they received them into), so the
whole-file MD5 is ready when the last byte lands, with no second read of the file and on another core
than the event loop (OpenSSL's MD5 releases the GIL). Jobs run one at a time, in the order fed: a
resumed transfer feeds the prefix already on disk first (`feed_file`), then the new bytes.

The caller must not change a buffer it fed until the future `feed` returned is done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import mmap
import os
from typing import Any

FILE_STEP = 8 * 1024 * 1024


class StreamMd5:
    def __init__(self, state: Any = None, done: int = 0) -> None:
        self._md5 = state if state is not None else hashlib.md5()
        self.fed = done  # bytes fed so far (hashed once the last job is done)
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="md5")
        self._last: concurrent.futures.Future[None] | None = None
        self._failed: BaseException | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> concurrent.futures.Future[None]:
        """Hash `data` after everything fed before; the returned future is done when it is hashed."""
        self.fed += len(data)
        return self._submit(self._md5.update, data)

    def feed_file(self, fd: int, start: int, end: int) -> concurrent.futures.Future[None]:
        """Hash bytes [start, end) of an open file (a resumed transfer's prefix)."""
        self.fed += end - start
        return self._submit(self._hash_file, fd, start, end)

    def feed_path(
        self, path: str | os.PathLike[str], start: int, end: int
    ) -> concurrent.futures.Future[None]:
        """Hash bytes [start, end) of a file by name (opened and closed by the job)."""
        self.fed += end - start

        def job() -> None:
            fd = os.open(path, os.O_RDONLY)
            try:
                self._hash_file(fd, start, end)
            finally:
                os.close(fd)

        return self._submit(job)

    def _hash_file(self, fd: int, start: int, end: int) -> None:
        at = start
        while at < end:
            data = os.pread(fd, min(FILE_STEP, end - at), at)
            if not data:
                raise OSError(f"the file ends at byte {at}, before {end}")
            self._md5.update(data)
            at += len(data)

    def _submit(self, fn: Any, *args: Any) -> concurrent.futures.Future[None]:
        def job() -> None:
            if self._failed is None:  # after a failure the state is wrong: hash nothing more
                try:
                    fn(*args)
                except BaseException as exc:
                    self._failed = exc
                    raise

        self._last = self._worker.submit(job)
        return self._last

    async def drain(self) -> None:
        """Wait until everything fed is hashed, even if cancelled meanwhile (the cancellation is raised
        after: a caller may then close the file the jobs read). Raises the first job's error."""
        last = self._last
        if last is not None and not last.done():
            waiting = asyncio.wrap_future(last)
            cancelled = False
            while not waiting.done():
                try:
                    await asyncio.shield(waiting)
                except asyncio.CancelledError:
                    cancelled = True
                except Exception:
                    break
            if cancelled:
                raise asyncio.CancelledError
        if self._failed is not None:
            raise OSError(f"hashing failed: {self._failed}") from self._failed

    async def hexdigest(self) -> str:
        await self.drain()
        return str(self._md5.hexdigest())

    async def state(self) -> Any:
        """A copy of the MD5 state after all bytes fed (to continue it later)."""
        await self.drain()
        return self._md5.copy()

    def close(self) -> None:
        self._worker.shutdown(wait=False)


class HashedBuffers:
    """A few reused receive buffers in turn: bytes are received into `space()`, the ones kept (written
    to the file) are announced with `keep(n)`, and each full buffer is fed to the MD5 while the next
    one fills. `space()` waits only when every buffer is still being hashed."""

    def __init__(self, md5: StreamMd5, size: int = 2 * 1024 * 1024, count: int = 3) -> None:
        self.md5 = md5
        self._size = size
        # Page-aligned (anonymous mmap): a bytearray's bytes start 16 bytes past a page boundary, and the
        # kernel's copy from a socket into such a buffer measured about half as fast (G5's readers).
        self._buffers = [memoryview(mmap.mmap(-1, size)) for _ in range(count)]
        self._busy: list[concurrent.futures.Future[None] | None] = [None] * count
        self._current = 0
        self._fill = 0  # bytes of the current buffer kept
        self._fed = 0  # bytes of the current buffer fed to the MD5

    async def space(self) -> memoryview:
        if self._fill == self._size:
            self._current = (self._current + 1) % len(self._buffers)
            self._fill = self._fed = 0
        busy = self._busy[self._current]
        if busy is not None and not busy.done():
            await asyncio.wrap_future(busy)
        return self._buffers[self._current][self._fill :]

    def last(self, n: int) -> memoryview:
        """The first n bytes of the last `space()` (what was just received)."""
        return self._buffers[self._current][self._fill : self._fill + n]

    def keep(self, n: int) -> None:
        """The first n bytes of the last `space()` are part of the stream (written where they go)."""
        self._fill += n
        if self._fill == self._size:
            self.flush()

    def flush(self) -> None:
        """Feed what the current buffer holds beyond what was fed (before feeding the MD5 elsewhere)."""
        if self._fed < self._fill:
            self._busy[self._current] = self.md5.feed(self._buffers[self._current][self._fed : self._fill])
            self._fed = self._fill
