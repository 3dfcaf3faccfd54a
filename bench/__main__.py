"""`make bench`: measured figures, written to bench/results/*.json (never asserted by tests)."""

from __future__ import annotations

import argparse
from urllib.parse import urlparse

from bench.g1_one_to_one import run_g1, run_g1_cluster
from bench.g2_group import run_g2
from bench.g5_files import run_g5
from bench.s1_status import run_s1
from bench.ws_memory import run_ws_memory
from tests.support.services import MARIADB_HOST, MARIADB_PORT, REDIS_URL, reachable


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
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--pairs", type=int, default=20, help="concurrent sender/receiver pairs")
    parser.add_argument("--messages", type=int, default=50, help="messages per pair")
    parser.add_argument(
        "--backends",
        default="sqlite,mariadb,mariadb+redis",
        help="comma list: sqlite, mariadb, mariadb+redis",
    )
    parser.add_argument(
        "--only",
        default="g1,g2,cluster,w1,s1,g5",
        help="comma list of scenarios: g1, g2, cluster, w1, s1 (online status), g5 (file transfer)",
    )
    parser.add_argument("--group-size", type=int, default=500)
    parser.add_argument("--connections", type=int, default=10_000, help="idle WebSockets for w1")
    parser.add_argument("--file-mib", type=int, default=1024, help="file size for g5 (MiB)")
    args = parser.parse_args()
    scenarios = {s.strip() for s in args.only.split(",")}
    one_process: dict[str, float] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        missing = missing_services(backend)
        if missing:
            print(f"skipping the {backend} benchmarks: {', '.join(missing)} not reachable")
            continue
        if "g1" in scenarios:
            one_process[backend] = run_g1(backend, args.pairs, args.messages)
        if "g2" in scenarios and not backend.endswith("+redis"):
            run_g2(backend, args.group_size)
    if "cluster" in scenarios:
        missing = missing_services("mariadb+redis")
        if missing:
            print(f"skipping the multi-process benchmark: {', '.join(missing)} not reachable")
        else:
            run_g1_cluster(args.pairs, args.messages, one_process)
    if "w1" in scenarios:
        run_ws_memory(args.connections)
    if "s1" in scenarios:  # online status on the heartbeat path
        missing = missing_services("sqlite+redis")
        if missing:
            print(f"skipping the online status benchmark: {missing[0]} not reachable")
        else:
            run_s1()
    if "g5" in scenarios:  # file transfer
        run_g5(args.file_mib * 1024 * 1024)


if __name__ == "__main__":
    main()
