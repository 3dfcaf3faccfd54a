"""bench.targets: each #12 figure per run and how many runs met it; a run without the scenario is no miss."""

from __future__ import annotations

import json
from pathlib import Path

from bench.targets import summarise, table


def write(results: Path, name: str, suffix: str, body: dict[str, object]) -> None:
    (results / f"{name}-{suffix}.json").write_text(json.dumps(body))


def test_met_counts_only_the_runs_that_measured_the_figure(tmp_path: Path) -> None:
    write(tmp_path, "g1-one-to-one-cluster", "a", {"ratio_to_one_process_mariadb": 0.687})
    write(tmp_path, "g1-one-to-one-cluster", "b", {"ratio_to_one_process_mariadb": 0.488})
    write(tmp_path, "g1-one-to-one-mariadb", "a", {"server_cpu_us_per_msg": 181.0})
    write(tmp_path, "g1-one-to-one-mariadb", "b", {"server_cpu_us_per_msg": 301})  # over the bound
    write(tmp_path, "w1-idle-websocket-memory", "b", {"tinyim_gateway": {"kib_per_connection": 7.6}})
    (tmp_path / "g2-group-mariadb+redis-a.json").write_text("{not json")  # a broken file: not measured
    rows = {r["target"]: r for r in summarise(["a", "b"], tmp_path)}

    cluster = rows["Cluster, ratio to one process"]
    assert cluster["values"] == {"a": 0.687, "b": 0.488}
    assert (cluster["met"], cluster["measured"]) == (1, 2)
    cpu = rows["G1 server CPU µs per message"]
    assert (cpu["met"], cpu["measured"]) == (1, 2)  # ≤ 300: 181 meets it, 301 does not
    memory = rows["G3 KiB per idle WebSocket"]  # a nested figure, in one run only
    assert memory["values"] == {"a": None, "b": 7.6}
    assert (memory["met"], memory["measured"]) == (1, 1)
    statements = rows["G2 SQL statements per message"]
    assert (statements["met"], statements["measured"]) == (0, 0)
    assert "met" not in rows["G2 all notified p99 ms"]  # reported, not judged

    text = table(list(rows.values()), ["a", "b"])
    assert "| Cluster, ratio to one process (bound 0.5) | 0.687 | 0.488 | 1 of 2 |" in text
    assert "| G3 KiB per idle WebSocket (bound 12) | — | 7.6 | 1 of 1 |" in text
