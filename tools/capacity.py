"""The capacity model of docs/capacity.md as code: inputs (§1) -> formulas (§2) -> the table (§3).

`python tools/capacity.py` prints the table; change an input (a new bench figure) and run it again.
"""

from __future__ import annotations

import math

INPUTS = {
    # workload (assumed)
    "d": 1.3,  # connections per online user
    "r": 1 / 300,  # messages per online user per second at the peak
    "p1": 0.8,  # share of 1:1 messages
    "g": 50,  # mean size of a group a message goes to
    "h": 20.0,  # heartbeat interval, s
    "t_p": 40.0,  # presence refresh per connection, s
    "u": 0.5,  # target utilisation
    # per-unit costs
    "m_conn_kib": 6.66,  # measured: W1 at 10,000, bench/results/w1-idle-websocket-memory.json
    "m_base_mib": 114.3,  # measured: the same file, rss_before_kib (117,056 KiB)
    "M_gw_mib": 2048.0,  # memory per gateway process (chosen)
    "c_hb_ms": 0.15,  # assumed
    "c1_ms": 0.25,  # measured: G1, bench/results/g1-one-to-one-mariadb-session19.json server_cpu_us_per_msg
    # measured: g1-one-to-one-cluster-session19.json: 1,250 us/msg in the multi-role topology against one
    # process's 250 in the same run (batched sends: 0.39 SendMsgBatch + 0.31 PushNotify calls per message)
    "c_split_ms": 1.0,
    "cg_ms": 12.5,  # measured: G2 at 500 members, g2-group-mariadb-merged3.json (write path)
    "c_sync_ms": 1.0,  # assumed: per member that pulls a group message
    "q1": 0.4,  # measured: statements per 1:1 message under group commit (g1-...-mariadb-final.json)
    "c1_commits": 0.1,  # measured: commits per 1:1 message, the same file (about 10 messages per commit)
    "qg": 4.0,  # measured: statements per group message (g2-group-mariadb-merged3.json, 1 commit each)
    "w1": 7,  # rows per 1:1 message (code)
    "T_txn": 8000.0,  # measured: raw durable txn/s, this box on a quiet day (DESIGN.md §10)
    "T_rows_small": 24000.0,  # measured: the same in rows/s (3-row txns)
    "T_rows": 169000.0,  # measured: 500-row multi-row inserts, rows/s
    "T_redis": 80000.0,  # measured: unpipelined commands/s per Redis, this box
    "f_db": 4.0,  # assumed: production primary vs this box
    "f_redis": 1.5,  # assumed: production Redis shard vs this box
    "redis_per_conn_s": 4 / 20.0 + 6 / 40.0,  # heartbeat MULTI/HSET/PEXPIRE/EXEC + presence txn
    "q_redis": 7.22,  # measured: G1, bench/results/g1-one-to-one-mariadb+redis.json redis_commands_per_msg
    "row_bytes": 120,  # bytes per row with its indexes (assumed)
    "day_factor": 0.35,  # day average over the peak rate (assumed)
}


def model(users: float, i: dict[str, float] = INPUTS) -> dict[str, float]:
    c = i["d"] * users
    rate = i["r"] * users
    r1, rg = i["p1"] * rate, (1 - i["p1"]) * rate
    g = i["g"]
    c_gw = min(
        (i["M_gw_mib"] - i["m_base_mib"]) * 1024 / i["m_conn_kib"],
        i["u"] * i["h"] * 1000 / i["c_hb_ms"],
    )
    hop = i["c_split_ms"]  # what a message costs more when roles are split (internal calls)
    app_cores = (r1 * (i["c1_ms"] + hop) + rg * (i["cg_ms"] + hop + g * i["c_sync_ms"])) / 1000 / i["u"]
    rows = r1 * i["w1"] + rg * (3 * g + 1)
    commits_sharded_small = r1 * 3 * i["c1_commits"]  # group commit: a batch's owners share a commit
    small_rows = r1 * i["w1"]
    fan_rows = rg * (3 * g + 1)
    shards = max(
        rate / (i["u"] * i["f_db"] * i["T_txn"]),
        small_rows / (i["u"] * i["f_db"] * i["T_rows_small"]) + fan_rows / (i["u"] * i["f_db"] * i["T_rows"]),
        (commits_sharded_small + rg) / (i["u"] * i["f_db"] * i["T_txn"]),
    )
    redis = c * i["redis_per_conn_s"] + rate * i["q_redis"]
    return {
        "connections": c,
        "msgs_per_s": rate,
        "one_to_one_per_s": r1,
        "group_per_s": rg,
        "deliveries_per_s": r1 * 2 + rg * g,
        "conns_per_gateway": c_gw,
        "gateways": math.ceil(c / c_gw),
        "app_cores": app_cores,
        "msg_nodes": math.ceil(0.6 * app_cores),
        "statements_per_s": r1 * i["q1"] + rg * i["qg"],
        "rows_per_s": rows,
        "mysql_primaries": max(1, math.ceil(shards)),
        "storage_tb_per_day": rows * 86400 * i["day_factor"] * i["row_bytes"] / 1e12,
        "redis_cmds_per_s": redis,
        "redis_heartbeat_share": c * i["redis_per_conn_s"] / redis,
        "redis_shards": max(1, math.ceil(redis / (i["u"] * i["f_redis"] * i["T_redis"]))),
    }


def main() -> None:
    columns = [100_000, 1_000_000, 10_000_000]
    results = [model(u) for u in columns]
    print("| | " + " | ".join(f"{u:,}" for u in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for key in results[0]:
        cells = []
        for res in results:
            v = res[key]
            cells.append(f"{v:,.2f}" if v < 10 and not float(v).is_integer() else f"{v:,.0f}")
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
