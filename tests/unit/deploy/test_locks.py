"""The lock files (make lock) agree with pyproject.toml and with each other.

requirements.lock is what the image runs, requirements-build.lock its build stage, requirements-dev.lock
what `make setup` installs: a package pinned in two of them has the same version in both, so the tests
run on the versions the image ships; every pin satisfies pyproject's bounds and carries hashes; and no
lock names this machine's package mirrors.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
LOCKS = ("requirements.lock", "requirements-build.lock", "requirements-dev.lock")
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)")


def pins(name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    lines = (ROOT / name).read_text().splitlines()
    for number, line in enumerate(lines):
        match = PIN.match(line)
        if match:
            assert line.rstrip().endswith("\\") and "--hash=sha256:" in lines[number + 1], (name, line)
            found[str(canonicalize_name(match[1]))] = match[2]
    return found


def wanted(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return found


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("requirements.lock", ("cluster",)),
        ("requirements-build.lock", ("cluster", "build")),
        ("requirements-dev.lock", ("dev",)),
    ],
)
def test_a_lock_pins_what_pyproject_asks_within_its_bounds(lock: str, extras: tuple[str, ...]) -> None:
    pinned = pins(lock)
    for requirement in wanted(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock} lacks {name}: run make lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (lock, requirement)


def test_the_image_lock_holds_no_dev_tool_and_the_locks_agree_on_versions() -> None:
    runtime, build, dev = (pins(name) for name in LOCKS)
    assert not {"pytest", "grpcio-tools", "mypy", "pip-tools"} & runtime.keys()
    assert "grpcio-tools" in build
    for other in (build, dev):
        assert {n: v for n, v in other.items() if n in runtime} == {
            n: v for n, v in runtime.items() if n in other
        }
    assert runtime.keys() <= dev.keys() and build.keys() <= dev.keys()  # dev tests every driver of the image


def test_the_locks_name_no_local_mirror_or_path() -> None:
    for name in LOCKS:
        text = (ROOT / name).read_text()
        assert not re.search(r"^\s*--(extra-)?index-url|^\s*--find-links|file://|^\S+ @ ", text, re.M), name
