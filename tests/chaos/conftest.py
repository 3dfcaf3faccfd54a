"""Chaos tests: a hostile client against a real `tinyim run`, one test per finding of the outside probe."""

from __future__ import annotations

from pathlib import Path


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
