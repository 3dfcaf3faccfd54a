"""Snowflake message ids: 41 bits of milliseconds since EPOCH_MS, 10 bits worker id, 12 bits sequence.

Strictly increasing within a process (even if the wall clock steps back) and unique across processes as
long as every process writing messages has its own worker id.
"""

from __future__ import annotations

import threading
import time

from tinyim.kernel import ID_EPOCH_MS as EPOCH_MS
from tinyim.kernel import ID_SEQUENCE_BITS as SEQUENCE_BITS
from tinyim.kernel import ID_WORKER_BITS as WORKER_BITS
from tinyim.kernel import id_time_ms

__all__ = ["EPOCH_MS", "MAX_WORKER", "SEQUENCE_BITS", "WORKER_BITS", "Snowflake", "id_time_ms"]

MAX_WORKER = (1 << WORKER_BITS) - 1
SEQUENCE_MASK = (1 << SEQUENCE_BITS) - 1


class Snowflake:
    def __init__(self, worker_id: int, clock_ms: object = None) -> None:
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be in 0..{MAX_WORKER}")
        self._worker = worker_id
        self._clock = clock_ms if callable(clock_ms) else (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._seq = 0

    def next_id(self) -> int:
        with self._lock:
            now = max(int(self._clock()), self._last_ms)  # never step back with the wall clock
            if now == self._last_ms:
                self._seq = (self._seq + 1) & SEQUENCE_MASK
                if self._seq == 0:  # 4096 ids in one ms: borrow the next millisecond
                    now += 1
            else:
                self._seq = 0
            self._last_ms = now
            return (
                ((now - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS))
                | (self._worker << SEQUENCE_BITS)
                | self._seq
            )
