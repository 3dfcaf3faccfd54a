#!/usr/bin/env bash
# make lock: the lock files, with hashes, from pyproject.toml (pip-compile of pip-tools, in .venv):
#   requirements.lock        what the image runs: tinyim[cluster] (every server driver)
#   requirements-build.lock  the image's build stage: the same pins plus grpcio-tools (protobuf code)
#   requirements-dev.lock    tinyim[dev]: what `make setup` installs (the tests run on these versions)
# The dev lock is solved first; the others start from its pins, so a package has one version in all three
# (tests/unit/deploy/test_locks.py checks that). UPGRADE=1 moves every pin to the newest release.
set -euo pipefail
cd "$(dirname "$0")/.."
compile=(.venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host)
upgrade=()
[ "${UPGRADE:-0}" = 1 ] && upgrade=(--upgrade)
"${compile[@]}" "${upgrade[@]}" --extra dev -o requirements-dev.lock pyproject.toml
for out in requirements.lock requirements-build.lock; do
  cp requirements-dev.lock "$out"  # start from the dev pins: pip-compile keeps pins it finds in its output
done
"${compile[@]}" --extra cluster -o requirements.lock pyproject.toml
"${compile[@]}" --extra cluster --extra build -o requirements-build.lock pyproject.toml
