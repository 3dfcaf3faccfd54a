"""#12's figures over several bench runs: each target's value in each run, and how many runs met it.

    python -m bench.targets s33f s33g s33k     # the suffixes of whole runs (`--suffix`)

One run on a shared virtual machine says little about the next (the same code's cluster ratio moved between
0.375 and 0.687 in one evening): this puts the runs side by side, per target, instead of quoting one. A
figure missing from a run (that scenario was not run with that suffix) is shown as such, not as a miss.
Written to bench/results/targets-<suffixes>.json as well.
"""

from __future__ import annotations

import json
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import RESULTS, read_figure


@dataclass(frozen=True)
class Goal:
    """One #12 figure and its bound."""

    name: str
    result: str  # the results file, without its suffix and .json
    key: str  # the figure in it (dots go into nested objects)
    bound: float | None  # None: reported, not judged
    meets: Callable[[float, float], bool] = operator.ge


GOALS = (
    Goal("G1 MariaDB, ratio to the seq-locked raw rate", "g1-one-to-one-mariadb", "ratio_to_raw", 0.5),
    Goal("G1 server CPU µs per message", "g1-one-to-one-mariadb", "server_cpu_us_per_msg", 300, operator.le),
    Goal(
        "G1 send→notify p99 ms at half the peak",
        "g1-one-to-one-mariadb",
        "half_peak_send_notify_p99_ms",
        20,
        operator.le,
    ),
    Goal("G2 (Redis seqs), ratio to raw rows/s", "g2-group-mariadb+redis", "ratio_rows_to_raw", 0.5),
    Goal(
        "G2 SQL statements per message",
        "g2-group-mariadb+redis",
        "write_path_statements_per_msg",
        3,
        operator.le,
    ),
    Goal(
        "G2 Redis round trips per message",
        "g2-group-mariadb+redis",
        "write_path_redis_round_trips_per_msg",
        2,
        operator.le,
    ),
    Goal("G2 all notified p99 ms", "g2-group-mariadb+redis", "all_notified_p99_ms", None),
    Goal(
        "G3 KiB per idle WebSocket",
        "w1-idle-websocket-memory",
        "tinyim_gateway.kib_per_connection",
        12,
        operator.le,
    ),
    Goal("G3 connections held", "w1-hold-15000", "alive_after_hold", 15000),
    Goal("Cluster, ratio to one process", "g1-one-to-one-cluster", "ratio_to_one_process_mariadb", 0.5),
    Goal("SQLite msgs/s", "g1-one-to-one-sqlite", "msgs_per_s", None),
)


def summarise(suffixes: Sequence[str], results: Path = RESULTS) -> list[dict[str, Any]]:
    rows = []
    for goal in GOALS:
        values = {s: read_figure(results / f"{goal.result}-{s}.json", goal.key) for s in suffixes}
        row: dict[str, Any] = {"target": goal.name, "bound": goal.bound, "values": values}
        if goal.bound is not None:
            measured = [v for v in values.values() if v is not None]
            row["met"] = sum(1 for v in measured if goal.meets(v, goal.bound))
            row["measured"] = len(measured)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], suffixes: Sequence[str]) -> str:
    lines = [
        "| target | " + " | ".join(suffixes) + " | met |",
        "|---|" + "---|" * (len(suffixes) + 1),
    ]
    for row in rows:
        cells = ["—" if v is None else f"{v:g}" for v in row["values"].values()]
        met = f"{row['met']} of {row['measured']}" if "met" in row else "(reported)"
        bound = "" if row["bound"] is None else f" (bound {row['bound']:g})"
        lines.append(f"| {row['target']}{bound} | " + " | ".join(cells) + f" | {met} |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m bench.targets SUFFIX [SUFFIX ...]")
    rows = summarise(argv)
    print(table(rows, argv))
    out = RESULTS / f"targets-{'-'.join(argv)}.json"
    out.write_text(json.dumps({"suffixes": list(argv), "targets": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
