"""Measure one load phase from outside: server CPU from /proc, SQL counters from /metrics, the figures.

The headline is CPU time per delivered message: user + system CPU of every server process (one process,
or every role of the cluster) over the phase, divided by the messages every intended receiver got. On a
shared 2-core machine it stays comparable from run to run where msgs/s does not. The load generator's
own CPU per message is reported next to it (it must stay well below the server's), and so is the CPU of
MariaDB and Redis (shared with whatever else runs on the box: indicative only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    DiskProbe,
    machine_busy_seconds,
    ms,
    percentile,
    process_cpu_seconds,
    process_runqueue_seconds,
    process_wakes,
)
from bench.loadgen import LoadGenerator, PhaseSpec, PhaseStats


def pids_named(*names: str) -> list[int]:
    """Processes whose command name is one of `names` (e.g. mariadbd, redis-server)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() in names:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def cpu_of(pids: Sequence[int]) -> float:
    return sum(process_cpu_seconds(p) for p in pids)


@dataclass
class Target:
    """What is measured: the server processes, their /metrics, and the token to read them."""

    pids: list[int]
    metrics_urls: list[str]
    metrics_token: str
    extra: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # one per pid: the CPU is also reported per process

    def counters(self) -> Counters:
        """SQL statements and commits so far (tinyim_db_*_total) and internal calls served by method
        (tinyim_grpc_server_seconds_count), summed over every process."""
        out = Counters()
        headers = {"Authorization": f"Bearer {self.metrics_token}"}
        for url in self.metrics_urls:
            text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
            for line in text.splitlines():
                if line.startswith("tinyim_db_statements_total "):
                    out.statements += float(line.split()[1])
                elif line.startswith("tinyim_db_commits_total "):
                    out.commits += float(line.split()[1])
                elif line.startswith("tinyim_timeline_batch_seconds_"):
                    name, value = line.split()[0], float(line.split()[-1])
                    if name.endswith("_count"):
                        out.batches += value
                    elif name.endswith("_sum"):
                        out.batch_seconds += value
                    elif 'le="0.01"' in name:
                        out.batches_within_10ms += value
                elif line.startswith("tinyim_grpc_server_seconds_count{"):
                    method = _label(line, "method").rsplit("/", 1)[-1]
                    out.grpc_calls[method] = out.grpc_calls.get(method, 0.0) + float(line.split()[-1])
                _add_stage_time(out.stages, line)
        return out


@dataclass
class Counters:
    statements: float = 0.0
    commits: float = 0.0
    grpc_calls: dict[str, float] = field(default_factory=dict)  # method name -> calls served
    batches: float = 0.0  # group-commit transactions (tinyim_timeline_batch_seconds)
    batch_seconds: float = 0.0
    batches_within_10ms: float = 0.0
    # stage -> [seconds, count] summed over every process (see STAGES)
    stages: dict[str, list[float]] = field(default_factory=dict)

    def batch_figures(self, before: Counters) -> dict[str, float]:
        """The group-commit batches of a phase: how long one took on average, and how many took 10 ms+."""
        n = self.batches - before.batches
        if n <= 0:
            return {}
        slow = n - (self.batches_within_10ms - before.batches_within_10ms)
        return {
            "timeline_batch_ms_mean": round((self.batch_seconds - before.batch_seconds) * 1000 / n, 2),
            "timeline_batches_over_10ms_share": round(slow / n, 4),
        }

    def stage_ms(self, before: Counters) -> dict[str, float]:
        """The mean time of each timed stage over a phase (ms), e.g. a gateway's wait for its send
        batch's answer next to the msg node's time serving it: where a send's latency goes."""
        out = {}
        for stage, (seconds, count) in self.stages.items():
            seconds0, count0 = before.stages.get(stage, [0.0, 0.0])
            if count > count0:
                out[stage] = round((seconds - seconds0) * 1000 / (count - count0), 3)
        return out

    def grpc_per_msg(self, before: Counters, delivered: int) -> dict[str, float]:
        """Internal calls per delivered message over a phase, by method (busiest first)."""
        calls = {m: n - before.grpc_calls.get(m, 0.0) for m, n in self.grpc_calls.items()}
        return {m: round(n / delivered, 3) for m, n in sorted(calls.items(), key=lambda kv: -kv[1]) if n > 0}


# Histograms whose mean per phase says where a send's time goes: (metric, label, label values kept).
# A gateway answers MsgSendReq (request seconds) after its batch's SendMsgStream answer (client
# seconds); the msg node serves that batch (server seconds), of which its group commit is a part (that
# one is `timeline_batch_ms_mean`, from `batch_figures`).
STAGES = (
    ("tinyim_request_seconds", "cmd", ("CMD_MSG_SEND_REQ",)),
    ("tinyim_grpc_client_seconds", "method", ("SendMsgStream", "PushStream")),
    ("tinyim_grpc_server_seconds", "method", ("SendMsgStream", "PushStream")),
)


def _add_stage_time(stages: dict[str, list[float]], line: str) -> None:
    for metric, label, kept in STAGES:
        for suffix, index in (("_sum{", 0), ("_count{", 1)):
            if not line.startswith(metric + suffix):
                continue
            value = _label(line, label).rsplit("/", 1)[-1]
            if value in kept:
                stage = f"{metric.removeprefix('tinyim_')} {value}"
                stages.setdefault(stage, [0.0, 0.0])[index] += float(line.split()[-1])
            return


def _label(line: str, name: str) -> str:
    start = line.index(f'{name}="') + len(name) + 2
    return line[start : line.index('"', start)]


def measured_phase(
    target: Target, gen: LoadGenerator, make: Callable[[float, int], PhaseSpec], probe_disk: bool = False
) -> dict[str, Any]:
    """Run one phase on every worker and return its figures (see `summarise`); `probe_disk`: with the
    disk's fsync latency over the phase (DiskProbe), which a latency tail may come from."""
    stores = pids_named("mariadbd", "mysqld", "redis-server")
    before = target.counters()
    each0 = [process_cpu_seconds(p) for p in target.pids]
    wakes0 = [process_wakes(p) for p in target.pids]
    runq0, busy0 = sum(process_runqueue_seconds(p) for p in target.pids), machine_busy_seconds()
    server0, store0, wall0 = cpu_of(target.pids), cpu_of(stores), time.monotonic()
    if probe_disk:
        with DiskProbe() as probe:
            stats = gen.run(make)
    else:
        stats = gen.run(make)
    server1, store1, wall1 = cpu_of(target.pids), cpu_of(stores), time.monotonic()
    runq1, busy1 = sum(process_runqueue_seconds(p) for p in target.pids), machine_busy_seconds()
    each1 = [process_cpu_seconds(p) for p in target.pids]
    wakes1 = [process_wakes(p) for p in target.pids]
    after = target.counters()
    figures = summarise(stats)
    delivered = max(1, figures["delivered"])
    by_process = {
        name: round((c1 - c0) * 1e6 / delivered, 1)
        for name, c0, c1 in zip(target.names, each0, each1, strict=False)
    }
    wakes = {
        name: round((w1 - w0) / delivered, 2)
        for name, w0, w1 in zip(target.names, wakes0, wakes1, strict=False)
    }
    wall = max(1e-9, wall1 - wall0)
    client = sum(st.cpu_seconds for st in stats)
    others = (busy1 - busy0) - (server1 - server0) - (store1 - store0) - client
    server_us = (server1 - server0) * 1e6 / delivered
    client_us = figures.pop("client_cpu_us_per_msg")
    return {
        # noise: the share of the phase the server's threads waited for a CPU, and the CPUs (in cores)
        # that processes outside the benchmark (server, database, Redis, load generator) kept busy
        "server_runqueue_share": round((runq1 - runq0) / wall, 3),
        "machine_other_cpu_cores": round(max(0.0, others) / wall, 2),
        "server_cpu_us_per_msg": round(server_us, 1),
        "client_cpu_us_per_msg": client_us,
        # the load generator's work per message is the same in every run: this ratio moves much less with
        # the host's speed than the µs do (G1 one process: 2.2-3.1 while its µs went from 243 to 516)
        "server_to_client_cpu": round(server_us / max(1e-9, client_us), 2),
        "db_and_redis_cpu_us_per_msg": round((store1 - store0) * 1e6 / delivered, 1),
        "server_cpu_utilisation": round((server1 - server0) / max(1e-9, wall1 - wall0), 3),
        **figures,
        "sql_statements_per_msg": round((after.statements - before.statements) / delivered, 2),
        "sql_commits_per_msg": round((after.commits - before.commits) / delivered, 2),
        **after.batch_figures(before),
        **({"stage_ms_mean": stages} if (stages := after.stage_ms(before)) else {}),
        **({"grpc_calls_per_msg": calls} if (calls := after.grpc_per_msg(before, delivered)) else {}),
        **({"server_cpu_us_per_msg_by_process": by_process} if by_process else {}),
        **({"disk_fsync_during_phase": probe.figures()} if probe_disk else {}),
        "server_wakes_per_msg": round(
            sum(w1 - w0 for w0, w1 in zip(wakes0, wakes1, strict=True)) / delivered, 2
        ),
        **({"server_wakes_per_msg_by_process": wakes} if wakes else {}),
    }


def summarise(stats: list[PhaseStats]) -> dict[str, Any]:
    ack = [x for s in stats for x in s.ack]
    notify = [x for s in stats for x in s.notify]
    delivered = [x for s in stats for x in s.delivered_latency]
    lateness = [x for s in stats for x in s.send_lateness]
    sent = sum(s.sent for s in stats)
    n_delivered = sum(s.delivered for s in stats)
    first = min(s.first_send for s in stats)
    last = max((s.last_delivery for s in stats), default=first)
    errors: dict[str, int] = {}
    for s in stats:
        for k, v in s.errors.items():
            errors[k] = errors.get(k, 0) + v
    out: dict[str, Any] = {
        "client_cpu_us_per_msg": round(sum(s.cpu_seconds for s in stats) * 1e6 / max(1, n_delivered), 1),
        "client_cpu_system_share": round(
            sum(s.cpu_system_seconds for s in stats) / max(1e-9, sum(s.cpu_seconds for s in stats)), 3
        ),
        "msgs_per_s": round(n_delivered / max(1e-9, last - first), 1),
        "sent": sent,
        "acked": sum(s.acked for s in stats),
        "failed": sum(s.failed for s in stats),
        "delivered": n_delivered,
        "delivered_fraction": round(n_delivered / max(1, sent), 4),
        "duplicates": sum(s.duplicates for s in stats),
        "syncs_per_msg": round(sum(s.syncs for s in stats) / max(1, n_delivered), 3),
        "inline_applied_fraction": round(sum(s.inline_applied for s in stats) / max(1, n_delivered), 3),
        "drained": all(s.drained for s in stats),
        "send_ack_p50_ms": ms(percentile(ack, 50)),
        "send_ack_p99_ms": ms(percentile(ack, 99)),
        "send_notify_p50_ms": ms(percentile(notify, 50)),
        "send_notify_p99_ms": ms(percentile(notify, 99)),
        "send_delivered_p50_ms": ms(percentile(delivered, 50)),
        "send_delivered_p99_ms": ms(percentile(delivered, 99)),
    }
    if lateness:
        out["client_send_lateness_p99_ms"] = ms(percentile(lateness, 99))
        out["send_notify_p99_ms_by_tenth"] = _p99_by_tenth([s.notify for s in stats])
    if errors:
        out["errors"] = errors
    return out


def _p99_by_tenth(latencies: list[list[float]]) -> list[float]:
    """An open-loop phase cut into ten equal spans of its send schedule (each worker's list is in send
    order): the p99 of each. A tail spread over every tenth is queueing; one bad tenth is a stall."""
    tenths: list[list[float]] = [[] for _ in range(10)]
    for one in latencies:
        for i, x in enumerate(one):
            tenths[i * 10 // max(1, len(one))].append(x)
    return [ms(percentile(t, 99)) if t else 0.0 for t in tenths]


def closed(per_pair: int, drain: float = 60.0) -> Callable[[float, int], PhaseSpec]:
    return lambda start_at, _workers: PhaseSpec("closed", start_at, per_pair=per_pair, drain_seconds=drain)


def open_loop(rate: float, duration: float, drain: float = 30.0) -> Callable[[float, int], PhaseSpec]:
    return lambda start_at, workers: PhaseSpec(
        "open", start_at, rate=rate / workers, duration=duration, drain_seconds=drain
    )


# A step whose queue grew from start to end (e.g. 60 ms in its first tenth, 340 ms in its last) is past
# the peak even when its p99 stays under the limit: a longer step would have broken it. A queue that grows
# is high in the last two tenths; one high last tenth alone is a stall (the disk's fsync: DiskProbe), which
# once broke a step at 4,250 msgs/s (tenths 11, 9, … 6.7, 107 ms) of a run whose next one held 8,276.
BACKLOG_FREE_MS = 100.0


def backlog_grew(tenths: list[float]) -> bool:
    """The p99 of a step's last two tenths both over BACKLOG_FREE_MS and twice its first tenth's."""
    limit = max(BACKLOG_FREE_MS, 2 * tenths[0])
    return tenths[-1] > limit and tenths[-2] > limit


def find_peak(
    target: Target,
    gen: LoadGenerator,
    start_rate: float,
    step_seconds: float,
    p99_limit_ms: float,
    max_steps: int = 10,
    factor: float = 1.3,
) -> dict[str, Any]:
    """Step the open-loop rate up until a step breaks (send→delivered p99 over the limit, loss, the
    achieved rate under 90 % of the offered one, or a latency that kept growing: `backlog_grew`); the
    peak is the last rate that held. When the very first step breaks, halve the rate until one holds (a
    few times at most) and step up from there."""
    steps: list[dict[str, Any]] = []
    rate, peak, downs = start_rate, 0.0, 0
    while len(steps) < max_steps:
        result = measured_phase(target, gen, open_loop(rate, step_seconds, drain=15))
        result["offered_rate"] = round(rate, 1)
        tenths = result["send_notify_p99_ms_by_tenth"]
        held = (
            result["drained"]
            and result["delivered_fraction"] >= 0.999
            and result["send_delivered_p99_ms"] <= p99_limit_ms
            and result["msgs_per_s"] >= 0.9 * rate
            # a backlog that grew through the step: the server did not keep up, however short the step
            and not backlog_grew(tenths)
        )
        result["held"] = held
        steps.append(result)
        print(
            f"  open loop {rate:.0f}/s: {result['msgs_per_s']}/s, delivered p99 "
            f"{result['send_delivered_p99_ms']} ms, {result['server_cpu_us_per_msg']} µs/msg, held={held}",
            flush=True,
        )
        if held:
            peak = rate
            rate *= factor
        elif peak == 0 and downs < 4:
            downs += 1
            rate /= 2
        else:
            break
    return {"peak_rate": round(peak, 1), "p99_limit_ms": p99_limit_ms, "steps": steps}
