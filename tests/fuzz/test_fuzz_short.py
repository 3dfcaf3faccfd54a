"""A short coverage-guided fuzz run of each target (the long run is `make fuzz`): no crash allowed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("FUZZ_SHORT_SECONDS", "8"))


def run_target(target: str, workdir: Path, seconds: int) -> dict[str, int]:
    """Run one target; returns its figures (runs, coverage, corpus) or fails with libFuzzer's output."""
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz",
            target,
            str(corpus),
            str(ROOT / "fuzz" / "corpus" / target),
            f"-max_total_time={seconds}",
            f"-artifact_prefix={workdir}/",
            "-rss_limit_mb=1024",
            "-print_final_stats=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    out = proc.stdout + proc.stderr
    crashes = [
        p.name for p in workdir.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-", "oom-"))
    ]
    assert proc.returncode == 0 and not crashes, f"{target}: {crashes}\n{out[-4000:]}"
    done = re.findall(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)", out)
    assert done, out[-2000:]
    runs, cov, ft, corp = map(int, done[-1])
    return {"runs": runs, "coverage": cov, "features": ft, "corpus": corp}


@pytest.mark.parametrize("target", ["frames", "handlers"])
def test_fuzz_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    figures = run_target(target, tmp_path, SECONDS)
    print(f"fuzz {target}: {figures}")
    assert figures["runs"] > 100 and figures["coverage"] > 0
    shutil.rmtree(tmp_path / "corpus", ignore_errors=True)
