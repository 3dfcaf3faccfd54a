"""`python -m tests.support.hide_packages PKG,PKG tinyim-args…`: the tinyim CLI as if PKGs were not installed.

An import of a hidden package (or anything under it) raises ModuleNotFoundError, as in an environment
installed without the extra that brings it, so a test can show which paths need which extra.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class HiddenPackages(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by the test)", name=fullname)
        return None


def main() -> int:
    hidden, *args = sys.argv[1:]
    sys.meta_path.insert(0, HiddenPackages({n for n in hidden.split(",") if n}))
    from tinyim.cli import main as tinyim

    return tinyim(args)


if __name__ == "__main__":
    raise SystemExit(main())
