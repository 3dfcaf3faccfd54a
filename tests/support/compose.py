"""The docker-compose topology (docker/compose.yaml + compose.local.yaml) as the e2e scenarios see it.

`tools/compose_e2e.sh` (make compose-e2e) brings the stack up and writes a JSON description of it; the path
is in TINYIM_E2E_COMPOSE. With it set, the `deployment` fixture runs the scenarios against dispatch in the
containers, from the host, and `tests/e2e/test_compose.py` drives the stack itself (scale, kill).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_VAR = "TINYIM_E2E_COMPOSE"


def enabled() -> bool:
    return bool(os.environ.get(ENV_VAR))


@dataclass(frozen=True)
class ComposeStack:
    compose: list[str]  # the docker-compose command with project, files and env file
    dispatch_url: str
    gateway_ports: dict[str, int]  # published port of each fixed gateway service
    env: dict[str, str]  # the env file's values (secrets of this throwaway stack)

    @classmethod
    def from_env(cls) -> ComposeStack:
        data = json.loads(Path(os.environ[ENV_VAR]).read_text())
        return cls(data["compose"], data["dispatch_url"], data["gateway_ports"], data["env"])

    # --- the Served protocol (tests/e2e/conftest.py)
    @property
    def base_url(self) -> str:
        return self.dispatch_url

    @property
    def port(self) -> int:
        return self.gateway_ports["gateway-1"]

    def log(self) -> str:
        """Every container's output (the roles log JSON lines to stderr)."""
        return self.run("logs", "--no-color", "--timestamps").stdout

    # --- driving the stack
    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.compose, *args], capture_output=True, text=True, check=check, timeout=timeout
        )

    def container_ids(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).stdout.split()

    def inspect(self, container: str) -> dict[str, Any]:
        out = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=True
        ).stdout
        return dict(json.loads(out)[0])

    def ip(self, container: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]
        return str(next(iter(networks.values()))["IPAddress"])

    def healthy(self, container: str) -> bool:
        state = self.inspect(container)["State"]
        return bool(state.get("Health", {}).get("Status") == "healthy")

    def wait_healthy(self, service: str, count: int = 1, timeout: float = 120) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            ids = self.container_ids(service)
            if len(ids) >= count and all(self.healthy(c) for c in ids):
                return ids
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service}: {len(ids)} container(s), not all healthy in {timeout}s")
            time.sleep(1)

    def sql(self, service: str, statement: str) -> str:
        """A statement run by the root user inside a database container (tab-separated rows)."""
        password = self.env["DB_ROOT_PASSWORD"]
        return self.run(
            "exec", "-T", service, "mysql", "-uroot", f"-p{password}", "-N", "-B", "-e", statement
        ).stdout

    def sql_row(self, service: str, statement: str) -> dict[str, str]:
        """The first row of a statement's result, by column name."""
        password = self.env["DB_ROOT_PASSWORD"]
        out = self.run(
            "exec", "-T", service, "mysql", "-uroot", f"-p{password}", "-B", "-e", statement
        ).stdout
        names, values = out.splitlines()[:2]
        return dict(zip(names.split("\t"), values.split("\t"), strict=True))
