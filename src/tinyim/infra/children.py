"""Child processes that are stopped for sure: the test helpers and `tinyim cluster` use these.

- `die_with_parent` (a `preexec_fn`, Linux): the child gets SIGKILL when the process that started it
  dies, however it dies (a test runner killed with -9 leaves no orphaned server behind).
- `stop` asks politely (SIGTERM), waits, then kills the child's whole process group (SIGKILL) and
  reaps it; it never raises, so a loop over several children always reaches every one.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(libc_name, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(grace)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: its children go too
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
