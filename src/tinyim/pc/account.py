"""Who the PC client logs in as, and where it keeps its per-user state (local seq, conversation list)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tinyim.client import DEVICE_IDS

DEFAULT_SERVER = "http://127.0.0.1:8080"


@dataclass
class Account:
    server: str
    username: str
    password: str
    device_id: str = "PC"
    home: Path | None = None  # state root; default $TINYIM_HOME or $XDG_DATA_HOME/tinyim

    @property
    def state_dir(self) -> Path:
        """One folder per server and user: seq-{user_id}-{device}.json (the SDK's FileSeqStore) and the
        saved conversation list."""
        root = self.home or Path(
            os.environ.get("TINYIM_HOME")
            or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "tinyim"
        )
        netloc = urlsplit(self.server).netloc.replace(":", "_") or "server"
        return root / netloc / self.username


def add_account_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", default=None, help=f"dispatch URL (env TINYIM_SERVER, default {DEFAULT_SERVER})"
    )
    parser.add_argument("--user", default=None, help="username (env TINYIM_USER; asked when missing)")
    parser.add_argument(
        "--device",
        default=None,
        choices=DEVICE_IDS,
        help="device type (env TINYIM_DEVICE, default PC); a login kicks the same user's session "
        "of the same type",
    )
    parser.add_argument("--home", default=None, help="state folder (env TINYIM_HOME)")


def account_from(args: argparse.Namespace, *, prompt: bool = True) -> Account:
    """Arguments, then TINYIM_* environment, then prompts (password: TINYIM_PASSWORD or a hidden prompt)."""
    server = args.server or os.environ.get("TINYIM_SERVER") or DEFAULT_SERVER
    username = args.user or os.environ.get("TINYIM_USER") or ""
    password = os.environ.get("TINYIM_PASSWORD", "")
    device = args.device or os.environ.get("TINYIM_DEVICE") or "PC"
    if device not in DEVICE_IDS:
        raise SystemExit(f"tinyim: device must be one of {', '.join(DEVICE_IDS)}, not {device!r}")
    if prompt and sys.stdin.isatty():
        if not username:
            username = input("username: ").strip()
        if not password:
            password = getpass.getpass("password: ")
    if not username or not password:
        raise SystemExit("tinyim: give --user/TINYIM_USER and TINYIM_PASSWORD (or run in a terminal)")
    home = Path(args.home) if getattr(args, "home", None) else None
    return Account(server.rstrip("/"), username, password, device, home)
