"""W2: one connection's request rate, one request at a time vs pipelined, and the gateway's CPU per request.

A raw client (no SDK) sends N heartbeats on one authenticated WebSocket, first waiting for each answer,
then keeping `depth` requests in flight; answers must come back in order either way. Heartbeats are the
cheapest request (no SQL in one process with memory presence), so the CPU figure is mostly the
transport: frame parsing, admission, the pipeline, routing, the answer's write.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import process_cpu_seconds, write_result
from bench.ws_memory import gateway_urls
from tests.support.server import ServerProcess, free_port
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, decode, encode


async def _round(ws: ClientConnection, pid: int, requests: int, depth: int) -> dict[str, Any]:
    frames = [encode(Cmd.CMD_HEARTBEAT_REQ, pb.HeartbeatReq().SerializeToString())] * requests
    cpu, started = process_cpu_seconds(pid), time.perf_counter()
    in_flight = 0
    answered = 0
    for frame in frames:
        await ws.send(frame)
        in_flight += 1
        while in_flight >= depth:
            answer = await ws.recv()
            assert isinstance(answer, bytes) and decode(answer).cmd == Cmd.CMD_HEARTBEAT_RESP, answer[:16]
            in_flight -= 1
            answered += 1
    while in_flight:
        await ws.recv()
        in_flight -= 1
        answered += 1
    seconds, cpu = time.perf_counter() - started, process_cpu_seconds(pid) - cpu
    return {
        "depth": depth,
        "requests": answered,
        "requests_per_s": round(answered / seconds),
        "gateway_cpu_us_per_request": round(cpu / answered * 1e6, 1),
    }


async def _measure(url: str, pid: int, requests: int, depth: int) -> list[dict[str, Any]]:
    async with connect(url, compression=None, ping_interval=None, max_size=None) as ws:
        await _round(ws, pid, 200, 1)  # warm-up
        return [await _round(ws, pid, requests, 1), await _round(ws, pid, requests, depth)]


def run_ws_pipeline(requests: int = 5000, depth: int = 8) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-pipeline-"))
    secret = secrets.token_urlsafe(32)
    port = free_port()
    (url,) = asyncio.run(gateway_urls(workdir, secret, port, 1))
    env = {
        "IM_JWT_SECRET": secret,
        "IM_LOG_LEVEL": "WARNING",
        "IM_RATE_PER_SECOND": "1000000",  # the figure is the transport's, not the rate limit's
        "IM_RATE_BURST": "1000000",
    }
    server = ServerProcess(workdir, env=env, port=port).start()
    try:
        assert server.proc is not None
        one_at_a_time, pipelined = asyncio.run(_measure(url, server.proc.pid, requests, depth))
    finally:
        server.stop()
    result = {
        "scenario": "one connection: heartbeats one at a time vs pipelined (answers in order)",
        "one_at_a_time": one_at_a_time,
        "pipelined": pipelined,
        "speedup": round(pipelined["requests_per_s"] / max(1, one_at_a_time["requests_per_s"]), 2),
    }
    write_result("w2-pipelining", result)
    return result
