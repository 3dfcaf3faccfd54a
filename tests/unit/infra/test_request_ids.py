"""tracing.new_request: ids that tell requests apart in the logs, within a process and across forks."""

from __future__ import annotations

import re
import subprocess
import sys

from tinyim.infra import tracing

# Forks in a fresh interpreter: a test process (an xdist worker with gRPC's threads) must not fork itself.
FORKED = """
import os
from tinyim.infra import tracing
read, write = os.pipe()
pid = os.fork()
ids = [tracing.new_request() for _ in range(100)]
if pid == 0:
    os.write(write, " ".join(ids).encode())
    os._exit(0)
os.waitpid(pid, 0)
theirs = os.read(read, 1 << 16).decode().split()
print(len(theirs), len(set(theirs) & set(ids)))
"""


def test_ids_are_16_hex_digits_distinct_and_set_for_the_request() -> None:
    ids = [tracing.new_request() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in ids)
    assert len(set(ids)) == len(ids)
    assert tracing.current() == ids[-1]


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    """Both go on from the generator's state at the fork: the child must be reseeded."""
    out = subprocess.run(
        [sys.executable, "-c", FORKED], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["100", "0"]
