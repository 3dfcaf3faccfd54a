"""Event-loop stall watchdog (a debugging aid, off by default: IM_DEBUG_STALL_MS).

The loop touches a timestamp every `tick_ms` (a `call_later` chain). A daemon thread checks it; when the
last touch is older than the threshold, the loop is stuck in one turn (a long callback, or many ready
callbacks in a row, or the process is not being scheduled), and the thread samples the loop thread's
Python stack every `sample_ms` until the loop touches again. Each stall records how long it lasted (the
gap between two touches, from the loop side: exact), the loop thread's CPU time and run-queue wait during
the sampled part (from /proc: CPU ≈ wall means Python work; run-queue wait means the OS ran something
else), and the distinct stacks (file:line:function, innermost `depth` frames) with their sample counts.

`summary()` aggregates: the gaps' histogram, the stacks by stalled time (samples x sample interval), the
frames by inclusive time (a frame counted once per sample it appears in: finds the common caller), and
the longest stalls with their main stack. `write()` puts it, and any extra
figures, in a JSON file on shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

Stack = tuple[str, ...]


@dataclass
class Stall:
    gap_ms: float  # the loop's own gap between two touches (minus one tick)
    sampled_ms: float  # how long the thread sampled it (from detection to the next touch)
    cpu_ms: float  # the loop thread's CPU time during the sampled part
    runqueue_ms: float  # the loop thread's wait for a CPU during the sampled part (/proc schedstat)
    stacks: Counter[Stack] = field(default_factory=Counter)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python"):
        i = path.rfind(marker)
        if i >= 0:
            return path[i + len(marker) :]
    return path


def frame_stack(frame: FrameType | None, depth: int) -> Stack:
    """The innermost `depth` frames, innermost first, as file:line:function."""
    out: list[str] = []
    while frame is not None and len(out) < depth:
        code = frame.f_code
        out.append(f"{_short(code.co_filename)}:{frame.f_lineno}:{code.co_name}")
        frame = frame.f_back
    return tuple(out)


def _thread_cpu_ns(ident: int) -> int:
    try:
        return time.clock_gettime_ns(time.pthread_getcpuclockid(ident))
    except (OSError, AttributeError, ValueError):
        return 0


def _runqueue_ns(native_id: int) -> int:
    try:
        with open(f"/proc/self/task/{native_id}/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class StallWatchdog:
    def __init__(
        self, threshold_ms: float, tick_ms: float = 1.0, sample_ms: float = 1.0, depth: int = 10
    ) -> None:
        self.threshold = threshold_ms / 1000
        self.tick = tick_ms / 1000
        self.sample = sample_ms / 1000
        self.depth = depth
        self.stalls: list[Stall] = []
        self.gaps: Counter[int] = Counter()  # gap histogram: bucket (ms, rounded down to 1/2/5/10…) → count
        self.ticks = 0
        self._last = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ident = 0
        self._native = 0
        self._started = 0.0
        self._switch: float | None = None
        self._cpu0 = self._rq0 = 0
        # garbage collections while it runs: per generation, count, total and longest ms
        self.gc: dict[int, list[float]] = {}
        self._gc_started = 0.0

    # ---------- loop side ----------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Call from the loop's thread."""
        self._loop = loop or asyncio.get_running_loop()
        self._ident = threading.get_ident()
        self._native = threading.get_native_id()
        self._started = self._last = time.perf_counter()
        self._handle = self._loop.call_later(self.tick, self._touch)
        self._cpu0, self._rq0 = _thread_cpu_ns(self._ident), _runqueue_ns(self._native)
        # the sampler needs the GIL while the loop thread holds it: hand it over every ms, not every 5
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, self.sample))
        self._thread = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)
        self._thread.start()
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._gc_started) * 1000
        entry = self.gc.setdefault(info.get("generation", -1), [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += ms
        entry[2] = max(entry[2], ms)

    def _touch(self) -> None:
        now = time.perf_counter()
        gap = now - self._last - self.tick
        self._last = now
        self.ticks += 1
        if gap * 1000 >= 2:
            self.gaps[_bucket(gap * 1000)] += 1
        assert self._loop is not None
        self._handle = self._loop.call_later(self.tick, self._touch)

    def stop(self) -> None:
        self._stop.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self._switch is not None:
            sys.setswitchinterval(self._switch)

    # ---------- watchdog thread ----------
    def _watch(self) -> None:
        while not self._stop.wait(self.sample):
            last = self._last
            if time.perf_counter() - last < self.threshold:
                continue
            t0, cpu0, rq0 = time.perf_counter(), _thread_cpu_ns(self._ident), _runqueue_ns(self._native)
            stacks: Counter[Stack] = Counter()
            while self._last == last and not self._stop.is_set():
                frame = sys._current_frames().get(self._ident)
                stacks[frame_stack(frame, self.depth)] += 1
                del frame
                time.sleep(self.sample)
            t1, cpu1, rq1 = time.perf_counter(), _thread_cpu_ns(self._ident), _runqueue_ns(self._native)
            gap = (self._last - last - self.tick) if self._last != last else (t1 - last)
            self.stalls.append(
                Stall(gap * 1000, (t1 - t0) * 1000, (cpu1 - cpu0) / 1e6, (rq1 - rq0) / 1e6, stacks)
            )

    # ---------- report ----------
    def summary(self, top: int = 15) -> dict[str, object]:
        by_stack: Counter[Stack] = Counter()
        by_frame: Counter[str] = Counter()
        for stall in self.stalls:
            for stack, n in stall.stacks.items():
                by_stack[stack] += n
                for frame in set(stack):
                    by_frame[frame] += n
        ms = self.sample * 1000
        longest = sorted(self.stalls, key=lambda s: s.gap_ms, reverse=True)[:top]
        return {
            "threshold_ms": self.threshold * 1000,
            "seconds": round(time.perf_counter() - self._started, 1),
            "ticks": self.ticks,
            # the whole run: the loop thread's CPU time and its wait for a CPU (others ran on it)
            "loop_thread_cpu_s": round((_thread_cpu_ns(self._ident) - self._cpu0) / 1e9, 2),
            "loop_thread_runqueue_s": round((_runqueue_ns(self._native) - self._rq0) / 1e9, 2),
            "gc": {
                f"gen{g}": {"collections": int(n), "ms": round(total, 1), "max_ms": round(top, 1)}
                for g, (n, total, top) in sorted(self.gc.items())
            },
            "gaps_ms_histogram": {f">={k}": v for k, v in sorted(self.gaps.items())},
            "stalls": len(self.stalls),
            "stalled_ms": round(sum(s.gap_ms for s in self.stalls), 1),
            "sampled_ms": round(sum(s.sampled_ms for s in self.stalls), 1),
            "cpu_ms": round(sum(s.cpu_ms for s in self.stalls), 1),
            "runqueue_ms": round(sum(s.runqueue_ms for s in self.stalls), 1),
            "stacks": [
                {"ms": round(n * ms, 1), "samples": n, "stack": list(stack)}
                for stack, n in by_stack.most_common(top)
            ],
            "frames_inclusive": [
                {"ms": round(n * ms, 1), "frame": frame} for frame, n in by_frame.most_common(3 * top)
            ],
            "longest": [
                {
                    "gap_ms": round(s.gap_ms, 1),
                    "cpu_ms": round(s.cpu_ms, 1),
                    "runqueue_ms": round(s.runqueue_ms, 1),
                    "sampled_ms": round(s.sampled_ms, 1),
                    "stacks": [{"samples": n, "stack": list(st)} for st, n in s.stacks.most_common(3)],
                }
                for s in longest
            ],
        }

    def write(self, path: Path, extra: dict[str, object] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.summary(), **(extra or {})}, indent=1) + "\n")


def histograms(prefix: str = "tinyim_") -> dict[str, dict[str, float]]:
    """This process's Prometheus histograms (cumulative bucket counts by upper bound, and the sum), for
    a stall report: e.g. how long the group commits took over the same run."""
    from prometheus_client import REGISTRY

    out: dict[str, dict[str, float]] = {}
    for family in REGISTRY.collect():
        if family.type != "histogram" or not family.name.startswith(prefix):
            continue
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
            key = f"{family.name}{{{labels}}}" if labels else family.name
            if sample.name.endswith("_bucket"):
                out.setdefault(key, {})[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_sum"):
                out.setdefault(key, {})["sum"] = round(sample.value, 3)
    return {k: v for k, v in out.items() if v.get("+Inf")}


def _bucket(ms: float) -> int:
    for edge in (100, 50, 20, 10, 5, 2):
        if ms >= edge:
            return edge
    return 0


def from_env_path(data_dir: Path, configured: str) -> Path:
    """Where the report goes: the configured path, else the data dir (one file per process)."""
    return Path(configured) if configured else data_dir / f"stall-report-{os.getpid()}.json"
