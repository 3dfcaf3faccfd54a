"""What the benchmarks share: percentiles, a results file, the machine they ran on."""

from __future__ import annotations

import functools
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
# `--suffix baseline`: every result file of the run is named <name>-baseline.json (kept in git)
SUFFIX = {"value": ""}


def result_path(name: str, ext: str = ".json") -> Path:
    suffix = SUFFIX["value"]
    return RESULTS / f"{name}{'-' + suffix if suffix else ''}{ext}"


def inherit_metrics_token() -> str:
    """/metrics answers only its bearer token: the servers the benchmarks start inherit this one. Set by
    the entry points (`python -m bench`), not on import: a test that imports this module must not change
    what the servers it starts see (they write data_dir/metrics.token only when no token is given)."""
    return os.environ.setdefault("IM_METRICS_TOKEN", "bench-metrics-token")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


@functools.cache
def python_speed() -> float:
    """Millions of pure-Python loop steps per second on one core, the best of 5 short runs: the same code
    costs ~2.5x more CPU on some hosts than on others, so per-message CPU figures of different runs compare
    only next to this one."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return round(2.0 / best, 1)


class DiskProbe:
    """fsync latency of the disk while a phase runs: a thread rewrites and fsyncs one small file every
    `every` seconds (100 a second by default, a light load next to the database's commits). MariaDB
    fsyncs its log at every commit (innodb_flush_log_at_trx_commit=1): a commit waits for the disk, so an
    fsync that stalls tens of ms stalls every send of that moment, whatever the server does. Measured here
    on an idle box: p50 0.2 ms, p99.9 ~10 ms, and stalls of 20-66 ms in bursts some 18 s apart. The file
    is in `directory` (default: the temp dir), which must be on the database's disk to say anything."""

    def __init__(self, directory: str | None = None, every: float = 0.01) -> None:
        self._directory = directory
        self._every = every
        self._latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with tempfile.NamedTemporaryFile(dir=self._directory, prefix="fsync-probe-") as f:
            while not self._stop.wait(self._every):
                os.pwrite(f.fileno(), b"x" * 512, 0)
                started = time.perf_counter()
                os.fsync(f.fileno())
                self._latencies.append(time.perf_counter() - started)

    def figures(self) -> dict[str, Any]:
        lat = self._latencies
        if not lat:
            return {}
        return {
            "fsyncs": len(lat),
            "p50_ms": ms(percentile(lat, 50)),
            "p99_ms": ms(percentile(lat, 99)),
            "max_ms": ms(max(lat)),
            "over_20ms": sum(1 for x in lat if x > 0.02),
        }


def read_figure(path: Path, key: str) -> float | None:
    """A number in a results file (`key`'s dots go into nested objects); None when the file, the figure
    or a number is not there."""
    try:
        value: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        **result,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "python_loop_msteps_per_s": python_speed(),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = result_path(name)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{path.stem}: {json.dumps({k: v for k, v in result.items() if k != 'machine'})}")
    return path


def _stat_cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc `stat` line (the fields after the parenthesised name)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far (Linux /proc); 0.0 where that is not available."""
    try:
        return _stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0.0


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU time of each thread of a process so far, summed by thread name (the main
    thread carries the process's name; grpc's poller and event-engine threads their own)."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = "main" if tid == str(pid) else stat[stat.index("(") + 1 : stat.rindex(")")]
        out[name] = out.get(name, 0.0) + _stat_cpu_seconds(stat)
    return out


def _schedstat_sum(pid: int, field: int) -> int:
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[field])
        except (OSError, IndexError, ValueError):
            continue
    return total


def process_runqueue_seconds(pid: int) -> float:
    """Time a process's threads spent runnable but waiting for a CPU so far (/proc schedstat: the
    scheduler ran something else); 0.0 where that is not available."""
    return _schedstat_sum(pid, 1) / 1e9


def process_wakes(pid: int) -> int:
    """How many times a process's threads were put on a CPU so far (/proc schedstat's timeslices): on a
    virtual machine each wake from idle costs tens of µs of CPU, so wakes per message explain much of
    why CPU per message falls as the load (and with it the batches) grows."""
    return _schedstat_sum(pid, 2)


def machine_busy_seconds() -> float:
    """CPU time every CPU of the machine spent busy so far (/proc/stat: all but idle and iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def metric(base_url: str, name: str, token: str = "") -> float:
    """One counter from a process's /metrics (Prometheus text); `token`: its metrics token
    (IM_METRICS_TOKEN or data_dir/metrics.token — without it the endpoint answers 401 and this 0.0)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base_url) as http:
        text = (await http.get("/metrics", headers=headers)).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def redis_commands(url: str | None) -> int:
    """Commands the Redis server at `url` has run so far (INFO commandstats); 0 without Redis.
    Server-wide: give the benchmark a Redis of its own (IM_TEST_REDIS_URL) for a clean figure."""
    if not url:
        return 0
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(int(v["calls"]) for v in stats.values() if isinstance(v, dict))


async def round_trips(base_url: str, token: str = "") -> tuple[float, float]:
    """SQL statements and commits so far (the server counts them for the benchmarks; see bench.measure
    for the sum over several processes)."""
    return await metric(base_url, "tinyim_db_statements_total", token), await metric(
        base_url, "tinyim_db_commits_total", token
    )
