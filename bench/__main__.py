"""`make bench`: measured figures, written to bench/results/*.json (never asserted by tests)."""

from __future__ import annotations

import argparse

from bench.g1_one_to_one import run_g1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--pairs", type=int, default=20, help="concurrent sender/receiver pairs")
    parser.add_argument("--messages", type=int, default=50, help="messages per pair")
    parser.add_argument("--backends", default="sqlite,mariadb", help="comma list: sqlite, mariadb")
    args = parser.parse_args()
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        run_g1(backend, args.pairs, args.messages)


if __name__ == "__main__":
    main()
