"""Start a real `tinyim run` process on free loopback ports, the way a user would, and stop it."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tinyim.infra.children import die_with_parent, stop

# Ports are drawn below the kernel's ephemeral range (32768-60999 here): a port the kernel handed out with
# bind(0) and we released could be given again to any outgoing connection before the server binds it (CI
# failed once that way); and clear of the cluster tests' port blocks (20000-31011, tests/e2e/conftest.py).
_PORTS = range(10000, 20000)


def is_free(port: int) -> bool:
    """Nothing is bound to this loopback port right now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    for _ in range(100):
        port = random.choice(_PORTS)
        if is_free(port):
            return port
    with socket.socket() as s:  # a crowded range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # the command line before "run" (default: the venv's tinyim), e.g. to hide packages from it
    command: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        chosen = not self.port
        for attempt in range(3):
            try:
                return self._start(timeout)
            except RuntimeError as e:
                # another process took a port between our check and the server's bind: try other ports
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
                if chosen:
                    self.port = 0
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> ServerProcess:
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "IM_HTTP_PORT": str(self.port),
            "IM_FILE_PORT": str(free_port()),
            "IM_DATA_DIR": str(self.data_dir),
            **self.env,
        }
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        tinyim = Path(sys.executable).with_name("tinyim")
        self.proc = subprocess.Popen(
            [*(self.command or [str(tinyim)]), "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # no orphan, however the test run ends
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tinyim exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tinyim did not answer /healthz in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop(self.proc, grace=10, sig=sig)

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")[-4000:]
            if self.log_path and self.log_path.exists()
            else ""
        )
