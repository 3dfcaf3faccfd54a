"""H1: one `tinyim run` while hostile clients do their worst, and a bystander pair keeps chatting.

Hostile load, all at once for `seconds`: chunked 64 MiB POSTs to /api/login (refused at the body
limit), WebSocket clients that stop reading and keep asking for large sync pages (dropped at the send
deadline), a frame flood (closed with 1008, reconnecting), random "fuzz" frames, and slow-header HTTP
connections. Measured: the server's RSS (baseline, peak) and the bystander's send -> receive latency.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.common import inherit_metrics_token, ms, percentile, write_result
from tests.support.server import ServerProcess
from tinyim.client import Client, register
from tinyim.pb import im_protocol_pb2 as pb
from tinyim.wire import Cmd, encode

PASSWORD = "hostile-bench-1"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _session(base: str, name: str, device: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        resp = await http.post(
            "/api/login", json={"username": name, "password": PASSWORD, "device_id": device}
        )
        return dict(resp.json())


async def _big_bodies(port: int, stop: asyncio.Event) -> None:
    chunk = b"4000\r\n" + b"[" * 0x4000 + b"\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for _ in range(4096):  # 64 MiB if nobody stops it
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 2)
        except (OSError, TimeoutError):
            pass
        with_suppress_abort(locals().get("writer"))


def with_suppress_abort(writer: Any) -> None:
    if writer is not None:
        writer.transport.abort()


async def _slow_reader(session: dict[str, Any], stop: asyncio.Event) -> None:
    sync = encode(Cmd.CMD_MSG_SYNC_REQ, pb.MsgSyncReq(local_max_seq=0, limit=200).SerializeToString())
    while not stop.is_set():
        try:
            url = f"{session['gateway']['ws_url']}?token={session['token']}&device_id={session['device']}"
            async with connect(url, max_size=None) as ws:
                ws.transport.pause_reading()
                while not stop.is_set():
                    await ws.send(sync)
                    await asyncio.sleep(0.05)
        except Exception:
            await asyncio.sleep(0.2)


async def _flood(session: dict[str, Any], stop: asyncio.Event, fuzz: bool) -> None:
    rng = random.Random(7)
    heartbeat = encode(Cmd.CMD_HEARTBEAT_REQ, b"")
    while not stop.is_set():
        try:
            url = f"{session['gateway']['ws_url']}?token={session['token']}&device_id={session['device']}"
            async with connect(url) as ws:
                while not stop.is_set():
                    frame = os.urandom(rng.randrange(1, 200)) if fuzz else heartbeat
                    if fuzz and rng.random() < 0.5:
                        frame = b"IM\x01" + frame
                    await ws.send(frame)
                    if rng.random() < 0.01:
                        await asyncio.sleep(0)
        except Exception:
            await asyncio.sleep(0.2)


async def _slow_headers(port: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            while not stop.is_set():
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(1)
        except OSError:
            await asyncio.sleep(0.1)


async def _bystanders(base: str, alice: str, bob: str, bob_id: int, stop: asyncio.Event) -> list[float]:
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    def on_message(m: Any) -> None:
        if m.client_msg_id in sent_at:
            latencies.append(time.perf_counter() - sent_at.pop(m.client_msg_id))

    a = Client(base, alice, PASSWORD, "PC")
    b = Client(base, bob, PASSWORD, "PC", on_message=on_message)
    await a.start()
    await b.start()
    n = 0
    while not stop.is_set():
        n += 1
        cmid = f"bystander-{n}"
        sent_at[cmid] = time.perf_counter()
        await a.send_text(bob_id, f"hello {n}", client_msg_id=cmid)
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    await a.close()
    await b.close()
    return latencies


async def run(seconds: float) -> dict[str, Any]:
    server = ServerProcess(
        Path(tempfile.mkdtemp(prefix="tinyim-hostile-")), env={"IM_LOG_LEVEL": "WARNING"}
    ).start()
    try:
        assert server.proc is not None
        base, pid = server.base_url, server.proc.pid
        names = {k: f"{k}_{random.randrange(10**8)}" for k in ("alice", "bob", "h1", "h2")}
        ids = {k: await register(base, n, PASSWORD, k) for k, n in names.items()}
        friends = Client(base, names["alice"], PASSWORD, "Pad")
        await friends.start()
        await friends.apply_friend(ids["bob"])
        other = Client(base, names["bob"], PASSWORD, "Pad")
        await other.start()
        await other.handle_friend(ids["alice"])
        for i in range(150):  # something large for the slow readers' sync pages
            await other.send_text(ids["alice"], f"{i} " + "x" * 12000)
        await friends.close()
        await other.close()
        hostile = []
        for who in ("h1", "h2"):
            for device in ("PC", "Web", "Mobile", "Pad"):
                s = await _session(base, names[who], device)
                s["device"] = device
                hostile.append(s)
        # the slow readers read alice's big timeline (their own is empty): give them alice's sessions
        readers = []
        for device in ("Web", "Mobile"):
            s = await _session(base, names["alice"], device)
            s["device"] = device
            readers.append(s)
        await asyncio.sleep(1)
        baseline = rss_mib(pid)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_big_bodies(server.port, stop)) for _ in range(4)]
        tasks += [asyncio.create_task(_slow_reader(s, stop)) for s in readers]
        tasks += [asyncio.create_task(_flood(s, stop, fuzz=i % 2 == 1)) for i, s in enumerate(hostile)]
        tasks += [asyncio.create_task(_slow_headers(server.port, stop)) for _ in range(50)]
        bystander = asyncio.create_task(_bystanders(base, names["alice"], names["bob"], ids["bob"], stop))
        peak = baseline
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(0.5)
            peak = max(peak, rss_mib(pid))
        stop.set()
        latencies = await bystander
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "scenario": "H1 hostile clients (64 MiB chunked bodies x4, 2 slow readers, 8 flood/fuzz "
            "connections, 50 slow-header connections) vs a bystander pair, one process",
            "seconds": seconds,
            "rss_baseline_mib": round(baseline, 1),
            "rss_peak_mib": round(peak, 1),
            "rss_growth_mib": round(peak - baseline, 1),
            "bystander_messages": len(latencies),
            "bystander_p50_ms": ms(percentile(latencies, 50)),
            "bystander_p99_ms": ms(percentile(latencies, 99)),
            "bystander_max_ms": ms(max(latencies)) if latencies else None,
        }
    finally:
        server.stop()


def run_hostile(seconds: float = 60) -> None:
    write_result("h1_hostile", asyncio.run(run(seconds)))


if __name__ == "__main__":
    inherit_metrics_token()
    run_hostile()
