"""Finding 10: every helper that starts processes stops them for sure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tinyim.cluster import Cluster

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status not in ("Z", "X")


def _wait_dead(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_cluster_down_stops_every_process_even_one_that_ignores_sigterm(tmp_path: Path) -> None:
    c = Cluster(tmp_path, {}, 45000)
    normal = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True)
    c.procs["auth"], c.procs["msg-1"] = normal, stubborn
    time.sleep(0.3)
    try:
        c.down()
    finally:
        alive = [p.pid for p in (normal, stubborn) if p.poll() is None]
        for p in (normal, stubborn):
            p.kill()
            p.wait()
    assert not alive, f"left running: {alive}"


@pytest.mark.e2e
def test_a_server_dies_with_the_test_process_that_started_it(tmp_path: Path) -> None:
    runner = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from tests.support.server import ServerProcess
        s = ServerProcess(Path({str(tmp_path)!r})).start()
        print(s.proc.pid, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", runner], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    server_pid = int(line)
    proc.send_signal(signal.SIGKILL)  # the test process dies without any cleanup
    proc.wait()
    try:
        assert _wait_dead(server_pid, 10), "the server outlived the test process that started it"
    finally:
        if _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
