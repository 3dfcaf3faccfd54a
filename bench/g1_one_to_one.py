"""G1: 1:1 chat end to end (N pairs over raw WebSockets from the load generator) next to the raw baseline.

Headline: server CPU µs per delivered message (all server processes, user + system, from /proc), next to
msgs/s, send→ack / send→notify / send→delivered p50/p99, SQL statements and commits per message and the
load generator's own CPU per message. Phases, on one server and one set of connections:
- closed loop: each pair sends its next message when the previous one is acked (`messages` per pair);
- optionally open loop at a set total rate, and/or the peak search: the open-loop rate stepped up until
  p99 or loss breaks, then a longer run at half of that peak (the send→notify p99 target of DESIGN §10).
Raw baseline, in the same run: the same rows (one body + two index rows per message, one durable
transaction each; and the same with the two owners' seq rows locked and bumped, as the SQL timeline does)
inserted with the same driver and the same concurrency, no server in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import write_result
from bench.loadgen import LoadGenerator, PairSpec
from bench.measure import Target, closed, find_peak, measured_phase, open_loop
from bench.raw import IndexRow, raw_mariadb, raw_sqlite
from bench.seed import Account, seed_accounts
from tests.support.server import ServerProcess, free_port
from tests.support.services import REDIS_URL, delete_prefix, throwaway_mariadb

METRICS_TOKEN = "benchmark-metrics-token"


@dataclass
class LoadOptions:
    """How hard and how long to push (the CLI's --workers, --rate, --duration, --peak …)."""

    workers: int = 2
    warmup_per_pair: int = 5
    rate: float = 0.0  # > 0: an open-loop phase at this total rate
    duration: float = 10.0  # seconds of an open-loop phase
    peak: bool = False  # find the peak open-loop rate, then measure at half of it
    peak_step_seconds: float = 4.0
    peak_p99_ms: float = 1000.0  # a step "breaks" when send→delivered p99 exceeds this (overload: queueing)


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


def load_env(secret: str) -> dict[str, str]:
    """What a benchmark server needs besides its storage: the token secret the accounts were minted with,
    the metrics token, and no per-connection limits (every connection comes from loopback at full rate)."""
    return {
        "IM_JWT_SECRET": secret,
        "IM_METRICS_TOKEN": METRICS_TOKEN,
        "IM_RATE_PER_SECOND": "1000000",
        "IM_RATE_BURST": "1000000",
        "IM_HEARTBEAT_TIMEOUT_SECONDS": "3600",  # the load generator sends no heartbeats
        "IM_MAX_CONNECTIONS_PER_ADDRESS": "0",
    }


def ws_url(http_base: str, account: Account) -> str:
    return f"{http_base.replace('http://', 'ws://')}/ws?token={account.token}&device_id=PC"


def pair_specs(accounts: list[Account], gateways: list[str]) -> list[PairSpec]:
    """Pair i: accounts 2i (sender) and 2i+1 (receiver); with two gateways the receiver is on the other."""
    specs = []
    for i in range(len(accounts) // 2):
        s, r = accounts[2 * i], accounts[2 * i + 1]
        specs.append(
            PairSpec(
                s.user_id,
                ws_url(gateways[i % len(gateways)], s),
                r.user_id,
                ws_url(gateways[(i + 1) % len(gateways)], r),
            )
        )
    return specs


def run_load(target: Target, specs: list[PairSpec], messages: int, opts: LoadOptions) -> dict[str, Any]:
    """The phases on one set of connections: warm-up, closed loop, then open loop / peak as asked."""
    out: dict[str, Any] = {}
    with LoadGenerator(specs, opts.workers) as gen:
        out["client_processes"] = len(gen.pids)
        measured_phase(target, gen, closed(opts.warmup_per_pair))
        out["closed_loop"] = measured_phase(target, gen, closed(messages))
        print(f"  closed loop: {out['closed_loop']}", flush=True)
        if opts.rate > 0:
            out["open_loop"] = {
                "offered_rate": opts.rate,
                **measured_phase(target, gen, open_loop(opts.rate, opts.duration)),
            }
        if opts.peak:
            start = max(10.0, 0.5 * out["closed_loop"]["msgs_per_s"])
            search = find_peak(target, gen, start, opts.peak_step_seconds, opts.peak_p99_ms)
            half = search["peak_rate"] / 2
            out["peak_search"] = search
            if half > 0:
                out["half_peak"] = {
                    "offered_rate": round(half, 1),
                    **measured_phase(target, gen, open_loop(half, opts.duration), probe_disk=True),
                }
    return out


def headline(load: dict[str, Any]) -> dict[str, Any]:
    """The closed-loop figures at the top of a result file (the scenario's comparable numbers)."""
    c = load["closed_loop"]
    keys = (
        "server_cpu_us_per_msg",
        "client_cpu_us_per_msg",
        "server_to_client_cpu",
        "msgs_per_s",
        "send_ack_p50_ms",
        "send_ack_p99_ms",
        "send_notify_p50_ms",
        "send_notify_p99_ms",
        "send_delivered_p50_ms",
        "send_delivered_p99_ms",
        "sql_statements_per_msg",
        "sql_commits_per_msg",
    )
    out = {k: c[k] for k in keys}
    for key in ("grpc_calls_per_msg", "server_cpu_us_per_msg_by_process"):
        if key in c:
            out[key] = c[key]
    if "half_peak" in load:
        out["peak_open_loop_rate"] = load["peak_search"]["peak_rate"]
        out["half_peak_send_notify_p99_ms"] = load["half_peak"]["send_notify_p99_ms"]
        out["target_half_peak_send_notify_p99_ms"] = 20
    out["target_server_cpu_us_per_msg"] = 300
    return out


def one_to_one_rows(writer: int, msg_id: int) -> list[IndexRow]:
    sender, receiver = 2 * writer + 1, 2 * writer + 2
    return [(sender, receiver, msg_id, msg_id, 1, 0), (receiver, sender, msg_id, msg_id, 0, 0)]


async def raw_baseline(backend: str, url: str, workdir: Path, pairs: int, messages: int) -> dict[str, Any]:
    if backend == "sqlite":
        rate = await raw_sqlite(workdir / "server" / "tinyim.sqlite3", pairs, messages, 0, one_to_one_rows)
        return {"raw_txn_per_s": round(rate, 1), "raw_rows_per_txn": 3}
    plain = await raw_mariadb(url, pairs, messages, 0, one_to_one_rows)
    with_seqs = await raw_mariadb(url, pairs, messages, 0, one_to_one_rows, seqs=True)
    return {
        "raw_txn_per_s": round(plain, 1),
        "raw_seq_locked_txn_per_s": round(with_seqs, 1),
        "raw_rows_per_txn": 3,
    }


def run_g1(
    backend: str,
    pairs: int,
    messages: int,
    conversations: bool = True,
    opts: LoadOptions | None = None,
    name: str = "",
) -> dict[str, Any]:
    """The one-process figures for a backend, written to g1-one-to-one-<backend>[…].json.
    conversations=False: the same without maintaining the conversation list (its cost, by difference)."""
    opts = opts or LoadOptions()
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-"))
    suffix = "" if conversations else "-no-conversation-list"
    try:
        with database(backend, workdir) as url:  # created and migrated outside the event loop
            load = _one_process_load(backend, url, workdir, pairs, messages, conversations, opts)
            raw = asyncio.run(raw_baseline(backend, url, workdir, pairs, messages))
        ratio = _ratios(load["closed_loop"]["msgs_per_s"], raw, backend)
        result = {
            "scenario": "G1 1:1 end to end over WebSocket, one process (IM_ROLES=all)",
            "backend": backend,
            "conversation_list": conversations,
            "pairs": pairs,
            "messages_per_pair": messages,
            **headline(load),
            **raw,
            **ratio,
            "target_ratio": 0.5,
            **load,
        }
        write_result(name or f"g1-one-to-one-{backend}{suffix}", result)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _one_process_load(
    backend: str,
    url: str,
    workdir: Path,
    pairs: int,
    messages: int,
    conversations: bool,
    opts: LoadOptions,
) -> dict[str, Any]:
    """Seed the pairs, start one server process (IM_ROLES=all) on this database, run the load phases."""
    secret = secrets.token_urlsafe(32)
    seed_url = url or _migrated_sqlite(workdir / "server")
    accounts = asyncio.run(seed_accounts(seed_url, secret, 2 * pairs))
    env = server_env(backend, url, conversations) | load_env(secret)
    server = ServerProcess(workdir / "server", env=env).start()
    try:
        assert server.proc is not None
        target = Target([server.proc.pid], [server.base_url], METRICS_TOKEN)
        return run_load(target, pair_specs(accounts, [server.base_url]), messages, opts)
    finally:
        server.stop()
        if "IM_REDIS_PREFIX" in env:
            asyncio.run(delete_prefix(REDIS_URL, env["IM_REDIS_PREFIX"]))


def _ratios(msgs_per_s: float, raw: dict[str, Any], backend: str) -> dict[str, Any]:
    """ratio_to_raw: over the raw txn rate of the same work — with the seqs locked in the transaction when
    the server takes them that way (MariaDB, sql allocator); plain inserts otherwise."""
    out = {"ratio_to_raw_plain": round(msgs_per_s / raw["raw_txn_per_s"], 3)}
    if "raw_seq_locked_txn_per_s" in raw:
        out["ratio_to_raw_seq_locked"] = round(msgs_per_s / raw["raw_seq_locked_txn_per_s"], 3)
    sql_seqs = backend == "mariadb"
    out["ratio_to_raw"] = out["ratio_to_raw_seq_locked"] if sql_seqs else out["ratio_to_raw_plain"]
    return out


def cluster_target(cluster: Any) -> tuple[Target, list[str]]:
    """What a load phase measures on the multi-process topology (every process with a pid, every
    member's metrics), and the two gateways' base URLs the pairs connect to."""
    members = [(name, m) for name, m in cluster.members.items() if m.pid]
    target = Target(
        [m.pid for _, m in members],
        [m.base_url for m in cluster.members.values()],
        METRICS_TOKEN,
        names=[name for name, _ in members],
    )
    return target, [cluster.members[g].base_url for g in ("gateway-1", "gateway-2")]


def _cluster_up(cluster_class: Any, workdir: Path, env: dict[str, str], tries: int = 3) -> Any:
    """The cluster takes ports base … base + 1011 from one free port: on a busy machine one of them may
    be taken; try another base (the failing process's log is printed)."""
    for attempt in range(tries):
        cluster = cluster_class(workdir, env, free_port(), die_with_parent=True)
        try:
            return cluster.up()
        except RuntimeError as exc:
            for log in sorted((workdir / "cluster").glob("*.log")):
                text = log.read_text(errors="replace")
                if "Traceback" in text or "rror" in text:
                    print(f"{log.name} (tail):\n{text[-1500:]}", flush=True)
            if attempt == tries - 1:
                raise
            print(f"cluster did not come up ({exc}); trying other ports", flush=True)
    raise AssertionError("unreachable")


def one_process_closed_loop(pairs: int, messages: int) -> dict[str, Any]:
    """The one-process MariaDB closed loop again (same pairs and messages, no peak search, no raw loop):
    measured right after the cluster, so that a host whose speed drifts meets both sides of the ratio."""
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-after-"))
    try:
        with database("mariadb", workdir) as url:
            load = _one_process_load("mariadb", url, workdir, pairs, messages, True, LoadOptions())
        return dict(load["closed_loop"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _ratio_bracketed(cluster: float, before: float, after: dict[str, Any] | str) -> dict[str, Any]:
    """The cluster's msgs/s over one process's, measured before (the g1 scenario of this run) and after
    it: the headline ratio is over their mean; both single ratios are kept (how far the host drifted).
    `after` a string: that run failed (its error), the ratio is to before alone."""
    if isinstance(after, str):
        return {
            "one_process_mariadb_msgs_per_s": before,
            "ratio_to_one_process_mariadb": round(cluster / before, 3),
            "one_process_mariadb_after": {"error": after},
        }
    mean = (before + after["msgs_per_s"]) / 2
    return {
        "one_process_mariadb_msgs_per_s": round(mean, 1),
        "ratio_to_one_process_mariadb": round(cluster / mean, 3),
        "one_process_mariadb_before": {"msgs_per_s": before, "ratio": round(cluster / before, 3)},
        "one_process_mariadb_after": {
            "msgs_per_s": after["msgs_per_s"],
            "ratio": round(cluster / after["msgs_per_s"], 3),
            "server_cpu_us_per_msg": after["server_cpu_us_per_msg"],
        },
    }


def _earlier(name: str, key: str) -> float:
    """A figure from this run's (or the last) result file of another scenario; 0.0 when there is none."""
    from bench.common import read_figure, result_path

    return read_figure(result_path(name), key) or 0.0


def _migrated_sqlite(data_dir: Path) -> str:
    from tests.conftest import migrate_sqlite

    return migrate_sqlite(data_dir)


def run_g1_cluster(
    pairs: int, messages: int, one_process: dict[str, float], opts: LoadOptions | None = None
) -> dict[str, Any]:
    """G1 on the multi-process topology: pairs split over the two gateways (sender on one, receiver on the
    other), sends go over gRPC to two msg nodes, pushes come back over gRPC; MariaDB + Redis. The server
    CPU is the sum over every process of the topology."""
    from tinyim.cluster import Cluster

    opts = opts or LoadOptions()
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-cluster-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    secret = secrets.token_urlsafe(32)
    try:
        with throwaway_mariadb() as url:
            accounts = asyncio.run(seed_accounts(url, secret, 2 * pairs))
            env = {"IM_DATABASE_URL": url, "IM_REDIS_URL": REDIS_URL, "IM_REDIS_PREFIX": prefix}
            env |= load_env(secret)
            cluster = _cluster_up(Cluster, workdir, env)
            try:
                target, gateways = cluster_target(cluster)
                load = run_load(target, pair_specs(accounts, gateways), messages, opts)
            finally:
                cluster.down()
                asyncio.run(delete_prefix(REDIS_URL, prefix))
        result = {
            "scenario": "G1 1:1 end to end, multi-process: dispatch, 2 gateways, auth, user, 2 msg "
            "(+ the idle file roles)",
            "backend": "mariadb + redis sessions and registry",
            "pairs": pairs,
            "messages_per_pair": messages,
            **headline(load),
            "one_process_msgs_per_s": one_process,
            **load,
        }
        before = one_process.get("mariadb") or _earlier("g1-one-to-one-mariadb", "msgs_per_s")
        if before:
            try:
                after: dict[str, Any] | str = one_process_closed_loop(pairs, messages)
            except Exception as exc:  # the cluster's figures are kept, with the ratio to before only
                print(f"the one-process run after the cluster failed: {exc!r}", flush=True)
                after = repr(exc)[:500]
            result |= _ratio_bracketed(result["msgs_per_s"], before, after)
        one_peak = _earlier("g1-one-to-one-mariadb", "peak_open_loop_rate")
        if "peak_search" in load and one_peak:
            # capacity next to the closed loop's figure: the open-loop peaks, this run's one process first
            result["one_process_mariadb_peak_open_loop_rate"] = one_peak
            result["peak_ratio_to_one_process_mariadb"] = round(
                load["peak_search"]["peak_rate"] / one_peak, 3
            )
            cpu = _earlier("g1-one-to-one-mariadb", "server_cpu_us_per_msg")
            if cpu:
                result["one_process_mariadb_server_cpu_us_per_msg"] = cpu
        write_result("g1-one-to-one-cluster", result)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
