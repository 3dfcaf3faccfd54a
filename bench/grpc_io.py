"""X1: CPU per round trip on one gRPC stream (grpc.aio, uvloop; client and server in one process), with
gRPC's own defaults and with the I/O settings the `tinyim` command applies (infra.grpc_io).

gRPC reads GRPC_EXPERIMENTS when it is imported, so every measurement is a fresh interpreter; the two
settings alternate, `rounds` times each, so a host whose speed drifts meets both alike. Written to
bench/results/x1-grpc-stream-io.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

from bench.common import write_result
from tinyim.infra.grpc_io import DEFAULT_EXPERIMENTS

PROBE = r"""
import asyncio, json, time
import grpc, uvloop

async def echo(requests, context):
    async for request in requests:
        yield request

async def main(n):
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("x1.Echo", {"S": grpc.stream_stream_rpc_method_handler(echo)}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream("/x1.Echo/S")()
        payload = b"x" * 300  # about a batch of a few sends
        for _ in range(300):  # warm-up
            await call.write(payload)
            await call.read()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(n):
            await call.write(payload)
            await call.read()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await call.done_writing()
    await server.stop(None)
    print(json.dumps({"cpu_us_per_round_trip": cpu / n * 1e6, "wall_us_per_round_trip": wall / n * 1e6}))

uvloop.run(main(%d))
"""


def _once(experiments: str, round_trips: int) -> dict[str, float]:
    env = {**os.environ, "GRPC_EXPERIMENTS": experiments}
    out = subprocess.run(
        [sys.executable, "-c", PROBE % round_trips], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_grpc_io(rounds: int = 5, round_trips: int = 5000) -> dict[str, Any]:
    settings = {"grpc_defaults": "", "tinyim": DEFAULT_EXPERIMENTS}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    for _ in range(rounds):
        for name, experiments in settings.items():
            runs[name].append(_once(experiments, round_trips))
    result: dict[str, Any] = {
        "scenario": "one grpc.aio stream, client and server in one process: CPU per write + read round trip",
        "round_trips_per_run": round_trips,
        "tinyim_grpc_experiments": DEFAULT_EXPERIMENTS,
    }
    for name, figures in runs.items():
        cpu = [f["cpu_us_per_round_trip"] for f in figures]
        result[name] = {
            "cpu_us_per_round_trip_median": round(statistics.median(cpu), 1),
            "cpu_us_per_round_trip_runs": [round(x, 1) for x in cpu],
            "wall_us_per_round_trip_median": round(
                statistics.median(f["wall_us_per_round_trip"] for f in figures), 1
            ),
        }
    defaults = result["grpc_defaults"]["cpu_us_per_round_trip_median"]
    result["cpu_ratio_tinyim_to_defaults"] = round(
        result["tinyim"]["cpu_us_per_round_trip_median"] / defaults, 3
    )
    write_result("x1-grpc-stream-io", result)
    return result
