"""The wall clock and the secure random source the file service uses (fakes replace them in tests)."""

from __future__ import annotations

import secrets
import time


class SystemClock:
    def now(self) -> float:
        return time.time()


class SecureRandomness:
    def task_id(self) -> str:
        return secrets.token_hex(16)

    def seed(self) -> int:
        return secrets.randbits(63)
