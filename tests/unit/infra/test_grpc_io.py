"""The gRPC I/O settings every `tinyim` process starts with (infra.grpc_io)."""

from __future__ import annotations

import os
import subprocess
import sys

from tinyim.infra.grpc_io import DEFAULT_EXPERIMENTS

PROBE = """
import os, sys
{before}
from tinyim.infra import grpc_io
applied = grpc_io.apply_defaults()
print(applied, repr(os.environ.get("GRPC_EXPERIMENTS")))
"""


def _run(script: str, env_value: str | None = None) -> str:
    """A fresh interpreter's output, GRPC_EXPERIMENTS unset unless env_value is given."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    if env_value is not None:
        env["GRPC_EXPERIMENTS"] = env_value
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _probe(env_value: str | None, before: str = "") -> str:
    return _run(PROBE.format(before=before), env_value)


def test_a_process_without_the_setting_gets_the_default() -> None:
    assert _probe(None) == f"True {DEFAULT_EXPERIMENTS!r}"


def test_an_operators_setting_is_kept_even_when_empty() -> None:
    assert _probe("-event_engine_dns") == "True '-event_engine_dns'"
    assert _probe("") == "True ''"  # gRPC's own defaults


def test_too_late_once_grpc_is_imported() -> None:
    assert _probe(None, before="import grpc") == "False None"


def test_the_tinyim_command_applies_it_before_grpc_is_imported() -> None:
    """`tinyim run` builds the app (which imports grpc) after main() has set the variable."""
    probe = (
        "import os, sys, tinyim.cli as cli\n"
        "cli.run = lambda settings: print('grpc' in sys.modules, os.environ.get('GRPC_EXPERIMENTS'))\n"
        "cli.main(['run'])\n"
    )
    assert _run(probe).splitlines()[-1] == f"False {DEFAULT_EXPERIMENTS}"
