"""G1: 1:1 chat end to end (N pairs over real WebSockets against `tinyim run`) next to the raw baseline.

End to end: each pair's sender sends M messages one after another (waiting for each ack) while all pairs
run at once; the receiver is online and notified. Measured: msgs/s, send→ack and send→notify p50/p99.
Raw baseline, in the same run: the same rows (one body + two index rows per message, one durable
transaction each) inserted with the same driver and the same concurrency, no server in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import ms, percentile, process_cpu_seconds, redis_commands, round_trips, write_result
from bench.raw import IndexRow, raw_mariadb, raw_sqlite
from tests.support.server import ServerProcess, free_port
from tests.support.services import REDIS_URL, delete_prefix, throwaway_mariadb
from tinyim.client import Client, register

PASSWORD = "benchmark-password"


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield ""  # the server's embedded default under its data dir
    elif backend.startswith("mariadb"):
        with throwaway_mariadb() as url:
            yield url
    else:
        raise SystemExit(f"unknown backend {backend!r}")


def server_env(backend: str, url: str, conversations: bool = True) -> dict[str, str]:
    """mariadb+redis: presence, profile cache and seqs (INCR) in Redis, under a throwaway key prefix.
    conversations=False: messages do not maintain the conversation list (to measure what it costs)."""
    env = {"IM_DATABASE_URL": url} if url else {}
    if not conversations:
        env["IM_CONVERSATION_LIST"] = "false"
    if backend.endswith("+redis"):
        env |= {
            "IM_REDIS_URL": REDIS_URL,
            "IM_SEQ_ALLOCATOR": "redis",
            "IM_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:",
        }
    return env


async def end_to_end(
    base_url: str, pairs: int, messages: int, server_pid: int = 0, redis_url: str | None = None
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    senders: list[Client] = []
    receivers: list[Client] = []
    notified: list[dict[int, float]] = []
    for i in range(pairs):
        s_name, r_name = f"s{i}_{tag}", f"r{i}_{tag}"
        await register(base_url, s_name, PASSWORD, "S")
        await register(base_url, r_name, PASSWORD, "R")
        first_push: dict[int, float] = {}

        def on_push(seq: int, first_push: dict[int, float] = first_push) -> None:
            first_push.setdefault(seq, time.perf_counter())

        senders.append(Client(base_url, s_name, PASSWORD, "PC"))
        receivers.append(Client(base_url, r_name, PASSWORD, "PC", on_push=on_push))
        notified.append(first_push)
    for c in senders + receivers:
        await c.start()
    for sender, receiver in zip(senders, receivers, strict=True):  # 1:1 chat needs friends
        await sender.apply_friend(receiver.user_id, "bench")
        await receiver.handle_friend(sender.user_id)
    await asyncio.gather(*(r.wait_for_seq(1, timeout=30) for r in receivers))  # the request notice
    base = [r.local_max_seq for r in receivers]

    acks: list[float] = []
    starts: list[list[float]] = [[] for _ in range(pairs)]

    async def pair(i: int) -> None:
        target = receivers[i].user_id
        for k in range(messages):
            t0 = time.perf_counter()
            starts[i].append(t0)
            await senders[i].send_text(target, f"message {k}")
            acks.append(time.perf_counter() - t0)

    cpu0 = process_cpu_seconds(server_pid) if server_pid else 0.0
    redis0 = await redis_commands(redis_url)
    began = time.perf_counter()
    await asyncio.gather(*(pair(i) for i in range(pairs)))
    elapsed = time.perf_counter() - began
    cpu = (process_cpu_seconds(server_pid) - cpu0) if server_pid else 0.0
    redis_during = await redis_commands(redis_url) - redis0
    await asyncio.gather(
        *(r.wait_for_seq(b + messages, timeout=60) for r, b in zip(receivers, base, strict=True))
    )

    notify: list[float] = []
    for i in range(pairs):
        pushes = sorted(notified[i].items())
        for k, t0 in enumerate(starts[i], start=1):  # receiver seq base+k <-> the pair's k-th message
            first = next((t for seq, t in pushes if seq >= base[i] + k), None)
            if first is not None:
                notify.append(first - t0)
    # the write path alone: receivers offline, one sender, one message at a time
    for c in receivers:
        await c.close()
    quiet = 20
    statements0, commits0 = await round_trips(base_url)
    quiet_redis0 = await redis_commands(redis_url)
    for k in range(quiet):
        await senders[0].send_text(receivers[0].user_id, f"quiet {k}")
    statements1, commits1 = await round_trips(base_url)
    quiet_redis = await redis_commands(redis_url) - quiet_redis0 - 2  # less the two INFOs
    for c in senders:
        await c.close()
    total = pairs * messages
    extra: dict[str, Any] = {"server_cpu_ms_per_msg": round(cpu * 1000 / total, 3)} if server_pid else {}
    if redis_url:  # everything the server sent Redis meanwhile (heartbeats, registry renewals included)
        extra["redis_commands_per_msg"] = round(redis_during / total, 2)
        extra["write_path_redis_commands_per_msg"] = round(quiet_redis / quiet, 2)
    return {
        **extra,
        "write_path_statements_per_msg": round((statements1 - statements0) / quiet, 2),
        "write_path_commits_per_msg": round((commits1 - commits0) / quiet, 2),
        "messages": total,
        "msgs_per_s": round(total / elapsed, 1),
        "send_ack_p50_ms": ms(percentile(acks, 50)),
        "send_ack_p99_ms": ms(percentile(acks, 99)),
        "send_notify_p50_ms": ms(percentile(notify, 50)),
        "send_notify_p99_ms": ms(percentile(notify, 99)),
        "notified_fraction": round(len(notify) / total, 3),
    }


def one_to_one_rows(writer: int, msg_id: int) -> list[IndexRow]:
    sender, receiver = 2 * writer + 1, 2 * writer + 2
    return [(sender, receiver, msg_id, msg_id, 1, 0), (receiver, sender, msg_id, msg_id, 0, 0)]


async def measure(
    backend: str, url: str, workdir: Path, pairs: int, messages: int, conversations: bool = True
) -> tuple[dict[str, Any], float]:
    env = server_env(backend, url, conversations)
    server = ServerProcess(workdir / "server", env=env).start()
    try:
        assert server.proc is not None
        redis_url = REDIS_URL if backend.endswith("+redis") else None
        e2e = await end_to_end(server.base_url, pairs, messages, server.proc.pid, redis_url)
    finally:
        server.stop()
        if "IM_REDIS_PREFIX" in env:
            await delete_prefix(REDIS_URL, env["IM_REDIS_PREFIX"])
    if backend == "sqlite":
        return e2e, await raw_sqlite(
            workdir / "server" / "tinyim.sqlite3", pairs, messages, 0, one_to_one_rows
        )
    return e2e, await raw_mariadb(url, pairs, messages, 0, one_to_one_rows)


def run_g1(backend: str, pairs: int, messages: int, conversations: bool = True) -> dict[str, Any]:
    """The one-process figures for a backend (msgs_per_s, write-path statements per message, ...).
    conversations=False: the same without maintaining the conversation list (its cost, by difference)."""
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-"))
    suffix = "" if conversations else "-no-conversation-list"
    try:
        with database(backend, workdir) as url:  # created and migrated outside the event loop
            e2e, raw = asyncio.run(measure(backend, url, workdir, pairs, messages, conversations))
        write_result(
            f"g1-one-to-one-{backend}{suffix}",
            {
                "scenario": "G1 1:1 end to end over WebSocket, one process (IM_ROLES=all)",
                "backend": backend,
                "conversation_list": conversations,
                "pairs": pairs,
                "messages_per_pair": messages,
                **e2e,
                "raw_txn_per_s": round(raw, 1),
                "raw_rows_per_txn": 3,
                "ratio_to_raw": round(e2e["msgs_per_s"] / raw, 3),
                "target_ratio": 0.5,
            },
        )
        return {**e2e, "ratio_to_raw": round(e2e["msgs_per_s"] / raw, 3)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_g1_cluster(pairs: int, messages: int, one_process: dict[str, float]) -> None:
    """G1 on the multi-process topology: clients spread over two gateways, sends go over gRPC to two msg
    nodes, pushes come back over gRPC; MariaDB + Redis (sessions, registry)."""
    from tinyim.cluster import Cluster

    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-cluster-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    try:
        with throwaway_mariadb() as url:
            env = {"IM_DATABASE_URL": url, "IM_REDIS_URL": REDIS_URL, "IM_REDIS_PREFIX": prefix}
            cluster = Cluster(workdir, env, free_port()).up()
            try:
                e2e = asyncio.run(end_to_end(cluster.dispatch_url, pairs, messages))
            finally:
                cluster.down()
                asyncio.run(delete_prefix(REDIS_URL, prefix))
        write_result(
            "g1-one-to-one-cluster",
            {
                "scenario": "G1 1:1 end to end, multi-process: dispatch, 2 gateways, auth, user, 2 msg",
                "backend": "mariadb + redis sessions and registry",
                "pairs": pairs,
                "messages_per_pair": messages,
                **e2e,
                "one_process_msgs_per_s": one_process,
            },
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
