"""A 2-minute soak (`make soak` runs SOAK_MINUTES, default 30): faults injected, nothing lost,
duplicated or reordered, no gaps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.replication import INSTALL_DB, MARIADBD
from tests.support.services import require_redis

ROOT = Path(__file__).resolve().parents[2]
MINUTES = os.environ.get("SOAK_TEST_MINUTES", "2")

pytestmark = pytest.mark.e2e


def test_two_minute_soak(tmp_path: Path) -> None:
    if not (os.path.exists(MARIADBD) and os.path.exists(INSTALL_DB)):
        pytest.skip("*** SKIPPED: mariadbd / mariadb-install-db are not installed ***")
    require_redis()  # the shared one is not used, but the soak needs redis-server installed too
    result = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "soak", "--minutes", MINUTES, "--fault-every", "5", "--json", str(result)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=float(MINUTES) * 60 + 600,
    )
    assert result.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(result.read_text())
    print(json.dumps({k: v for k, v in report.items() if k != "fault_log"}))
    assert report["anomalies"] == {"lost": 0, "duplicated": 0, "reordered": 0, "gaps": 0}, report
    assert report["faults_total"] >= 5 and report["messages_acked"] > 100
    assert proc.returncode == 0
