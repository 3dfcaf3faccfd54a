"""A private etcd (Debian's etcd-server) on free loopback ports, for the etcd registry tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port
from tests.support.services import reachable
from tinyim.infra.children import die_with_parent, stop


@dataclass
class EtcdServer:
    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoints(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EtcdServer:
        binary = shutil.which("etcd")
        if binary is None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("etcd is not installed (apt-get install etcd-server)")
            pytest.skip("*** SKIPPED: etcd is not installed (apt-get install etcd-server) ***")
        self.port, peer = free_port(), free_port()
        flags = {
            "name": "test",
            "data-dir": str(self.workdir / "etcd"),
            "listen-client-urls": f"http://127.0.0.1:{self.port}",
            "advertise-client-urls": f"http://127.0.0.1:{self.port}",
            "listen-peer-urls": f"http://127.0.0.1:{peer}",
            "initial-advertise-peer-urls": f"http://127.0.0.1:{peer}",
            "initial-cluster": f"test=http://127.0.0.1:{peer}",
            "log-level": "error",
        }
        self.proc = subprocess.Popen(
            [binary, *(f"--{k}={v}" for k, v in flags.items())],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "etcd.log", "wb"),  # noqa: SIM115 - lives as long as the process
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 20
        while not reachable("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start: {(self.workdir / 'etcd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, grace=10)
