"""The stall watchdog reports a callback that blocks the event loop, with that callback's stack."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from unittest.mock import ANY

from tinyim.infra.stall import StallWatchdog


def _blocking_callback() -> None:
    time.sleep(0.05)  # 50 ms with the loop stuck in this callback


async def test_a_blocking_callback_is_reported_with_its_stack(tmp_path: Path) -> None:
    watchdog = StallWatchdog(threshold_ms=10)
    watchdog.start()
    try:
        await asyncio.sleep(0.02)  # a few quiet ticks
        asyncio.get_running_loop().call_soon(_blocking_callback)
        await asyncio.sleep(0.03)
    finally:
        watchdog.stop()
    # (a busy machine may add a short stall of its own: the longest one is the callback's)
    stall = max(watchdog.stalls, key=lambda s: s.gap_ms)
    assert 40 <= stall.gap_ms < 500
    assert any("_blocking_callback" in frame for stack in stall.stacks for frame in stack)
    summary = watchdog.summary()
    histogram = summary["gaps_ms_histogram"]
    assert isinstance(histogram, dict)
    assert sum(n for bucket, n in histogram.items() if bucket in (">=20", ">=50", ">=100")) >= 1
    path = tmp_path / "report.json"
    watchdog.write(path, {"extra": 1})
    report = json.loads(path.read_text())
    assert report["stalls"] == len(watchdog.stalls) and report["extra"] == 1


async def test_a_quiet_loop_reports_nothing() -> None:
    watchdog = StallWatchdog(threshold_ms=200)
    watchdog.start()
    try:
        await asyncio.sleep(0.05)
    finally:
        watchdog.stop()
    assert watchdog.stalls == []
    assert watchdog.ticks > 10


async def test_garbage_collections_are_counted() -> None:
    import gc

    watchdog = StallWatchdog(threshold_ms=20)
    watchdog.start()
    try:
        gc.collect()
    finally:
        watchdog.stop()
    collections = watchdog.summary()["gc"]
    assert isinstance(collections, dict)
    assert collections["gen2"] == {"collections": 1, "ms": ANY, "max_ms": ANY}
