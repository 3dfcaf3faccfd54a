"""Files on this host's disk under IM_DATA_DIR/files, shared by the file gateways (and file meta) of the host.

- finished files by content address: `blobs/<md5[:2]>/<md5>-<size>` (the key is checked to be hex + digits);
- partial uploads by task id: `partial/<task id>.part` (32 hex digits, server-made).
No path is ever built from a string a client chose (file names are display text only).
A partial file that is being written is held under an exclusive `flock`; the sweeper skips those.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from tinyim.modules.files.domain import check_task_id, parse_blob_key


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._blobs = self.root / "blobs"
        self._partial = self.root / "partial"

    def blob_path(self, key: str) -> Path:
        md5, size = parse_blob_key(key)
        return self._blobs / md5[:2] / f"{md5}-{size}"

    def has(self, key: str) -> bool:
        try:
            path = self.blob_path(key)
        except ValueError:
            return False
        return path.is_file() and path.stat().st_size == parse_blob_key(key)[1]

    def publish(self, partial: Path, key: str) -> None:
        target = self.blob_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.has(key):
            partial.unlink(missing_ok=True)  # identical bytes are stored once
            return
        os.replace(partial, target)
        _fsync_dir(target.parent)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with open(self.blob_path(key), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def partial_path(self, task_id: str) -> Path:
        self._partial.mkdir(parents=True, exist_ok=True)
        return self._partial / f"{check_task_id(task_id)}.part"

    def sweep_partials(self, older_than: float) -> list[str]:
        swept: list[str] = []
        if not self._partial.is_dir():
            return swept
        for path in self._partial.glob("*.part"):
            try:
                if path.stat().st_mtime >= older_than:
                    continue
                with open(path, "rb+") as f:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # being written right now
                    path.unlink()
                swept.append(path.stem)
            except FileNotFoundError:
                continue
        return swept


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
