"""gRPC core's I/O settings for every TinyIM process. gRPC reads them once, when `grpc` is imported, so
they are applied at the start of the command line, before anything imports it.

gRPC core's EventEngine endpoints (its default) pass every read and write between their own threads and
grpc.aio's poller thread; with them off, the poller thread does the socket I/O itself. Measured on the
2-core bench host: a round trip on a stream costs ~28 % less CPU (`make bench` x1); the multi-process
topology, whose stream messages carry several chat messages each, spends ~5 % less server CPU per 1:1
message. Nothing else changes: the same HTTP/2, deadlines, keepalives and errors.
"""

from __future__ import annotations

import os
import sys

DEFAULT_EXPERIMENTS = "-event_engine_client,-event_engine_listener"


def apply_defaults() -> bool:
    """Set GRPC_EXPERIMENTS unless the operator did (`GRPC_EXPERIMENTS=` keeps gRPC's own defaults).
    Child processes inherit it. False when grpc is imported already: too late to take effect."""
    if "grpc" in sys.modules:
        return False
    os.environ.setdefault("GRPC_EXPERIMENTS", DEFAULT_EXPERIMENTS)
    return True
