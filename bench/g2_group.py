"""G2: one 500-member group, write diffusion end to end, next to the raw multi-row insert of the same rows.

Setup: 500 users (seeded: bench/seed.py, no argon2), all friends of the owner, all online over real
WebSockets through the SDK. Headline: server CPU µs per group message delivered to every member (the
burst, everyone online), next to group msgs/s, all-notified p50/p99 and statements per message.
- latency: the owner sends messages one after another; for each, the time until EVERY online member got
  a MsgPushNotify covering it (p50/p99 over messages);
- throughput: several members send at once; group messages/s and index rows/s;
- round trips: SQL statements and commits per message on the write path (members offline, so their
  syncs are not counted), and per message with every member online and syncing;
- raw: per message one body row plus one multi-row INSERT of 500 index rows, one transaction each,
  same driver, same concurrency.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import ms, percentile, process_cpu_seconds, result_path, write_result
from bench.g1_one_to_one import _migrated_sqlite, database, server_env
from bench.measure import cpu_of, pids_named
from bench.profile import start_recording, stop_recording, summarised
from bench.raw import IndexRow, raw_mariadb, raw_sqlite
from bench.seed import Account, seed_accounts, session_body
from tests.support.server import ServerProcess
from tinyim.client import Client, ClientOptions

PASSWORD = "benchmark-password"
METRICS_TOKEN = "benchmark-metrics-token"
RATE = 5000  # per-connection limit: the owner approves 499 friend requests back to back


async def _metric(base_url: str, name: str) -> float:
    async with httpx.AsyncClient(base_url=base_url) as http:
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _round_trips(base_url: str) -> tuple[float, float, float]:
    """SQL statements, commits and Redis round trips so far (the server's own counters)."""
    return (
        await _metric(base_url, "tinyim_db_statements_total"),
        await _metric(base_url, "tinyim_db_commits_total"),
        await _metric(base_url, "tinyim_redis_round_trips_total"),
    )


async def _quiet(base_url: str, timeout: float = 15.0) -> float:
    """Wait until the server's SQL counters stop moving (for at most `timeout`); then the Redis round
    trips per second of the idle server (registry renewals, presence sweeps), measured over 2 s."""
    last = await _round_trips(base_url)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.5)
        now = await _round_trips(base_url)
        if now[:2] == last[:2]:
            break
        last = now
    began, before = time.perf_counter(), (await _round_trips(base_url))[2]
    await asyncio.sleep(2.0)
    return ((await _round_trips(base_url))[2] - before) / (time.perf_counter() - began)


async def _in_batches(coros: list[Any], size: int = 25) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(coros), size):
        out += await asyncio.gather(*coros[i : i + size])
    return out


async def _saw_group(client: Client, group_id: int, timeout: float = 60.0) -> None:
    """Wait until the client got a message of the group (its group_created notice); it may have come
    before create_group answered the owner, so a seq counted from after the answer would never come."""
    async with asyncio.timeout(timeout):
        seen = any(m.group_id == group_id for m in client.take_delivered())
        while not seen:
            seen = (await client.next_message(timeout)).group_id == group_id


async def _caught_up(clients: list[Client], targets: list[int], timeout: float = 120.0) -> None:
    """Wait until every client reached its target seq; on a timeout say who lags, and whether a plain
    sync catches them up (signal or retry path stalled) or not (data missing)."""
    pairs = list(zip(clients, targets, strict=True))
    try:
        await _in_batches([c.wait_for_seq(t, timeout) for c, t in pairs], 100)
        return
    except TimeoutError:
        behind = [(c, t) for c, t in pairs if c.local_max_seq < t]
        print(f"{len(behind)} clients behind after {timeout}s", flush=True)
        for c, t in behind[:5]:
            state = {
                "user": c.user_id,
                "local": c.local_max_seq,
                "target": t,
                "notified": c.notified_max_seq,
                "connected": c.connected.is_set(),
                "pending": len(c.session._pending),
                "sync_task": None if c._sync_task is None else ("done" if c._sync_task.done() else "running"),
                "sync_locked": c._sync_lock.locked(),
            }
            print(f"  {state}", flush=True)
        raise


async def run(
    base_url: str,
    accounts: list[Account],
    latency_messages: int,
    senders: int,
    per_sender: int,
    pid: int = 0,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    size = len(accounts)
    ids = [a.user_id for a in accounts]
    pushes: list[dict[int, float]] = [{} for _ in accounts]

    def client(i: int) -> Client:
        def on_push(seq: int, seen: dict[int, float] = pushes[i]) -> None:
            seen.setdefault(seq, time.perf_counter())

        # a generous request timeout: with 499 members syncing at once a send may queue for a long time,
        # which is a figure to report, not a reason to abort the run
        c = Client(
            base_url,
            accounts[i].username,
            PASSWORD,
            "PC",
            on_push=on_push,
            options=ClientOptions(heartbeat_interval=30, request_timeout=120),
        )
        c.session._take_session(session_body(accounts[i], base_url, RATE, RATE))  # as if logged in
        return c

    clients = [client(i) for i in range(size)]
    await _in_batches([c.start() for c in clients], 50)
    owner, members = clients[0], clients[1:]
    await _in_batches([m.apply_friend(ids[0], "bench") for m in members])
    for member_id in ids[1:]:
        await owner.handle_friend(member_id)
    group_id = await owner.create_group("bench group", ids[1:])
    await _in_batches([_saw_group(c, group_id) for c in members])  # group_created, however fast it came
    await asyncio.sleep(0.5)

    # latency: one sender, one message at a time
    base = [c.local_max_seq for c in clients]
    starts: list[float] = []
    for k in range(latency_messages):
        starts.append(time.perf_counter())
        await owner.send_group(group_id, f"latency {k}")
    await _in_batches(
        [c.wait_for_seq(base[i] + latency_messages, 60) for i, c in enumerate(clients) if i], 100
    )
    all_notified: list[float] = []
    for k, t0 in enumerate(starts, start=1):
        latest = 0.0
        for i in range(1, size):
            pushed = [t for seq, t in pushes[i].items() if seq >= base[i] + k]
            latest = max(latest, min(pushed) if pushed else float("inf"))
        all_notified.append(latest - t0)

    # throughput and round trips with everyone online
    statements0, commits0, redis0 = await _round_trips(base_url)
    total = senders * per_sender

    async def burst(c: Client) -> None:
        for k in range(per_sender):
            await c.send_group(group_id, f"burst {k}")

    stores = pids_named("mariadbd", "mysqld", "redis-server")
    server0, store0, client0 = cpu_of([pid]) if pid else 0.0, cpu_of(stores), time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(burst(c) for c in clients[1 : senders + 1]))
    elapsed = time.perf_counter() - began
    await _caught_up(clients, [b + latency_messages + total for b in base])
    delivered_elapsed = time.perf_counter() - began
    burst_server_cpu = (cpu_of([pid]) - server0) if pid else 0.0
    burst_store_cpu, burst_client_cpu = cpu_of(stores) - store0, time.process_time() - client0
    statements1, commits1, redis1 = await _round_trips(base_url)

    # the write path alone: members offline but the senders
    burst_senders = clients[1 : senders + 1]
    for c in members:
        if c not in burst_senders:
            await c.close()
    # their going offline (presence, status notices) is not the write path; nor what the idle server does
    idle_redis_per_s = await _quiet(base_url)
    quiet = 200 if profile_to else 20  # a profile needs samples
    statements2, commits2, redis2 = await _round_trips(base_url)
    recording = start_recording(pid, profile_to) if pid and profile_to else None
    cpu0 = process_cpu_seconds(pid) if pid else 0.0
    quiet_began = time.perf_counter()
    for k in range(quiet):
        await owner.send_group(group_id, f"quiet {k}")
    quiet_elapsed = time.perf_counter() - quiet_began
    cpu = (process_cpu_seconds(pid) - cpu0) if pid else 0.0
    if recording is not None:
        stop_recording(recording)
    statements3, commits3, redis3 = await _round_trips(base_url)
    # the same burst as above (same senders, same messages), the other members offline: the write
    # throughput that the raw multi-row insert (same concurrency) is the ceiling of
    cpu0 = process_cpu_seconds(pid) if pid else 0.0
    began = time.perf_counter()
    await asyncio.gather(*(burst(c) for c in burst_senders))
    offline_elapsed = time.perf_counter() - began
    offline_cpu = (process_cpu_seconds(pid) - cpu0) if pid else 0.0
    for c in (owner, *burst_senders):
        await c.close()
    return {
        # the burst, every member online: CPU per group message delivered to all members
        "server_cpu_us_per_msg": round(burst_server_cpu * 1e6 / total, 1),
        "client_cpu_us_per_msg_sdk": round(burst_client_cpu * 1e6 / total, 1),
        "db_and_redis_cpu_us_per_msg": round(burst_store_cpu * 1e6 / total, 1),
        "msgs_per_s_all_delivered": round(total / delivered_elapsed, 1),
        # one sender, members offline: the write path alone (ack waited for each message)
        "write_path_msgs_per_s": round(quiet / quiet_elapsed, 1),
        "write_path_server_cpu_ms_per_msg": round(cpu * 1000 / quiet, 3),
        # several senders, members offline: the write throughput
        "offline_group_msgs_per_s": round(total / offline_elapsed, 1),
        "offline_index_rows_per_s": round(total * size / offline_elapsed, 1),
        "offline_server_cpu_ms_per_msg": round(offline_cpu * 1000 / total, 3),
        "group_size": size,
        # several senders, every member online (send acks; deliveries go on after the last ack)
        "group_msgs_per_s": round(total / elapsed, 1),
        "index_rows_per_s": round(total * size / elapsed, 1),
        "all_notified_p50_ms": ms(percentile(all_notified, 50)),
        "all_notified_p99_ms": ms(percentile(all_notified, 99)),
        "write_path_statements_per_msg": round((statements3 - statements2) / quiet, 2),
        "write_path_commits_per_msg": round((commits3 - commits2) / quiet, 2),
        "write_path_redis_round_trips_per_msg": round((redis3 - redis2) / quiet, 2),
        # the same less what the idle server sends in as long (idle_redis_round_trips_per_s)
        "write_path_redis_round_trips_per_msg_net": round(
            (redis3 - redis2 - idle_redis_per_s * quiet_elapsed) / quiet, 2
        ),
        "idle_redis_round_trips_per_s": round(idle_redis_per_s, 2),
        "online_statements_per_msg": round((statements1 - statements0) / total, 1),
        "online_commits_per_msg": round((commits1 - commits0) / total, 1),
        "online_redis_round_trips_per_msg": round((redis1 - redis0) / total, 1),
        "latency_messages": latency_messages,
        "throughput_messages": total,
        "concurrent_senders": senders,
    }


GROUP_ID = 7  # any id: the raw baseline only needs the same rows


def group_rows(size: int) -> Callable[[int, int], list[IndexRow]]:
    return lambda _writer, msg_id: [(10**9 + m, GROUP_ID, msg_id, msg_id, 0, 1) for m in range(size)]


async def measure(
    backend: str, url: str, workdir: Path, size: int, conversations: bool = True, profile: bool = False
) -> tuple[dict[str, Any], float]:
    secret = secrets.token_urlsafe(32)
    accounts = await seed_accounts(
        url or await asyncio.to_thread(_migrated_sqlite, workdir / "server"), secret, size
    )
    # mariadb+redis: seqs (INCR), presence and sessions in Redis, as in g1
    env = server_env(backend, url, conversations)
    env["IM_JWT_SECRET"] = secret
    # The owner approves 499 friend requests back to back: lift the per-connection rate limit for it.
    env |= {"IM_RATE_PER_SECOND": str(RATE), "IM_RATE_BURST": str(RATE), "IM_METRICS_TOKEN": METRICS_TOKEN}
    server = ServerProcess(workdir / "server", env=env).start()
    try:
        assert server.proc is not None
        profile_to = result_path(f"profile-g2-write-path-{backend}", ".speedscope.json") if profile else None
        e2e = await run(
            server.base_url,
            accounts,
            latency_messages=30,
            senders=4,
            per_sender=25,
            pid=server.proc.pid,
            profile_to=profile_to,
        )
        if profile_to is not None:
            summarised(profile_to, f"profile-g2-write-path-{backend}")
    except BaseException:
        print(f"server log (tail):\n{server.log()}")
        raise
    finally:
        server.stop()
    if backend.startswith("sqlite"):
        return e2e, await raw_sqlite(workdir / "server" / "tinyim.sqlite3", 4, 25, GROUP_ID, group_rows(size))
    plain = await raw_mariadb(url, 4, 25, GROUP_ID, group_rows(size))
    # the same statements as the server's write path: seq rows (locked row allocator), index rows and the
    # conversation list's rows, straight through the driver
    locked_seqs = not backend.endswith("+redis")
    full = await raw_mariadb(
        url, 4, 25, GROUP_ID, group_rows(size), seqs=locked_seqs, conversations=conversations
    )
    e2e["raw_same_statements_txn_per_s"] = round(full, 1)
    e2e["offline_ratio_to_raw_same_statements"] = round(e2e["offline_group_msgs_per_s"] / full, 3)
    return e2e, plain


def run_g2(
    backend: str, size: int = 500, conversations: bool = True, profile: bool = False
) -> dict[str, Any]:
    """conversations=False: the same without maintaining the conversation list (its cost, by difference);
    profile: a py-spy profile of the server over 200 write-path messages (profile-g2-write-path-*)."""
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-g2-"))
    suffix = "" if conversations else "-no-conversation-list"
    try:
        with database(backend, workdir) as url:
            e2e, raw = asyncio.run(measure(backend, url, workdir, size, conversations, profile))
        write_result(
            f"g2-group-{backend}{suffix}",
            {
                "scenario": "G2 one group, write diffusion, every member online, one process (IM_ROLES=all)",
                "backend": backend,
                "conversation_list": conversations,
                **e2e,
                "raw_txn_per_s": round(raw, 1),
                "raw_rows_per_s": round(raw * (size + 1), 1),
                "ratio_rows_to_raw": round(e2e["index_rows_per_s"] / (raw * size), 3),
                "offline_ratio_rows_to_raw": round(e2e["offline_index_rows_per_s"] / (raw * size), 3),
                "target_ratio": 0.5,
            },
        )
        return {**e2e, "ratio_rows_to_raw": round(e2e["index_rows_per_s"] / (raw * size), 3)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
