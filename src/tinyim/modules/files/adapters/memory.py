"""In-memory file tasks (unit tests, and the contract suite's reference)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tinyim.modules.files.domain import FileStatus, FileTask


class InMemoryFileTasks:
    def __init__(self) -> None:
        self.tasks: dict[str, FileTask] = {}
        self.grants: set[tuple[str, int]] = set()

    async def add(self, task: FileTask) -> None:
        if task.task_id in self.tasks:
            raise KeyError(f"task {task.task_id} exists")
        self.tasks[task.task_id] = task

    async def get(self, task_id: str) -> FileTask | None:
        return self.tasks.get(task_id)

    async def find_finished(self, size: int, md5: str) -> FileTask | None:
        for task in self.tasks.values():
            if task.finished and task.size == size and task.md5 == md5:
                return task
        return None

    async def find_uploading(self, owner_id: int, size: int, md5: str, now: int) -> FileTask | None:
        for task in self.tasks.values():
            key = (task.owner_id, task.size, task.md5, task.status)
            if key == (owner_id, size, md5, FileStatus.UPLOADING) and task.expires_at >= now:
                return task
        return None

    async def save(self, task: FileTask) -> None:
        if task.task_id in self.tasks:
            self.tasks[task.task_id] = task

    async def grant(self, task_id: str, user_ids: Sequence[int]) -> None:
        self.grants.update((task_id, u) for u in user_ids)

    async def may_read(self, task_id: str, user_id: int) -> bool:
        return (task_id, user_id) in self.grants

    async def expire(self, now: int) -> list[str]:
        ids = [
            t.task_id for t in self.tasks.values() if t.status is FileStatus.UPLOADING and t.expires_at < now
        ]
        for task_id in ids:
            self.tasks[task_id] = self.tasks[task_id].with_status(FileStatus.CANCELLED)
        return ids


class InMemoryTransferSlots:
    """Transfer leases of one process (the default without Redis: the cap holds per gateway)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[int, dict[str, float]] = {}  # user -> slot -> expiry

    def _live(self, user_id: int) -> dict[str, float]:
        now = self._clock()
        leases = {s: t for s, t in self._leases.get(user_id, {}).items() if t > now}
        self._leases[user_id] = leases
        return leases

    async def acquire(self, user_id: int, slot: str, limit: int, ttl: float) -> bool:
        leases = self._live(user_id)
        if slot not in leases and len(leases) >= limit:
            return False
        leases[slot] = self._clock() + ttl
        return True

    async def renew(self, user_id: int, slot: str, ttl: float) -> None:
        leases = self._live(user_id)
        if slot in leases:
            leases[slot] = self._clock() + ttl

    async def release(self, user_id: int, slot: str) -> None:
        leases = self._live(user_id)
        leases.pop(slot, None)
        if not leases:
            del self._leases[user_id]
