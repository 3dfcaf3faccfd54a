"""`python -m fuzz <frames|handlers> [libFuzzer args: corpus dirs, -max_total_time=N, ...]`."""

from __future__ import annotations

import sys

import atheris


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("frames", "handlers"):
        sys.exit("usage: python -m fuzz frames|handlers [libFuzzer args]")
    target = sys.argv[1]
    with atheris.instrument_imports(include=["tinyim", "fuzz"]):
        from fuzz.targets import HandlerHarness, frames
    test_one = frames if target == "frames" else HandlerHarness()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
