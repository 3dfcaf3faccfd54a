"""G5: file transfer through the file gateway next to raw copies, in the same run.

- upload of a 1 GiB file through the SDK and the gateway (TCP: frames, MD5 verified, fsync, published)
  next to a raw socket -> disk copy (a bare server: recv_into + write, no hash, no fsync; the client
  sends with os.sendfile);
- download of that file through the gateway (sendfile) next to a raw `os.sendfile` loop to a reader
  that writes to disk;
- the bytes resent after a cut in the middle of an upload (resume from what the gateway holds).
Targets (issue 10): download >= 0.8x raw, upload >= 0.7x raw, resent <= one chunk.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import write_result
from tests.support.server import ServerProcess, free_port
from tinyim.client import Client, FileTransfers, register

GIB = 1024**3

RAW_SERVER = r"""
import os, socket, sys
mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port)); ls.listen(1); print("ready", flush=True)
conn, _ = ls.accept()
if mode == "sink":  # socket -> disk
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    buf = bytearray(1 << 20); view = memoryview(buf)
    while (n := conn.recv_into(buf)):
        os.write(fd, view[:n])
    os.close(fd)
else:  # os.sendfile loop
    fd = os.open(path, os.O_RDONLY); size = os.fstat(fd).st_size; off = 0
    while off < size:
        off += os.sendfile(conn.fileno(), fd, off, size - off)
    os.close(fd)
conn.close()
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_source(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        block = os.urandom(8 * 1024 * 1024)
        i = 0
        while left:
            n = min(left, len(block))
            f.write(block[:n] if i % 2 == 0 else block[n - 1 :: -1] if n == len(block) else block[:n])
            left -= n
            i += 1


def raw_run(mode: str, path: Path, out: Path, size: int) -> float:
    """Seconds for one raw transfer of `size` bytes (sink: we send the file; send: we receive it)."""
    port = free_port()
    target = out if mode == "sink" else path
    proc = subprocess.Popen(
        [sys.executable, "-c", RAW_SERVER, mode, str(port), str(target)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        sock = socket.create_connection(("127.0.0.1", port))
        started = time.perf_counter()
        if mode == "sink":
            fd = os.open(path, os.O_RDONLY)
            off = 0
            while off < size:
                off += os.sendfile(sock.fileno(), fd, off, size - off)
            os.close(fd)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)
            proc.wait(60)
        else:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            got = 0
            while got < size:
                n = sock.recv_into(buf)
                if not n:
                    break
                os.write(fd, view[:n])
                got += n
            os.close(fd)
        seconds = time.perf_counter() - started
        sock.close()
        return seconds
    finally:
        proc.kill()
        proc.wait()


async def through_gateway(server: ServerProcess, source: Path, size: int, workdir: Path) -> dict[str, Any]:
    base_url = server.base_url
    assert server.proc is not None
    pid = server.proc.pid

    def restart() -> None:
        server.stop(signal.SIGKILL)
        server.start()

    await register(base_url, "bench_g5", "password1", "G5")
    client = Client(base_url, "bench_g5", "password1", "PC")
    await client.start()
    try:
        stamps: list[tuple[float, int]] = []
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        transfers = FileTransfers(client, stall_timeout=120)
        ref = await transfers.upload(source, progress=lambda d, t: stamps.append((time.perf_counter(), d)))
        t1 = time.perf_counter()
        up_cpu = cpu_seconds(pid) - cpu0
        up_transfer = t1 - stamps[0][0]  # from the gateway's offset answer to FileUploadDone
        up_total = t1 - t0  # including the client's MD5 of the file
        dest = workdir / "download.bin"
        stamps.clear()
        cpu0 = cpu_seconds(pid)
        await transfers.download(ref, dest, progress=lambda d, t: stamps.append((time.perf_counter(), d)))
        down_transfer = stamps[-1][0] - stamps[0][0]  # bytes on the client's disk, before its MD5 check
        down_cpu = cpu_seconds(pid) - cpu0
        dest.unlink()

        # cuts in the middle of an upload of the same size (other bytes: no instant upload):
        # the client's connection dropped, then the gateway process kill -9ed and restarted
        results: dict[str, Any] = {}
        for kind, name in (("client_cut", "cut.bin"), ("gateway_kill", "kill.bin")):
            results[kind] = await cut_upload(client, workdir / name, size, kind, restart)
        return {
            "upload_seconds_transfer": round(up_transfer, 3),
            "upload_seconds_with_client_md5": round(up_total, 3),
            "upload_gateway_cpu_seconds": round(up_cpu, 2),
            "download_seconds": round(down_transfer, 3),
            "download_gateway_cpu_seconds": round(down_cpu, 2),
            "cuts": results,
        }
    finally:
        await client.close()


async def cut_upload(
    client: Client, source: Path, size: int, kind: str, restart: Callable[[], None]
) -> dict[str, int]:
    """Upload with one cut at half the file; the bytes sent before it and where the upload resumed."""
    seen: list[int] = []
    killer: list[asyncio.Task[None]] = []

    def cut(done: int, _total: int) -> None:
        seen.append(done)
        if len(seen) > 1 and seen[-2] < size // 2 <= done and not killer:
            if kind == "client_cut":
                killer.append(asyncio.create_task(asyncio.sleep(0)))
                raise ConnectionResetError("cut")
            killer.append(asyncio.create_task(asyncio.to_thread(restart)))

    cutter = FileTransfers(client, stall_timeout=120)
    await cutter.upload(source, progress=cut)
    await killer[0]
    steps = [(a, b) for a, b in itertools.pairwise(seen) if b <= a]
    assert steps, (kind, seen[:3], seen[-3:], len(seen))
    before, back = steps[0]
    return {
        "sent_before": before,
        "resumed_from": back,
        "resent_bytes": before - back,
        "attempts": cutter.attempts,
    }


def run_g5(size: int = GIB) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-g5-", dir=os.environ.get("IM_BENCH_DIR")))
    source = workdir / "source.bin"
    make_source(source, size)
    for name in ("cut.bin", "kill.bin"):
        shutil.copyfile(source, workdir / name)
        with open(workdir / name, "r+b") as f:
            f.write(os.urandom(64))  # other bytes: a normal upload, not an instant one
    chunk = 1024 * 1024
    # raw baselines before and after the gateway runs, the faster of each kept (the machine is shared)
    raw_times = {"sink": [raw_run("sink", source, workdir / "raw.bin", size)],
                 "send": [raw_run("send", source, workdir / "raw.bin", size)]}  # fmt: skip
    (workdir / "raw.bin").unlink()
    server = ServerProcess(
        workdir / "server", env={"IM_LOG_LEVEL": "WARNING", "IM_FILE_CHUNK_BYTES": str(chunk)}
    )
    server.start()
    try:
        gw = asyncio.run(through_gateway(server, source, size, workdir))
    finally:
        server.stop()
    shutil.rmtree(workdir / "server", ignore_errors=True)
    raw_times["sink"].append(raw_run("sink", source, workdir / "raw.bin", size))
    raw_times["send"].append(raw_run("send", source, workdir / "raw.bin", size))
    (workdir / "raw.bin").unlink()
    raw_up, raw_down = min(raw_times["sink"]), min(raw_times["send"])
    mib = size / 1024**2
    up_rate, down_rate = mib / gw["upload_seconds_transfer"], mib / gw["download_seconds"]
    raw_up_rate, raw_down_rate = mib / raw_up, mib / raw_down
    write_result(
        "g5-file-transfer",
        {
            "scenario": f"upload and download of a {mib:.0f} MiB file through the file gateway (one process) "
            "vs raw socket->disk and raw os.sendfile, same run",
            "size_bytes": size,
            "chunk_bytes": chunk,
            "upload_mib_s": round(up_rate, 1),
            "raw_socket_to_disk_mib_s": round(raw_up_rate, 1),
            "upload_ratio": round(up_rate / raw_up_rate, 3),
            "upload_target": 0.7,
            "download_mib_s": round(down_rate, 1),
            "raw_sendfile_mib_s": round(raw_down_rate, 1),
            "download_ratio": round(down_rate / raw_down_rate, 3),
            "download_target": 0.8,
            "resent_bytes_after_client_cut": gw["cuts"]["client_cut"]["resent_bytes"],
            "resent_bytes_after_gateway_kill": gw["cuts"]["gateway_kill"]["resent_bytes"],
            "resent_target_bytes": chunk,
            "data_dir": str(workdir.parent),
            "raw_seconds": raw_times,
            "detail": gw,
        },
    )
    shutil.rmtree(workdir, ignore_errors=True)
