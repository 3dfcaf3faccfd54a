"""`python -m soak --minutes N [--seed S] [--json PATH]`: exit 0 only when lost = duplicated =
reordered = gaps = 0."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from soak.run import soak


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m soak")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fault-every", type=float, default=6.0, help="seconds between faults")
    parser.add_argument("--json", type=Path, default=Path("var/soak/result.json"))
    args = parser.parse_args()
    report = soak(args.minutes * 60, args.seed, args.fault_every)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "fault_log"}, indent=2))
    bad = sum(report["anomalies"].values())
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
