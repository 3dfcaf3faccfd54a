"""G2: one 500-member group, write diffusion end to end, next to the raw multi-row insert of the same rows.

Setup: 500 users (seeded: bench/seed.py, no argon2), all friends of the owner and in one group, through
the SDK (not timed). Online, every member is a lean raw connection in two load-generator worker processes
(bench/group_load.py): the benchmark's clients cost far less CPU per message than the server. Headline:
server CPU µs per group message delivered to every member (the burst, everyone online), next to group
msgs/s, all-notified p50/p99, statements per message and the lean clients' own CPU per message.
- latency: the owner sends messages one after another; for each, the time until EVERY other member got
  it (from the push that carries it, or the sync that a push prompted; p50/p99 over messages);
- throughput: several members send at once; group messages/s and index rows/s;
- round trips: SQL statements and commits per message on the write path (members offline, so their
  syncs are not counted), and per message with every member online and syncing;
- raw: per message one body row plus one multi-row INSERT of 500 index rows, one transaction each,
  same driver, same concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import ms, percentile, process_cpu_seconds, result_path, write_result
from bench.g1_one_to_one import _migrated_sqlite, database, server_env, ws_url
from bench.group_load import GroupPhaseSpec, GroupPhaseStats, Key, MemberSpec, group_worker_main
from bench.loadgen import LoadGenerator
from bench.measure import cpu_of, pids_named
from bench.profile import start_recording, stop_recording, summarised
from bench.raw import IndexRow, raw_mariadb, raw_sqlite
from bench.seed import Account, seed_accounts, session_body
from tests.support.server import ServerProcess
from tinyim.client import Client, ClientOptions

PASSWORD = "benchmark-password"
METRICS_TOKEN = "benchmark-metrics-token"
RATE = 5000  # per-connection limit: the owner approves 499 friend requests back to back
WORKERS = 2  # load-generator processes holding the members online (as G1)
# Messages per sender in the bursts, and per writer in the raw baselines (the same 4 x 100 messages on each
# side): a run of 100 messages took under a second and the raw figure moved by 50 % between two such runs.
PER_SENDER = 100


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


async def _settled(base_url: str, timeout: float = 15.0) -> None:
    """Wait until the server's SQL counters stop moving (for at most `timeout`)."""
    last = await _round_trips(base_url)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.5)
        now = await _round_trips(base_url)
        if now[:2] == last[:2]:
            break
        last = now


async def _quiet(base_url: str, timeout: float = 15.0, seconds: float = 5.0) -> float:
    """Once the server settled: the Redis round trips per second of the idle server (registry renewals,
    presence sweeps, the connected senders' heartbeats), measured over `seconds`."""
    await _settled(base_url, timeout)
    began, before = time.perf_counter(), (await _round_trips(base_url))[2]
    await asyncio.sleep(seconds)
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


def _sdk_client(base_url: str, account: Account) -> Client:
    # a generous request timeout: a send may queue behind a busy server, which is a figure to report,
    # not a reason to abort the run
    c = Client(
        base_url,
        account.username,
        PASSWORD,
        "PC",
        options=ClientOptions(heartbeat_interval=30, request_timeout=120),
    )
    c.session._take_session(session_body(account, base_url, RATE, RATE))  # as if logged in
    return c


async def _set_up_group(base_url: str, accounts: list[Account]) -> int:
    """Every member a friend of the owner and in one group, through the SDK (not timed); all offline after."""
    ids = [a.user_id for a in accounts]
    clients = [_sdk_client(base_url, a) for a in accounts]
    await _in_batches([c.start() for c in clients], 50)
    owner, members = clients[0], clients[1:]
    await _in_batches([m.apply_friend(ids[0], "bench") for m in members])
    for member_id in ids[1:]:
        await owner.handle_friend(member_id)
    group_id = await owner.create_group("bench group", ids[1:])
    await _in_batches([_saw_group(c, group_id) for c in members])  # group_created, however fast it came
    await _in_batches([c.close() for c in clients], 50)
    return group_id


@contextlib.asynccontextmanager
async def _lean_members(base_url: str, accounts: list[Account]) -> AsyncIterator[LoadGenerator]:
    """Every member online as a raw connection, spread over the load generator's worker processes."""
    specs = [MemberSpec(i, a.user_id, ws_url(base_url, a)) for i, a in enumerate(accounts)]
    gen = LoadGenerator(specs, WORKERS, main=group_worker_main)
    await asyncio.to_thread(gen.__enter__)
    try:
        yield gen
    finally:
        await asyncio.to_thread(gen.__exit__, None, None, None)


def _online_profile(write_path: Path) -> Path:
    """Where the online burst's profile goes: next to the write path's (profile-g2-online-*)."""
    return write_path.with_name(write_path.name.replace("write-path", "online"))


async def _online_phase(
    gen: LoadGenerator, members: int, group_id: int, senders: tuple[int, ...], per_sender: int
) -> dict[str, Any]:
    """One phase on every worker (blocking pipes: in a thread); its per-message figures merged."""

    def make(start_at: float, _workers: int) -> GroupPhaseSpec:
        return GroupPhaseSpec(start_at, group_id, senders, per_sender)

    stats: list[Any] = await asyncio.to_thread(gen.run, make)  # GroupPhaseStats, one per worker
    return _merged(stats, len(senders) * per_sender, members)


def _merged(stats: list[GroupPhaseStats], messages: int, members: int) -> dict[str, Any]:
    """Per message: sent, acked, when its last member got it (latest over the workers); every member but
    its sender must have got every message."""
    sent = {k: t for s in stats for k, t in s.sent_at.items()}
    acked = {k: t for s in stats for k, t in s.acked_at.items()}
    received: dict[Key, int] = {}
    last: dict[Key, float] = {}
    notified: dict[Key, float] = {}
    for s in stats:
        for k, n in s.received.items():
            received[k] = received.get(k, 0) + n
            last[k] = max(last.get(k, 0.0), s.last_received[k])
            notified[k] = max(notified.get(k, 0.0), s.last_notified[k])
    common = [s.common for s in stats]
    errors: dict[str, int] = {}
    for c in common:
        for what, n in c.errors.items():
            errors[what] = errors.get(what, 0) + n
    missed = sum(members - 1 - received.get(k, 0) for k in sent)
    if len(acked) < messages or missed or not all(c.drained for c in common):
        raise RuntimeError(
            f"G2 online phase incomplete: {len(acked)}/{messages} acked, {missed} deliveries missing, "
            f"errors {errors}"
        )
    first = min(c.first_send for c in common)
    cpu = sum(c.cpu_seconds for c in common)
    return {
        "first": first,
        "last_ack": max(acked.values()),
        "all_delivered": max([*last.values(), *acked.values()]),
        "all_notified": [last[k] - sent[k] for k in sorted(sent)],
        "all_pushed": [notified[k] - sent[k] for k in sorted(sent)],
        "client_cpu": cpu,
        "client_cpu_system_share": round(sum(c.cpu_system_seconds for c in common) / max(1e-9, cpu), 3),
        "deliveries": sum(c.delivered for c in common),
        "syncs": sum(c.syncs for c in common),
        "inline_applied": sum(c.inline_applied for c in common),
    }


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
    group_id = await _set_up_group(base_url, accounts)
    total = senders * per_sender
    burst_senders = tuple(range(1, senders + 1))
    stores = pids_named("mariadbd", "mysqld", "redis-server")
    async with _lean_members(base_url, accounts) as gen:
        await _settled(base_url)  # the members' coming online (presence, status notices) is not measured
        # latency: one sender, one message at a time
        latency = await _online_phase(gen, size, group_id, (0,), latency_messages)
        # throughput and round trips with everyone online
        statements0, commits0, redis0 = await _round_trips(base_url)
        frames0 = await _metric(base_url, "tinyim_push_notifies_total")
        recording = start_recording(pid, _online_profile(profile_to)) if pid and profile_to else None
        server0, store0 = cpu_of([pid]) if pid else 0.0, cpu_of(stores)
        online = await _online_phase(gen, size, group_id, burst_senders, per_sender)
        burst_server_cpu = (cpu_of([pid]) - server0) if pid else 0.0
        if recording is not None:
            stop_recording(recording)
        burst_store_cpu = cpu_of(stores) - store0
        statements1, commits1, redis1 = await _round_trips(base_url)
        frames1 = await _metric(base_url, "tinyim_push_notifies_total")
    elapsed = online["last_ack"] - online["first"]
    delivered_elapsed = online["all_delivered"] - online["first"]
    all_notified = latency["all_notified"]

    # the write path alone: members offline but the senders (back through the SDK, as before)
    owner = _sdk_client(base_url, accounts[0])
    sdk_senders = [_sdk_client(base_url, accounts[i]) for i in burst_senders]
    await asyncio.gather(*(c.start() for c in (owner, *sdk_senders)))

    async def burst(c: Client) -> None:
        for k in range(per_sender):
            await c.send_group(group_id, f"burst {k}")

    # the members' going offline and these coming back (presence, status notices, their first sync) are not
    # the write path; nor what the idle server does
    idle_redis_per_s = await _quiet(base_url)
    quiet = 200 if profile_to else 100  # a profile needs samples; 100: background round trips average out
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
    await asyncio.sleep(0.5)  # the last message's push (after the ack) looks its members up too
    statements3, commits3, redis3 = await _round_trips(base_url)
    counted_s = time.perf_counter() - quiet_began
    # the idle rate before and after (5 s each): a single 2 s window moved the net figure by ±0.2
    idle_redis_per_s = (idle_redis_per_s + await _quiet(base_url)) / 2
    # the same burst as above (same senders, same messages), the other members offline: the write
    # throughput that the raw multi-row insert (same concurrency) is the ceiling of
    cpu0 = process_cpu_seconds(pid) if pid else 0.0
    began = time.perf_counter()
    await asyncio.gather(*(burst(c) for c in sdk_senders))
    offline_elapsed = time.perf_counter() - began
    offline_cpu = (process_cpu_seconds(pid) - cpu0) if pid else 0.0
    for c in (owner, *sdk_senders):
        await c.close()
    return {
        # the burst, every member online: CPU per group message delivered to all members
        "server_cpu_us_per_msg": round(burst_server_cpu * 1e6 / total, 1),
        # the lean members' worker processes (user + system), from the first send until all delivered
        "client_cpu_us_per_msg": round(online["client_cpu"] * 1e6 / total, 1),
        "client_cpu_system_share": online["client_cpu_system_share"],
        "client_processes": WORKERS,
        "db_and_redis_cpu_us_per_msg": round(burst_store_cpu * 1e6 / total, 1),
        "msgs_per_s_all_delivered": round(total / delivered_elapsed, 1),
        # how the members learned of the burst's messages: applied from the push vs syncs sent
        "online_inline_applied_fraction": round(online["inline_applied"] / max(1, online["deliveries"]), 3),
        "online_syncs_per_delivery": round(online["syncs"] / max(1, online["deliveries"]), 3),
        # push frames sent per message delivered: under 1 when a frame carries several messages
        "online_push_frames_per_delivery": round((frames1 - frames0) / max(1, online["deliveries"]), 3),
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
        # the same up to the push that announced it (what the SDK version measured; a sync comes after)
        "all_pushed_p50_ms": ms(percentile(latency["all_pushed"], 50)),
        "all_pushed_p99_ms": ms(percentile(latency["all_pushed"], 99)),
        "write_path_statements_per_msg": round((statements3 - statements2) / quiet, 2),
        "write_path_commits_per_msg": round((commits3 - commits2) / quiet, 2),
        "write_path_redis_round_trips_per_msg": round((redis3 - redis2) / quiet, 2),
        # the same less what the idle server sends in as long (idle_redis_round_trips_per_s)
        "write_path_redis_round_trips_per_msg_net": round(
            (redis3 - redis2 - idle_redis_per_s * counted_s) / quiet, 2
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
    # 500 members online from loopback, and the SDK's closed connections may not all be gone yet
    env["IM_MAX_CONNECTIONS_PER_ADDRESS"] = "0"
    server = ServerProcess(workdir / "server", env=env).start()
    try:
        assert server.proc is not None
        profile_to = result_path(f"profile-g2-write-path-{backend}", ".speedscope.json") if profile else None
        e2e = await run(
            server.base_url,
            accounts,
            latency_messages=30,
            senders=4,
            per_sender=PER_SENDER,
            pid=server.proc.pid,
            profile_to=profile_to,
        )
        if profile_to is not None:
            summarised(profile_to, f"profile-g2-write-path-{backend}")
            summarised(_online_profile(profile_to), f"profile-g2-online-{backend}")
    except BaseException:
        print(f"server log (tail):\n{server.log()}")
        raise
    finally:
        server.stop()
    if backend.startswith("sqlite"):
        sqlite_file = workdir / "server" / "tinyim.sqlite3"
        return e2e, await raw_sqlite(sqlite_file, 4, PER_SENDER, GROUP_ID, group_rows(size))
    plain = await raw_mariadb(url, 4, PER_SENDER, GROUP_ID, group_rows(size))
    # the same statements as the server's write path, straight through the driver: seq rows (locked row
    # allocator) and index rows; a group message writes no conversation row (the list reads it from the
    # index), with the conversation list on or off
    locked_seqs = not backend.endswith("+redis")
    full = await raw_mariadb(url, 4, PER_SENDER, GROUP_ID, group_rows(size), seqs=locked_seqs)
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
