"""`make bench`: measured figures, written to bench/results/*.json (never asserted by tests)."""

from __future__ import annotations

import argparse
import functools
import json
import traceback
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from bench.common import RESULTS, SUFFIX, inherit_metrics_token, write_result
from bench.g1_one_to_one import LoadOptions, run_g1, run_g1_cluster
from bench.g2_group import run_g2
from bench.g5_files import run_g5
from bench.hostile import run_hostile
from bench.s1_status import run_s1
from bench.ws_memory import run_ws_hold, run_ws_memory
from bench.ws_pipeline import run_ws_pipeline
from tests.support.services import MARIADB_HOST, MARIADB_PORT, REDIS_URL, reachable

T = TypeVar("T")


def survive(name: str, scenario: Callable[[], T]) -> T | None:
    """Run one scenario; a failure is printed and recorded (<name>-failed.json), and the run goes on."""
    try:
        return scenario()
    except Exception as exc:
        traceback.print_exc()
        write_result(f"{name}-failed", {"scenario": name, "error": repr(exc)[:2000]})
        return None


def missing_services(backend: str) -> list[str]:
    """The servers a backend needs that do not answer here."""
    missing = []
    if backend.startswith("mariadb") and not reachable(MARIADB_HOST, MARIADB_PORT):
        missing.append(f"MariaDB on {MARIADB_HOST}:{MARIADB_PORT}")
    redis = urlparse(REDIS_URL)
    if backend.endswith("+redis") and not reachable(redis.hostname or "127.0.0.1", redis.port or 6379):
        missing.append(f"Redis at {REDIS_URL}")
    return missing


def main() -> None:
    inherit_metrics_token()
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--pairs", type=int, default=20, help="concurrent sender/receiver pairs")
    # 1,500: the closed loop runs seconds, not a fraction of one (at 400 per pair one process measured
    # 4,700-4,970 msgs/s, at 1,500 6,300-6,400, on the same host the same hour: a short phase is mostly ramp)
    parser.add_argument("--messages", type=int, default=1500, help="messages per pair (closed loop)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (g1, cluster)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="g1/cluster: also an open-loop phase at this total msgs/s"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of an open-loop phase")
    parser.add_argument(
        "--peak",
        choices=("off", "mariadb", "all"),
        default="mariadb",
        help="g1: find the peak open-loop rate, then measure send→notify p99 at half of it "
        "(mariadb: only for the plain MariaDB backend; all: every backend and the cluster, whose peak "
        "is then compared with one process's)",
    )
    parser.add_argument(
        "--peak-p99-ms",
        type=float,
        default=1000.0,
        help="a peak-search step breaks above this send→delivered p99 (an overloaded step queues: seconds)",
    )
    parser.add_argument(
        "--backends",
        default="sqlite,mariadb,mariadb+redis",
        help="comma list: sqlite, mariadb, mariadb+redis",
    )
    parser.add_argument(
        "--only",
        default="g1,g2,cluster,w1,w2,s1,g5,h1",
        help="comma list of scenarios: g1, g2, cluster, w1, w2 (pipelining), s1 (online status), "
        "g5 (file transfer), h1 (hostile clients); not in the default: profile (py-spy of the server "
        "under G1 load), profile-cluster (py-spy of a gateway and a msg node of the multi-process "
        "topology under G1 load), x1 (CPU per round trip on a gRPC stream, gRPC's defaults vs tinyim's I/O "
        "settings), sql (statement log of a few messages, SQLAlchemy vs asyncmy overheads)",
    )
    parser.add_argument("--hostile-seconds", type=float, default=60, help="h1: how long the attack lasts")
    parser.add_argument("--group-size", type=int, default=500)
    parser.add_argument(
        "--g2-profile",
        action="store_true",
        help="g2: py-spy profiles of the server: the write path (200 messages) and the online burst",
    )
    parser.add_argument("--connections", type=int, default=10_000, help="idle WebSockets for w1")
    parser.add_argument("--hold", type=int, default=15_000, help="w1: connections one gateway must hold")
    parser.add_argument(
        "--conversation-list",
        default="on,off",
        help="comma list: on, off — G1/G2 with and without maintaining the conversation list (its cost)",
    )
    parser.add_argument("--file-mib", type=int, default=1024, help="file size for g5 (MiB)")
    parser.add_argument("--file-runs", type=int, default=3, help="g5: rounds (the spread is reported)")
    parser.add_argument("--file-chunk-kib", type=int, default=4096, help="g5: the gateway's chunk size")
    parser.add_argument(
        "--suffix", default="", help="name every result file <name>-<suffix>.json (e.g. baseline)"
    )
    args = parser.parse_args()
    SUFFIX["value"] = args.suffix
    scenarios = {s.strip() for s in args.only.split(",")}

    def load(backend: str, peak: bool) -> LoadOptions:
        wanted = args.peak == "all" or (args.peak == "mariadb" and backend == "mariadb")
        return LoadOptions(
            workers=args.workers,
            rate=args.rate,
            duration=args.duration,
            peak=peak and wanted,
            peak_p99_ms=args.peak_p99_ms,
        )

    one_process: dict[str, float] = {}
    modes = [m.strip() == "on" for m in args.conversation_list.split(",") if m.strip()]
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        missing = missing_services(backend)
        if missing:
            print(f"skipping the {backend} benchmarks: {', '.join(missing)} not reachable")
            continue
        cost: dict[str, Any] = {}
        for on in modes:
            key = "with_conversation_list" if on else "without_conversation_list"
            if "g1" in scenarios:
                g1 = run_g1(backend, args.pairs, args.messages, conversations=on, opts=load(backend, on))
                if on:
                    one_process[backend] = float(g1["msgs_per_s"])
                cost.setdefault("g1", {})[key] = {
                    k: g1[k]
                    for k in ("sql_statements_per_msg", "sql_commits_per_msg", "msgs_per_s", "ratio_to_raw")
                } | {"server_cpu_ms_per_msg": round(g1["server_cpu_us_per_msg"] / 1000, 3)}
            if "g2" in scenarios:
                g2 = survive(
                    f"g2-group-{backend}",
                    functools.partial(
                        run_g2, backend, args.group_size, conversations=on, profile=args.g2_profile
                    ),
                )
                if g2 is None:
                    continue
                figures = _cost_figures(g2, "write_path_msgs_per_s", "write_path_server_cpu_ms_per_msg")
                figures["group_msgs_per_s_4_senders"] = g2["group_msgs_per_s"]
                cost.setdefault("g2", {})[key] = figures
        if len(modes) == 2 and cost:
            write_result(
                f"conversation-list-cost-{backend}", {**_earlier_cost(backend), "backend": backend, **cost}
            )
    if "cluster" in scenarios:
        missing = missing_services("mariadb+redis")
        if missing:
            print(f"skipping the multi-process benchmark: {', '.join(missing)} not reachable")
        else:
            survive(
                "g1-one-to-one-cluster",
                lambda: run_g1_cluster(args.pairs, args.messages, one_process, load("cluster", True)),
            )
    if "profile" in scenarios:
        from bench.profile import run_profile

        survive("profile-g1", lambda: run_profile(args.pairs, args.messages, args.workers))
    if "profile-cluster" in scenarios:
        from bench.profile import run_profile_cluster

        survive("profile-cluster", lambda: run_profile_cluster(args.pairs, args.messages, args.workers))
    if "x1" in scenarios:
        from bench.grpc_io import run_grpc_io

        survive("x1-grpc-stream-io", run_grpc_io)
    if "sql" in scenarios:
        from bench.sql_overheads import run_sql_overheads

        survive("sql-overheads", run_sql_overheads)
    if "w1" in scenarios:
        run_ws_memory(args.connections)
        run_ws_hold(args.hold)
    if "w2" in scenarios:
        run_ws_pipeline()
    if "s1" in scenarios:  # online status on the heartbeat path
        missing = missing_services("sqlite+redis")
        if missing:
            print(f"skipping the online status benchmark: {missing[0]} not reachable")
        else:
            run_s1()
    if "g5" in scenarios:  # file transfer
        run_g5(args.file_mib * 1024 * 1024, args.file_runs, args.file_chunk_kib * 1024)
    if "h1" in scenarios:
        run_hostile(args.hostile_seconds)


def _earlier_cost(backend: str) -> dict[str, Any]:
    """The scenarios of an earlier run's cost file that this run did not measure (g1 and g2 run apart)."""
    path = RESULTS / f"conversation-list-cost-{backend}.json"
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in earlier.items() if k in ("g1", "g2")}


def _cost_figures(result: dict[str, Any], rate: str, cpu: str) -> dict[str, Any]:
    return {
        "write_path_statements_per_msg": result["write_path_statements_per_msg"],
        "write_path_commits_per_msg": result["write_path_commits_per_msg"],
        "msgs_per_s": result[rate],
        "server_cpu_ms_per_msg": result.get(cpu),
        # throughput over the raw baseline measured in the same run: comparable across a loaded machine
        "ratio_to_raw": result.get("ratio_to_raw", result.get("ratio_rows_to_raw")),
    }


if __name__ == "__main__":
    main()
