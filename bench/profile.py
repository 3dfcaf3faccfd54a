"""A sampling profile of the server (and of one load-generator worker) under the G1 closed-loop load.

py-spy attaches to the running processes from outside (ptrace: root, or kernel.yama.ptrace_scope 0) and
samples their Python stacks; nothing in the server changes. Written to bench/results/:
- profile-g1-server[-suffix].speedscope.json — open it in https://www.speedscope.app;
- profile-g1-server[-suffix].txt — named areas, the top functions by own and inclusive time, the packages;
- the same for the load generator (profile-g1-loadgen.*): it must cost much less than the server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import RESULTS, result_path, thread_cpu_seconds, write_result
from bench.g1_one_to_one import METRICS_TOKEN, database, load_env, pair_specs, server_env
from bench.loadgen import LoadGenerator
from bench.measure import Target, closed, measured_phase
from bench.seed import seed_accounts
from tests.support.server import ServerProcess


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is missing: pip install -e '.[dev]'")
    return found


def start_recording(pid: int, out: Path, rate: int = 250) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [py_spy(), "record", "-p", str(pid), "-o", str(out), "-f", "speedscope", "-r", str(rate)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_recording(proc: subprocess.Popen[bytes]) -> str:
    """py-spy writes its file when interrupted."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")


# Where a send's time goes, by function name (inclusive: the share of samples with it on the stack).
AREAS = {
    "send handler (all of a send)": "message_handlers.<locals>.send",
    "relation check of a send": "RelationService.check_direct",
    "timeline append (the write transaction)": "SqlTimelineStore.append",
    "seq lock + bump": "LockedRowSeqAllocator.take",
    "receiver's sync handler": "message_handlers.<locals>.sync",
    "pool checkout (AsyncConnection.start)": "AsyncConnection.start",
    "pre-ping on checkout": "AsyncAdapt_asyncmy_connection._do_ping",
    "connection return (close, reset-on-return)": "AsyncConnection.close",
    "SQLAlchemy execute (compile, cache key, adapt)": "AsyncConnection.execute",
    "push to the receiver": "PresenceRouter.notify",
}


def _idle(leaf: dict[str, Any]) -> bool:
    """A thread-pool thread waiting for work (py-spy does not always see it as idle)."""
    file, name = str(leaf.get("file", "")), str(leaf["name"])
    return (name == "_worker" and file.endswith("concurrent/futures/thread.py")) or (
        name == "wait" and file.endswith("threading.py")
    )


def summarise_speedscope(path: Path, top: int = 40) -> tuple[str, dict[str, Any]]:
    """Top-N by own (leaf) samples and by inclusive samples, own samples per module, and AREAS."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]

    def label(i: int) -> str:
        f = frames[i]
        file = f.get("file", "")
        for marker in ("site-packages/", "src/", "lib/python3"):
            if marker in file:
                file = file.split(marker, 1)[1]
                break
        return f"{f['name']} ({file}:{f.get('line', '?')})"

    own: Counter[int] = Counter()
    inclusive: Counter[int] = Counter()
    modules: Counter[str] = Counter()
    by_name: Counter[str] = Counter()
    total, count = 0.0, 0
    idle = 0.0
    for profile in doc["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            if _idle(frames[stack[-1]]):
                idle += weight
                continue
            total += weight
            count += 1
            own[stack[-1]] += weight
            for i in set(stack):
                inclusive[i] += weight
            for name in {frames[i]["name"] for i in stack}:
                by_name[name] += weight
            file = frames[stack[-1]].get("file", "")
            module = file.split("site-packages/", 1)[-1].split("src/", 1)[-1].split("/")[0]
            modules[module] += weight
    areas = {area: round(by_name[name] * 100 / total, 1) for area, name in AREAS.items()}
    lines = [
        f"{path.name}: {count} samples ({total:.1f} s), without {idle:.1f} s of idle pool threads",
        "",
        "areas (inclusive):",
    ]
    lines += [f"  {pct:5.1f} %  {area}" for area, pct in areas.items()]
    lines += ["", "own time (leaf frames; time in C extensions shows on the calling line):"]
    lines += [f"  {own[i] * 100 / total:5.1f} %  {label(i)}" for i, _ in own.most_common(top)]
    lines += ["", "inclusive time (on the stack):"]
    lines += [f"  {inclusive[i] * 100 / total:5.1f} %  {label(i)}" for i, _ in inclusive.most_common(top)]
    lines += ["", "own time by top-level package:"]
    lines += [f"  {w * 100 / total:5.1f} %  {m}" for m, w in modules.most_common(20)]
    figures = {
        "samples": count,
        "areas_percent": areas,
        "top_inclusive": [
            {"percent": round(inclusive[i] * 100 / total, 1), "frame": label(i)}
            for i, _ in inclusive.most_common(top)
        ],
    }
    return "\n".join(lines) + "\n", figures


def run_profile(pairs: int, messages: int, workers: int = 2, backend: str = "mariadb") -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-profile-"))
    secret = secrets.token_urlsafe(32)
    RESULTS.mkdir(parents=True, exist_ok=True)
    server_out = result_path("profile-g1-server", ".speedscope.json")
    client_out = result_path("profile-g1-loadgen", ".speedscope.json")
    try:
        with database(backend, workdir) as url:
            from bench.g1_one_to_one import _migrated_sqlite

            seed_url = url or _migrated_sqlite(workdir / "server")
            accounts = asyncio.run(seed_accounts(seed_url, secret, 2 * pairs))
            server = ServerProcess(
                workdir / "server", env=server_env(backend, url) | load_env(secret)
            ).start()
            try:
                assert server.proc is not None
                target = Target([server.proc.pid], [server.base_url], METRICS_TOKEN)
                with LoadGenerator(pair_specs(accounts, [server.base_url]), workers) as gen:
                    measured_phase(target, gen, closed(5))  # warm-up, not recorded
                    recorders = [
                        start_recording(server.proc.pid, server_out),
                        start_recording(gen.pids[0], client_out),
                    ]
                    figures = measured_phase(target, gen, closed(messages))
                    errors = [stop_recording(r) for r in recorders]
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result: dict[str, Any] = {
        "scenario": f"py-spy profile of the one-process server (and one load-generator worker), G1 closed "
        f"loop on {backend}",
        "pairs": pairs,
        "messages_per_pair": messages,
        "load": figures,
    }
    result["server"] = summarised(server_out, "profile-g1-server", errors[0])
    result["loadgen"] = summarised(client_out, "profile-g1-loadgen", errors[1])
    write_result("profile-g1", result)


def summarised(out: Path, name: str, error: str = "") -> dict[str, Any]:
    """A recording's summary, written next to it as `<name>.txt`; py-spy's error if it wrote nothing."""
    if not out.exists():
        return {"error": error[-2000:]}
    text, summary = summarise_speedscope(out)
    summary_path = result_path(name, ".txt")
    summary_path.write_text(text)
    return {"speedscope": out.name, "summary": summary_path.name, **summary}


def run_profile_cluster(pairs: int, messages: int, workers: int = 2) -> None:
    """py-spy of one gateway and one msg node of the multi-process topology under the G1 closed loop
    (where the cluster's extra CPU per message goes): profile-cluster-<process>.{speedscope.json,txt}."""
    from bench.g1_one_to_one import _cluster_up, cluster_target
    from tests.support.services import REDIS_URL, delete_prefix, throwaway_mariadb
    from tinyim.cluster import Cluster

    workdir = Path(tempfile.mkdtemp(prefix="tinyim-bench-profile-cluster-"))
    secret = secrets.token_urlsafe(32)
    prefix = f"bench-{secrets.token_hex(4)}:"
    RESULTS.mkdir(parents=True, exist_ok=True)
    names = ("gateway-1", "msg-1")
    outs = {name: result_path(f"profile-cluster-{name}", ".speedscope.json") for name in names}
    try:
        with throwaway_mariadb() as url:
            accounts = asyncio.run(seed_accounts(url, secret, 2 * pairs))
            env = {"IM_DATABASE_URL": url, "IM_REDIS_URL": REDIS_URL, "IM_REDIS_PREFIX": prefix}
            cluster = _cluster_up(Cluster, workdir, env | load_env(secret))
            try:
                target, gateways = cluster_target(cluster)
                with LoadGenerator(pair_specs(accounts, gateways), workers) as gen:
                    measured_phase(target, gen, closed(5))  # warm-up, not recorded
                    # py-spy stops every thread at each sample (ptrace), which /proc charges to each
                    # of them: the CPU figures come from a phase without it, the profile from the next
                    threads0 = {n: thread_cpu_seconds(cluster.members[n].pid) for n in names}
                    figures = measured_phase(target, gen, closed(messages))
                    threads1 = {n: thread_cpu_seconds(cluster.members[n].pid) for n in names}
                    recorders = {n: start_recording(cluster.members[n].pid, outs[n]) for n in names}
                    profiled = measured_phase(target, gen, closed(messages))
                    errors = {n: stop_recording(r) for n, r in recorders.items()}
            finally:
                cluster.down()
                asyncio.run(delete_prefix(REDIS_URL, prefix))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result: dict[str, Any] = {
        "scenario": "py-spy profile of gateway-1 and msg-1 of the multi-process topology, G1 closed loop",
        "pairs": pairs,
        "messages_per_pair": messages,
        "load": figures,
        "load_while_profiled": profiled,
    }
    delivered = max(1, figures["delivered"])
    for name, out in outs.items():
        result[name] = summarised(out, f"profile-cluster-{name}", errors[name])
        # py-spy counts some idle time of grpc's threads as busy: /proc's per-thread CPU (of the phase
        # without py-spy) does not
        result[name]["cpu_us_per_msg_by_thread"] = {
            thread: round((t - threads0[name].get(thread, 0.0)) * 1e6 / delivered, 1)
            for thread, t in sorted(threads1[name].items())
            if t > threads0[name].get(thread, 0.0)
        }
    write_result("profile-cluster", result)
