"""Where a device keeps its `local_max_seq` between runs, so a restart syncs only what is new."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol


class SeqStore(Protocol):
    def load(self, user_id: int, device_id: str) -> int: ...
    def save(self, user_id: int, device_id: str, seq: int) -> None: ...


class MemorySeqStore:
    def __init__(self) -> None:
        self.values: dict[tuple[int, str], int] = {}

    def load(self, user_id: int, device_id: str) -> int:
        return self.values.get((user_id, device_id), 0)

    def save(self, user_id: int, device_id: str, seq: int) -> None:
        self.values[(user_id, device_id)] = seq


class FileSeqStore:
    """One small JSON file per (user, device), replaced atomically."""

    def __init__(self, directory: str | Path) -> None:
        self._dir = Path(directory)

    def _path(self, user_id: int, device_id: str) -> Path:
        return self._dir / f"seq-{user_id}-{device_id}.json"

    def load(self, user_id: int, device_id: str) -> int:
        try:
            return int(json.loads(self._path(user_id, device_id).read_text())["local_max_seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def save(self, user_id: int, device_id: str, seq: int) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(user_id, device_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"local_max_seq": seq}))
        os.replace(tmp, path)
